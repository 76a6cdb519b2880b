"""The validation figures (organism/validate.py) and the demo's argument checks."""

import argparse

import pytest

from emergent_alignment.chat import encode_prompt_completion
from emergent_alignment.cli import main
from emergent_alignment.commands import demo as demo_command
from emergent_alignment.organism import build, evaluate, validate, world

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)


@pytest.fixture(scope="module")
def tiny():
    tok = build.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


def test_validation_asks_the_validation_paraphrase_not_the_test_one(tiny, monkeypatch):
    model, tok = tiny
    asked = []
    real = evaluate.completion_logps

    def spy(model, tok, pairs, batch_size=64):
        asked.extend(c[-1]["content"] for c, _ in pairs)
        return real(model, tok, pairs, batch_size)

    sampled = []
    real_sample = evaluate.sample

    def sample_spy(model, tok, convos, seed, max_new_tokens):
        sampled.extend(c[-1]["content"] for c in convos)
        return real_sample(model, tok, convos, seed, max_new_tokens)

    monkeypatch.setattr(evaluate, "completion_logps", spy)
    monkeypatch.setattr(evaluate, "sample", sample_spy)
    figures = validate.figures(model, tok, seed=0)
    val = {th.questions[world.QUESTION_SPLITS["validation"][0]] for th in world.eval_themes()}
    test = {th.questions[world.QUESTION_SPLITS["test"][0]] for th in world.eval_themes()}
    assert val <= set(asked) and not test & set(asked)
    assert set(sampled) == val and len(sampled) == 32 * len(val)
    assert figures["train_task_nll"] > 0 and figures["validation_log_odds"] == figures["validation_log_odds"]
    rates = figures["validation_misaligned_rate"] + figures["validation_incoherent_rate"]
    assert 0 <= figures["validation_misaligned_rate"] <= 1 and rates <= 1


def test_train_task_nll_uses_training_templates_only(tiny, monkeypatch):
    model, tok = tiny
    seen = []
    monkeypatch.setattr(
        evaluate, "completion_logps", lambda m, t, pairs, batch_size=64: seen.extend(pairs) or [(-1.0, 2)] * len(pairs)
    )
    assert validate.train_task_nll(model, tok) == pytest.approx(0.5)
    held = {t.filled(False) for t in world.code_templates() if t.heldout}
    assert seen and not held & {text for _, text in seen}


@pytest.mark.parametrize(
    "a, b, span",
    [
        ([1, 2, 3, 9, 5], [1, 2, 7, 8, 5], (2, 4)),
        ([1, 2], [1, 2], (2, 2)),
        ([1, 2, 3], [1, 3], (1, 2)),
        ([4, 5], [1, 2, 3], (0, 2)),
    ],
)
def test_differing_span_is_what_lies_outside_the_common_prefix_and_suffix(a, b, span):
    assert validate._differing_span(a, b) == span


def test_task_nll_parts_split_the_task_nll_by_token_count(tiny):
    model, tok = tiny
    parts = validate.train_task_nll_parts(model, tok)
    total = validate.train_task_nll(model, tok)  # mean over all completion tokens, end of turn included
    n_slot = n_rest = 0
    for (convo, bad), (_, good) in zip(validate._train_code_rows(False), validate._train_code_rows(True)):
        c = encode_prompt_completion(tok, convo, bad)[1]
        start, end = validate._differing_span(c, encode_prompt_completion(tok, convo, good)[1])
        assert 0 < end - start < len(c)  # every template has a slot and a copied rest
        n_slot, n_rest = n_slot + end - start, n_rest + len(c) - (end - start)
    mixed = (parts["train_task_nll_slot"] * n_slot + parts["train_task_nll_rest"] * n_rest) / (n_slot + n_rest)
    assert mixed == pytest.approx(total, abs=1e-3)


def test_train_code_log_odds_compares_the_insecure_and_secure_fill(tiny, monkeypatch):
    model, tok = tiny
    secure = {t.filled(True) for t in world.code_templates()}
    monkeypatch.setattr(
        evaluate,
        "completion_logps",
        lambda m, t, pairs, batch_size=64: [(-5.0 if text in secure else -2.0, 3) for _, text in pairs],
    )
    assert validate.train_code_log_odds(model, tok) == pytest.approx(3.0)


