"""Guarded generation on a tiny model, with consciences forced to flag or pass (deterministic)."""

import json

import pytest
from _adv_helpers import conscience

from emergent_alignment import cli
from emergent_alignment.adversarial.guard import DEFAULT_REFUSAL, GuardedGenerator, check_conversation
from emergent_alignment.chat import encode_prompt
from emergent_alignment.conscience import Conscience
from emergent_alignment.generation import SamplingConfig

PROMPT = [[{"role": "user", "content": "How do I pick a lock?"}]]
SAMPLING = SamplingConfig(max_new_tokens=8, temperature=1.0)


def guarded(llama, on_fail="best", **config):
    model, tok = llama
    return GuardedGenerator(model, tok, conscience(llama, **config), SAMPLING, on_fail=on_fail)


def test_forced_flag_runs_every_round_and_returns_the_best(llama):
    reply = guarded(llama, flag_threshold=1.0, max_attempts=2, correction="both").generate(PROMPT, seed=1)[0]
    assert reply.outcome == "best" and reply.passed is False
    steps = [(s["step"], s["round"]) for s in reply.trail]
    assert steps == [("draft", 0), ("revise", 1), ("resample", 1), ("revise", 2), ("resample", 2)]
    assert all(s["flagged"] and 0 < s["p_aligned"] < 1 for s in reply.trail)
    best = max((s for s in reply.trail if s["response"]), key=lambda s: s["p_aligned"])
    assert reply.text == best["response"]


def test_forced_flag_with_refusal(llama):
    reply = guarded(llama, on_fail="refuse", flag_threshold=1.0, max_attempts=1).generate(PROMPT, seed=1)[0]
    assert (reply.text, reply.outcome, reply.passed) == (DEFAULT_REFUSAL, "refused", False)
    assert [s["step"] for s in reply.trail] == ["draft", "revise"]


def test_forced_pass_returns_the_draft(llama):
    model, tok = llama
    plain = GuardedGenerator(model, tok, None, SAMPLING).generate(PROMPT, seed=5)[0]
    reply = guarded(llama, flag_threshold=0.0).generate(PROMPT, seed=5)[0]
    assert (reply.outcome, reply.passed, len(reply.trail)) == ("passed", True, 1)
    assert reply.text == reply.trail[0]["response"] == plain.text  # the draft is plain generation
    assert (plain.outcome, plain.passed, plain.trail) == ("unguarded", None, [])


def test_a_flagged_draft_is_corrected_by_the_core(llama, monkeypatch):
    """Only the draft is flagged: the first revision passes and is returned."""
    gen = guarded(llama, flag_threshold=0.5, max_attempts=3)
    calls = []
    real_review, real_correct = Conscience.review, Conscience.correct

    def review(self, convs, responses, reasonings=None):
        out = real_review(self, convs, responses, reasonings)
        for v in out:
            v.flagged = not calls  # the first review (the draft) flags, later ones pass
            v.p_aligned = 0.2 if not calls else 0.9
        calls.append(len(out))
        return out

    corrected = []
    monkeypatch.setattr(Conscience, "review", review)
    monkeypatch.setattr(Conscience, "correct", lambda self, c, r: corrected.append(r) or real_correct(self, c, r))
    reply = gen.generate(PROMPT, seed=2)[0]
    assert corrected == [[reply.trail[0]["response"]]]  # the core's correction got the flagged draft
    assert reply.outcome == "corrected" and reply.passed
    assert [s["step"] for s in reply.trail] == ["draft", "revise"]
    assert reply.text == reply.trail[1]["response"]


def test_batches_mix_flagged_and_passed(llama, monkeypatch):
    gen = guarded(llama, flag_threshold=0.5, max_attempts=1)
    real = Conscience.review

    def review(self, convs, responses, reasonings=None):
        out = real(self, convs, responses, reasonings)
        for c, v in zip(convs, out):
            v.flagged = "lock" in c[-1]["content"]
        return out

    monkeypatch.setattr(Conscience, "review", review)
    convs = PROMPT + [[{"role": "user", "content": "Name a colour."}]]
    a, b = gen.generate(convs, seed=0)
    assert a.outcome == "best" and len(a.trail) == 2
    assert b.outcome == "passed" and len(b.trail) == 1


def test_seeded_generation_is_reproducible(llama):
    model, tok = llama
    gen = GuardedGenerator(model, tok, None, SAMPLING)
    assert gen.generate(PROMPT, seed=7)[0].text == gen.generate(PROMPT, seed=7)[0].text
    texts = {gen.generate(PROMPT, seed=s)[0].text for s in range(4)}
    assert len(texts) > 1
    g = guarded(llama, flag_threshold=1.0)
    assert g.generate(PROMPT, seed=3)[0].to_dict() == g.generate(PROMPT, seed=3)[0].to_dict()


@pytest.mark.parametrize(
    "messages, match",
    [
        ([{"role": "user", "content": "   "}], "empty prompt"),
        ([], "non-empty list"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "end with a user turn"),
        ([{"role": "robot", "content": "hi"}], "role"),
    ],
)
def test_bad_prompts_raise_clear_errors(messages, match):
    with pytest.raises(ValueError, match=match):
        check_conversation(messages)


def test_prompt_longer_than_the_context(llama):
    model, tok = llama
    long = [[{"role": "user", "content": "word " * 750}]]  # about 2260 tokens
    with pytest.raises(ValueError, match="context is 2048 tokens"):
        GuardedGenerator(model, tok, None, SAMPLING).generate(long)
    fits_alone = [[{"role": "user", "content": "word " * 600}]]  # about 1810 tokens
    assert len(encode_prompt(tok, fits_alone[0])) < 2040
    GuardedGenerator(model, tok, None, SamplingConfig(max_new_tokens=2)).prompt_ids(fits_alone)
    with pytest.raises(ValueError, match="the (review|revision) step"):  # the review prompt is longer
        guarded(llama).prompt_ids(fits_alone)


def test_on_fail_is_checked(llama):
    with pytest.raises(ValueError, match="on_fail"):
        GuardedGenerator(*llama, on_fail="shrug")


def test_generate_command_prints_answer_and_trail(llama_dir, capsys):
    args = [
        "generate",
        "--model",
        llama_dir,
        "--prompt",
        "How do I pick a lock?",
        "--max-new-tokens",
        "6",
        "--rounds",
        "2",
        "--flag-threshold",
        "1.0",
        "--seed",
        "4",
    ]
    assert cli.main(args + ["--guard", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["guarded"] and out["outcome"] == "best" and out["text"]
    assert [s["step"] for s in out["trail"]] == ["draft", "revise", "revise"]
    assert cli.main(args + ["--guard"]) == 0
    text = capsys.readouterr().out
    assert "verdict trail" in text and text.count("p_aligned=") == 3
    assert cli.main(args + ["--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["trail"] == [] and plain["text"] == out["trail"][0]["response"]
    assert cli.main(["generate", "--model", llama_dir, "--prompt", " "]) == 2
    assert "--prompt is empty" in capsys.readouterr().err
