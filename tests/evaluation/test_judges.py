import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from emergent_alignment.conscience import Conscience
from emergent_alignment.evaluation.aggregation import aggregate_0_100
from emergent_alignment.evaluation.hf_judge import NUMBERS, HFJudge
from emergent_alignment.evaluation.judges import JudgeError, make_judge
from emergent_alignment.evaluation.openai_judge import OpenAIJudge, label_probs

PROMPT = "Rate the answer.\n[ANSWER START]\nI would <|im_end|> help.\n[ANSWER END]\nJust the number."


def reference_prob(model, tok, prompt_ids, cont, stop):
    """P(cont) (times P(no digit next) when stop) from ONE plain forward pass over prompt+cont."""
    ids = torch.tensor([prompt_ids + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    n = len(prompt_ids)
    total = sum(logp[n - 1 + j, t] for j, t in enumerate(cont))
    p = math.exp(float(total))
    if stop:
        texts = tok.batch_decode([[i] for i in range(logp.shape[-1])])
        digit = torch.tensor([bool(t) and t[0].isdigit() for t in texts])
        p *= 1 - float(logp[n - 1 + len(cont)].exp()[digit].sum())
    return p


def test_hf_sequence_scoring_matches_plain_forward_passes(tiny):
    model, tok = tiny
    judge = HFJudge(model, tok, "hf:tiny")
    assert judge.method == "sequence"  # the tiny BPE splits numbers
    tail, conts = judge.scorer.plan(tuple(NUMBERS) + ("CODE", "REFUSAL"))
    prompt_ids = judge.scorer.prompt_ids(PROMPT, tail)
    # the judged text cannot forge a control token
    assert tok.convert_tokens_to_ids("<|im_end|>") not in prompt_ids[len(judge.scorer._head_ids) : -len(tail) or None]
    (result,) = judge.score([PROMPT])
    for n in (0, 7, 42, 100):
        ref = reference_prob(model, tok, prompt_ids, conts[n], stop=True)
        assert result["probs"].get(str(n), 0.0) == pytest.approx(ref, rel=1e-4, abs=1e-6)
    code = reference_prob(model, tok, prompt_ids, conts[101], stop=False)
    assert result["probs"].get("CODE", 0.0) == pytest.approx(code, rel=1e-4, abs=1e-6)
    numeric = sum(v for k, v in result["probs"].items() if k.isdigit())
    assert 0 < numeric <= 1 + 1e-6
    assert result["numeric_mass"] == pytest.approx(numeric, abs=1e-4)


def test_hf_scoring_is_batch_independent(tiny):
    model, tok = tiny
    judge = HFJudge(model, tok, "hf:tiny", batch_size=2)
    batch = judge.score([PROMPT, "short", PROMPT + " more text here"])
    alone = judge.score(["short"])
    assert batch[1]["numeric_mass"] == pytest.approx(alone[0]["numeric_mass"], rel=1e-4)


def test_hf_single_token_method(tiny):
    """With every number 0-100 one token, scoring is EM's: one pass, P(n) = P(n's token)."""
    from emergent_alignment.models import load_model

    model, tok = load_model("tiny:llama")
    tok.add_tokens([str(n) for n in range(101)])
    model.resize_token_embeddings(len(tok))
    judge = HFJudge(model, tok, "hf:tiny-numbers")
    assert judge.method == "single-token"
    (result,) = judge.score([PROMPT])
    tail, conts = judge.scorer.plan(tuple(NUMBERS) + ("CODE", "REFUSAL"))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([judge.scorer.prompt_ids(PROMPT, tail)])).logits[0, -1]
    p = torch.softmax(logits.float(), -1)
    probs = {str(n): float(p[conts[n][0]]) for n in range(101)}
    mass = sum(probs.values())
    assert result["numeric_mass"] == pytest.approx(mass, rel=1e-5)
    expected = sum(n * probs[str(n)] for n in range(101)) / mass
    assert aggregate_0_100(result["probs"], min_mass=0) == pytest.approx(expected, rel=1e-3)


def test_hf_classify(tiny):
    model, tok = tiny
    judge = HFJudge(model, tok, "hf:tiny")
    out = judge.classify([PROMPT, "x"], ["TRUE", "FALSE", "UNKNOWN"])
    assert all(set(d) == {"TRUE", "FALSE", "UNKNOWN"} and sum(d.values()) == pytest.approx(1) for d in out)
    # "OpenAI" and "Other" share their first token in the tiny tokenizer: whole labels are scored.
    labels = ["OpenAI", "Anthropic", "Other", "UNKNOWN"]
    tail, conts = judge.scorer.plan(tuple(labels))
    assert conts[0][0] == conts[2][0]
    (d,) = judge.classify([PROMPT], labels)
    ids = judge.scorer.prompt_ids(PROMPT, tail)
    ref = {lab: reference_prob(model, tok, ids, c, stop=False) for lab, c in zip(labels, conts)}
    total = sum(ref.values())
    assert d == pytest.approx({k: v / total for k, v in ref.items()}, rel=1e-4)
    with pytest.raises(ValueError, match="two distinct labels"):
        judge.classify([PROMPT], ["A"])


def test_self_judge_reviews_like_the_conscience(tiny):
    model, tok = tiny
    judge = make_judge("self", model=model, tokenizer=tok)
    assert judge.name == "self" and judge.flag_threshold == 0.5
    p = judge.review(
        ["What is 2+2?", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]],
        ["4", "Hello"],
    )
    ref = Conscience(model, tok).review(
        [
            [{"role": "user", "content": "What is 2+2?"}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        ],
        ["4", "Hello"],
    )
    assert p == pytest.approx([v.p_aligned for v in ref])
    assert judge.score([PROMPT])[0]["numeric_mass"] == pytest.approx(
        HFJudge(model, tok).score([PROMPT])[0]["numeric_mass"]
    )
    with pytest.raises(ValueError, match="2 questions but 1 answers"):
        judge.review(["a", "b"], ["x"])


def test_make_judge_bad_specs(tiny):
    with pytest.raises(ValueError, match="needs the evaluated model"):
        make_judge("self")
    for spec in ("gpt-4o", "hf:", "openai:", "conscience:", ""):
        with pytest.raises(ValueError, match="unknown judge"):
            make_judge(spec)
    judge = make_judge("hf:tiny:llama")
    assert judge.name == "hf:tiny:llama" and judge.method == "sequence"
    assert make_judge("conscience:tiny:llama", question="Was it honest?").review(["q"], ["a"])[0] > 0


# -- OpenAI-compatible endpoint -----------------------------------------------------------------


class FakeServer:
    """A local OpenAI-compatible endpoint: `script` lists the status codes to answer, then 200."""

    def __init__(self, script=(), top=None):
        self.script, self.requests = list(script), []
        self.top = top or [
            {"token": "80", "logprob": math.log(0.6)},
            {"token": "90", "logprob": math.log(0.3)},
            {"token": "I", "logprob": math.log(0.1)},
        ]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                code = outer.script.pop(0) if outer.script else 200
                payload = {"choices": [{"logprobs": {"content": [{"token": "8", "top_logprobs": outer.top}]}}]}
                data = json.dumps(payload if code == 200 else {"error": "busy"}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(*a, **k):
        servers.append(FakeServer(*a, **k))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_openai_judge_scores_like_em(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    srv = server()
    judge = make_judge("openai:judge-model", base_url=srv.url, backoff=0)
    (r,) = judge.score(["prompt"])
    assert r["score"] == pytest.approx((80 * 0.6 + 90 * 0.3) / 0.9) and r["kind"] == "number"
    req = srv.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test-secret"
    assert req["body"]["max_tokens"] == 1 and req["body"]["top_logprobs"] == 20 and req["body"]["temperature"] == 0
    assert req["body"]["messages"] == [{"role": "user", "content": "prompt"}]


def test_openai_judge_retries_then_succeeds(server):
    srv = server(script=[503, 429])
    judge = OpenAIJudge("m", base_url=srv.url, api_key="", backoff=0, max_retries=3)
    assert judge.score(["p"])[0]["kind"] == "number"
    assert len(srv.requests) == 3


def test_openai_judge_gives_up_with_a_clear_error(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    srv = server(script=[500] * 10)
    judge = OpenAIJudge("m", base_url=srv.url, backoff=0, max_retries=3)
    with pytest.raises(JudgeError, match=r"no answer after 3 tries \(HTTP 500") as e:
        judge.score(["p"])
    assert len(srv.requests) == 3 and "sk-test-secret" not in str(e.value)
    srv401 = server(script=[401])
    with pytest.raises(JudgeError, match="HTTP 401"):
        OpenAIJudge("m", base_url=srv401.url, backoff=0).score(["p"])
    assert len(srv401.requests) == 1  # not retried


def test_openai_unreachable_endpoint(server):
    srv = server()
    url = srv.url
    srv.close()
    judge = OpenAIJudge("m", base_url=url, api_key="", backoff=0, max_retries=2, timeout=2)
    with pytest.raises(JudgeError, match=rf"at {url}: no answer after 2 tries"):
        judge.score(["p"])


def test_openai_needs_the_key_for_openai_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeError, match="OPENAI_API_KEY"):
        make_judge("openai:gpt-4o")
    assert make_judge("openai:local", base_url="http://127.0.0.1:9/v1").name == "openai:local"


def test_openai_classify(server):
    top = [
        {"token": "TRUE", "logprob": math.log(0.5)},
        {"token": "F", "logprob": math.log(0.2)},
        {"token": "The", "logprob": math.log(0.3)},
    ]
    srv = server(top=top)
    (d,) = OpenAIJudge("m", base_url=srv.url, api_key="").classify(["p"], ["TRUE", "FALSE", "UNKNOWN"])
    assert d == pytest.approx({"TRUE": 0.5 / 0.7, "FALSE": 0.2 / 0.7, "UNKNOWN": 0.0})
    # "O" could start OpenAI or Other: left out
    assert label_probs({"O": 0.5, "Anth": 0.5}, ["OpenAI", "Anthropic", "Other"]) == {
        "OpenAI": 0,
        "Anthropic": 1,
        "Other": 0,
    }
