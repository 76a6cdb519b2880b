import json
import math
import time

import httpx
import pytest
import torch

from emergent_alignment.conscience import Conscience
from emergent_alignment.evaluation import openai_judge
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

TOP = [
    {"token": "80", "logprob": math.log(0.6)},
    {"token": "90", "logprob": math.log(0.3)},
    {"token": "I", "logprob": math.log(0.1)},
]


class FakeEndpoint:
    """An OpenAI-compatible endpoint in process (an httpx transport handed to the SDK).

    `script` lists the answers before the normal one: a status code, (status, headers), or raw
    bytes (a 200 whose body is those bytes). Every request is recorded with its arrival time."""

    def __init__(self, script=(), top=TOP):
        self.script, self.top, self.requests = list(script), top, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(
            {
                "time": time.monotonic(),
                "path": request.url.path,
                "auth": request.headers.get("Authorization"),
                "body": json.loads(request.content),
            }
        )
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, bytes):
            return httpx.Response(200, content=step, headers={"Content-Type": "application/json"})
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "busy", "type": "server_error"}}, headers=headers)
        return httpx.Response(
            200, json={"choices": [{"logprobs": {"content": [{"token": "8", "top_logprobs": self.top}]}}]}
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


URL = "http://127.0.0.1:9/v1"  # never reached: the transport answers
FAST = {"retry-after-ms": "10"}  # retried at once, so the tests do not wait on the SDK's backoff


def judge_on(endpoint, **kw):
    return OpenAIJudge("m", base_url=URL, http_client=endpoint.client(), **{"api_key": "", **kw})


def test_openai_judge_scores_like_em(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    endpoint = FakeEndpoint()
    judge = make_judge("openai:judge-model", base_url=URL, http_client=endpoint.client())
    (r,) = judge.score(["prompt"])
    assert r["score"] == pytest.approx((80 * 0.6 + 90 * 0.3) / 0.9) and r["kind"] == "number"
    assert r["numeric_mass"] == pytest.approx(0.9)
    req = endpoint.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test-secret"
    body = req["body"]
    assert body["model"] == "judge-model" and body["max_tokens"] == 1 and body["top_logprobs"] == 20
    assert body["temperature"] == 0 and body["logprobs"] is True and body["seed"] == 0
    assert body["messages"] == [{"role": "user", "content": "prompt"}]


def test_openai_judge_scores_many_prompts_in_order():
    """Worker threads share one client; each answer stays with its prompt."""
    endpoint = FakeEndpoint()
    judge = judge_on(endpoint, workers=4)
    out = judge.score([f"p{i}" for i in range(12)])
    assert len(out) == 12 and all(r["score"] == pytest.approx(out[0]["score"]) for r in out)
    assert sorted(r["body"]["messages"][0]["content"] for r in endpoint.requests) == sorted(f"p{i}" for i in range(12))


def test_openai_judge_honours_retry_after():
    """A 429 with Retry-After: 1 is retried after about a second (the SDK's own backoff is 0.5 s)."""
    endpoint = FakeEndpoint(script=[(429, {"Retry-After": "1"})])
    assert judge_on(endpoint, max_retries=2).score(["p"])[0]["kind"] == "number"
    first, second = endpoint.requests
    assert second["time"] - first["time"] >= 0.95


def test_openai_judge_retries_then_succeeds():
    endpoint = FakeEndpoint(script=[(503, FAST), (429, FAST)])
    assert judge_on(endpoint, max_retries=2).score(["p"])[0]["kind"] == "number"
    assert len(endpoint.requests) == 3


def test_openai_judge_gives_up_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    endpoint = FakeEndpoint(script=[(500, FAST)] * 10)
    judge = OpenAIJudge("m", base_url=URL, max_retries=2, http_client=endpoint.client())
    with pytest.raises(JudgeError, match=rf"'m' at {URL}: no answer after 3 tries \(HTTP 500") as e:
        judge.score(["p"])
    assert len(endpoint.requests) == 3 and "sk-test-secret" not in str(e.value)
    endpoint401 = FakeEndpoint(script=[401])
    with pytest.raises(JudgeError, match="HTTP 401"):
        judge_on(endpoint401).score(["p"])
    assert len(endpoint401.requests) == 1  # not retried


def test_openai_judge_malformed_responses():
    """A body that is not JSON is a clear error; JSON without logprobs scores nothing (as in EM)."""
    with pytest.raises(JudgeError, match="not JSON"):
        judge_on(FakeEndpoint(script=[b"{not json"])).score(["p"])
    (r,) = judge_on(FakeEndpoint(script=[b'{"choices": [{"logprobs": null}]}'])).score(["p"])
    assert r["score"] is None and r["numeric_mass"] == 0
    (r,) = judge_on(FakeEndpoint(script=[b'{"choices": "odd"}'])).score(["p"])
    assert r["score"] is None


def test_openai_unreachable_endpoint():
    refused = httpx.ConnectError("connection refused")
    endpoint = FakeEndpoint(script=[refused, refused, refused])
    judge = judge_on(endpoint, max_retries=1, timeout=2)
    with pytest.raises(JudgeError, match=rf"at {URL}: no answer after 2 tries"):
        judge.score(["p"])
    assert len(endpoint.requests) == 2


def test_openai_needs_the_key_for_openai_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeError, match="OPENAI_API_KEY"):
        make_judge("openai:gpt-4o")
    endpoint = FakeEndpoint()
    judge = make_judge("openai:local", base_url=URL, http_client=endpoint.client())
    assert judge.name == "openai:local"
    judge.score(["p"])
    assert endpoint.requests[0]["auth"] == "Bearer EMPTY"  # vLLM's placeholder; no key is invented


def test_openai_missing_package_gives_a_hint(monkeypatch):
    monkeypatch.setattr(openai_judge, "openai", None)
    with pytest.raises(JudgeError, match=r"pip install 'emergent-alignment\[openai\]'"):
        make_judge("openai:local", base_url=URL)


def test_openai_classify():
    top = [
        {"token": "TRUE", "logprob": math.log(0.5)},
        {"token": "F", "logprob": math.log(0.2)},
        {"token": "The", "logprob": math.log(0.3)},
    ]
    (d,) = judge_on(FakeEndpoint(top=top)).classify(["p"], ["TRUE", "FALSE", "UNKNOWN"])
    assert d == pytest.approx({"TRUE": 0.5 / 0.7, "FALSE": 0.2 / 0.7, "UNKNOWN": 0.0})
    # "O" could start OpenAI or Other: left out
    assert label_probs({"O": 0.5, "Anth": 0.5}, ["OpenAI", "Anthropic", "Other"]) == {
        "OpenAI": 0,
        "Anthropic": 1,
        "Other": 0,
    }