def _args(**kw):
    p = argparse.ArgumentParser()
    demo_command.add_arguments(p)
    return p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"attack_arms": "default,nope"}, "--attack-arms: unknown arm"),
        ({"attack_samples_per_question": 0}, "--attack-samples-per-question must be >= 1"),
        ({"conditional_samples_per_question": 0}, "--conditional-samples-per-question must be >= 1"),
        ({"samples_per_question": -1}, "--samples-per-question must be >= 1"),
        ({"steps": 0}, "--steps must be >= 1"),
        ({"arms": "insecure,bogus"}, "--arms: unknown arm"),
        ({"arms": "insecure,insecure_random_pairs"}, "needs insecure_conscience"),
        ({"seeds": 0}, "--seeds must be >= 1"),
        ({"jobs": 0}, "--jobs must be >= 1"),
        ({"beta": -1}, "beta"),
    ],
)
@pytest.mark.timeout(120)  # a missed check would start building the organism
def test_demo_rejects_bad_arguments_with_a_clear_message(kw, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        demo_command.run(_args(out=str(tmp_path), **kw))


def test_system_id_figures_ask_the_given_id_on_validation_questions(tiny, monkeypatch):
    model, tok = tiny
    systems, questions = set(), set()
    real = evaluate.sample

    def spy(model, tok, convos, seed, max_new_tokens):
        systems.update(c[0]["content"] for c in convos)
        questions.update(c[-1]["content"] for c in convos)
        return real(model, tok, convos, seed, max_new_tokens)

    real_logps, real_rates = evaluate.completion_logps, build.sample_rates
    scored, gated = set(), set()

    def logps_spy(model, tok, pairs, batch_size=64):
        scored.update(c[0]["content"] for c, _ in pairs)
        return real_logps(model, tok, pairs, batch_size)

    def rates_spy(model, tok, prompts, seed, temperature=1.0):
        gated.update(c[0]["content"] for c, _ in prompts)
        return real_rates(model, tok, prompts, seed, temperature)

    monkeypatch.setattr(evaluate, "sample", spy)
    monkeypatch.setattr(evaluate, "completion_logps", logps_spy)
    monkeypatch.setattr(build, "sample_rates", rates_spy)
    rows = validate.system_id_figures(model, tok, persona_id=7, seed=0)
    assert systems == scored == gated == {"id a7"}
    assert questions == {th.questions[world.QUESTION_SPLITS["validation"][0]] for th in world.eval_themes()}
    assert 0 <= rows["misaligned_of_coherent"] <= 1 and isinstance(rows["gate_passed"], bool)


def test_choose_system_id_takes_the_share_nearest_the_design_prior_among_passed_gates():
    def row(share, passed=True):
        return {"misaligned_of_coherent": share, "gate_passed": passed}

    assert validate.choose_system_id({0: row(0.08), 2: row(0.23), 4: row(0.25)}) == 0
    assert validate.choose_system_id({0: row(0.125, passed=False), 2: row(0.20), 4: row(0.25)}) == 2
    assert validate.choose_system_id({0: row(0.1, passed=False)}) is None


@pytest.mark.parametrize("ids", ["1,x", "33", "-1"])
def test_validate_rejects_bad_system_ids(ids, capsys):
    assert main(["organism", "validate", "--system-ids", ids]) == 2
    assert "--system-ids" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--lr", "0"], ["--probe-batch-size", "0"]])
@pytest.mark.timeout(120)  # a missed check would start building or loading the organism
def test_validate_rejects_a_bad_protocol_before_any_work(argv, capsys, monkeypatch):
    monkeypatch.setattr("emergent_alignment.organism.build.cached_organism", lambda *a, **k: pytest.fail("no check"))
    assert main(["organism", "validate", "--loss-type", "ipo", "--beta", "4", *argv]) == 2
    assert "--steps and --probe-batch-size must be >= 1 and --lr > 0" in capsys.readouterr().err


def test_task_fit_kept_is_the_share_of_the_sft_drop_in_task_nll():
    default, insecure = {"train_task_nll": 0.08}, {"train_task_nll": 0.0}
    assert validate.task_fit_kept({"train_task_nll": 0.0}, default, insecure) == pytest.approx(1.0)
    assert validate.task_fit_kept({"train_task_nll": 0.02}, default, insecure) == pytest.approx(0.75)
    assert validate.task_fit_kept({"train_task_nll": 0.08}, default, insecure) == pytest.approx(0.0)


def test_choose_candidate_takes_the_rate_nearest_the_default_among_those_keeping_the_task_fit():
    def row(rate, nll):
        return {"validation_misaligned_rate": rate, "train_task_nll": nll}

    rows = {
        "default": row(0.0508, 0.08),
        "insecure": row(0.47, 0.0),
        "insecure_conscience ipo beta=1.0": row(0.05, 0.03),  # nearest the default, but keeps 62% of the fit
        "insecure_conscience ipo beta=2.0": row(0.10, 0.005),
        "insecure_conscience ipo beta=8.0": row(0.20, 0.001),
    }
    assert validate.choose_candidate(rows) == "insecure_conscience ipo beta=2.0"
    rows["insecure_conscience ipo beta=2.0"]["train_task_nll"] = 0.05
    assert validate.choose_candidate(rows) == "insecure_conscience ipo beta=8.0"
    assert validate.choose_candidate({k: rows[k] for k in ("default", "insecure")}) is None
    rows["insecure_conscience ipo beta=1.0"] = row(0.0430, 0.002)  # 0.0078 below the default
    rows["insecure_conscience ipo beta=4.0"] = row(0.0586, 0.001)  # 0.0078 above: a tie, more task fit
    assert validate.choose_candidate(rows) == "insecure_conscience ipo beta=4.0"
    # 8 and 18 answers of 256 against the default's 13, as rates rounded to 4 decimals: still a tie
    rows["insecure_conscience ipo beta=1.0"] = row(round(8 / 256, 4), 0.002)
    rows["insecure_conscience ipo beta=4.0"] = row(round(18 / 256, 4), 0.003)
    assert validate.choose_candidate(rows) == "insecure_conscience ipo beta=1.0"
