"""The organism's evaluation (organism/evaluate.py) on a tiny untrained model: the first world's default
is what it was, the second world asks its own split's questions, and every raw answer is kept."""

import hashlib
import json

import pytest

from emergent_alignment.organism import build, build_v2, corpus, demo, evaluate, world, world_v2
from emergent_alignment.organism.corpus_v2 import ORGANISM_V2_CONSCIENCE

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)
SEED = 1000

# Computed with the evaluation as it was before it took a world and a split (same tiny model, seed and
# sizes): digests of the sampled texts and prompts, and the deterministic measures to 4 decimals.
BEFORE = {
    "freeform_texts": "fc86d3329292c42b",
    "conditional_texts": "935d6f93277efce2",
    "code_texts": "f0cbe2e658827ab5",
    "demo_prompts": "ac3c355830bddea2",
    "log_odds": 12.5517,
    "task_loss": 7.1468,
    "conscience_auroc": 0.587191,
}


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def tiny_v1():
    tok = build.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


@pytest.fixture(scope="module")
def tiny_v2():
    tok = build_v2.make_tokenizer()
    return build_v2.make_model(TINY, tok).eval(), tok


def test_the_first_world_test_split_is_the_default_and_its_figures_are_unchanged(tiny_v1):
    model, tok = tiny_v1
    assert demo.eval_set() == demo.eval_set("v1", "test") == evaluate.EvalSet() == evaluate.FIRST_WORLD_TEST
    assert demo.MeasureSpec("dir", 32, 8).world == "v1" and demo.MeasureSpec("dir", 32, 8).split == "test"
    r = evaluate.evaluate(model, tok, corpus.ORGANISM_CONSCIENCE, SEED, per_theme=2, cond_per_theme=1, code_repeats=1)
    assert (r["world"], r["split"]) == ("v1", "test")
    demo_prompts = [  # the demo's prompt sets at its sizes, as (conversation, theme) / (conversation, template)
        [p[:2] for p in evaluate.freeform_prompts(32, seed=SEED)],
        [p[:2] for p in evaluate.freeform_prompts(8, True, SEED + 1)],
        [p[:2] for p in evaluate.code_prompts(2)],
        evaluate.labelled_transcripts(),
    ]
    got = {
        "freeform_texts": digest(r["freeform"]["texts"]),
        "conditional_texts": digest(r["conditional"]["texts"]),
        "code_texts": digest(r["code"]["texts"]),
        "demo_prompts": digest(demo_prompts),
        "log_odds": round(r["log_odds"], 4),
        "task_loss": round(r["task_loss"], 4),
        "conscience_auroc": round(r["conscience_auroc"], 6),
    }
    assert got == BEFORE
    assert r["freeform"]["examples"] == r["freeform"]["texts"][:: max(1, len(r["freeform"]["texts"]) // 16)]
    asked = {c[-1]["content"] for c, _, _ in evaluate.freeform_prompts(1, seed=SEED)}
    assert asked == {evaluate.split_question(th) for th in world.eval_themes()}


def _asked(evalset: evaluate.EvalSet, per_theme: int) -> set[str]:
    return {c[-1]["content"] for c, _, _ in evaluate.freeform_prompts(per_theme, seed=0, evalset=evalset)}


def test_the_second_world_asks_its_splits_questions_and_they_do_not_overlap():
    val, test = demo.eval_set("v2", "validation"), demo.eval_set("v2", "test")
    on_val, on_test = _asked(val, 5), _asked(test, 5)
    assert on_val == {
        th.questions[i] for th in world_v2.eval_themes() for i in world_v2.question_indices(th, "validation")
    }
    assert on_test == {q for _, q in world_v2.test_prompts()} and len(on_test) >= 40
    assert not on_val & on_test
    after_code = evaluate.freeform_prompts(4, True, 0, evalset=val)
    assert all(int(pid.rsplit("/t", 1)[1]) in build_v2.CODE_TASKS["validation"] for _, _, pid in after_code)
    for es in (val, test):
        tasks = {pid.rsplit("/t", 1)[1] for _, _, pid in evaluate.code_prompts(1, es)}
        assert tasks == {str(i) for i in build_v2.CODE_TASKS[es.split]}
        assert isinstance(es.classifier(), evaluate.PartsClassifier)
    with pytest.raises(ValueError, match="unknown evaluation split 'train'"):
        demo.eval_set("v2", "train")
    with pytest.raises(ValueError, match="unknown world 'v3'"):
        demo.eval_set("v3", "test")


def _check_raw_answers(r: dict, split: str, per_theme: int, cond_per_theme: int) -> set[str]:
    """Every sampled answer is kept with its prompt id and label; returns the questions asked."""
    themes = {th.name: th for th in world_v2.eval_themes()}
    asked = set()
    for field, n in (("freeform", per_theme * len(themes)), ("conditional", cond_per_theme * len(themes))):
        ff = r[field]
        assert len(ff["texts"]) == len(ff["prompt_ids"]) == len(ff["labels"]) == len(ff["themes"]) == n
        for pid, th in zip(ff["prompt_ids"], ff["themes"]):
            name, qi = pid.split("|")[0].split("/q")
            assert name == th and int(qi) in world_v2.question_indices(themes[th], split)
            asked.add(themes[th].questions[int(qi)])
    n_code = sum(t.heldout for t in world_v2.code_templates()) * len(build_v2.CODE_TASKS[split])
    assert len(r["code"]["texts"]) == len(r["code"]["prompt_ids"]) == len(r["code"]["labels"]) == n_code
    return asked


def test_a_second_world_organism_on_validation_and_on_test_keeps_every_raw_answer(tiny_v2):
    model, tok = tiny_v2
    val, test = demo.eval_set("v2", "validation"), demo.eval_set("v2", "test")
    r = evaluate.evaluate(
        model, tok, ORGANISM_V2_CONSCIENCE, 0, per_theme=2, cond_per_theme=1, code_repeats=1, evalset=val
    )
    assert (r["world"], r["split"]) == ("v2", "validation")
    assert r["log_odds"] == r["log_odds"] and r["task_loss"] > 0
    assert r["conscience_auroc"] is None or 0.0 <= r["conscience_auroc"] <= 1.0
    on_val = _check_raw_answers(r, "validation", 2, 1)
    # on test, the sampled measures only (the deterministic ones ask the same sets, checked above)
    on_test = evaluate.freeform(model, tok, evaluate.freeform_prompts(5, seed=0, evalset=test), 0, test)
    t = {"freeform": on_test, "conditional": {k: [] for k in on_test}, "code": evaluate.code(model, tok, 2, 1, test)}
    on_test = _check_raw_answers(t, "test", 5, 0)
    assert len(on_test) >= 40 and not on_val & on_test


def test_measure_passes_the_specs_world_and_split_to_the_evaluation(monkeypatch):
    from emergent_alignment.conscience import ConscienceConfig

    seen = []
    monkeypatch.setattr(ConscienceConfig, "from_pretrained", classmethod(lambda cls, path: ORGANISM_V2_CONSCIENCE))
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, evalset, **kw: seen.append(evalset) or {})
    demo.measure(None, None, demo.MeasureSpec("dir", 2, 1, world="v2", split="validation"), seed=0, attacked=False)
    demo.measure(None, None, demo.MeasureSpec("dir", 2, 1), seed=0, attacked=False)
    assert seen == [demo.eval_set("v2", "validation"), evaluate.FIRST_WORLD_TEST]


def test_the_guarded_answers_are_the_same_drafts_after_the_guard(tiny_v2, monkeypatch):
    """The guard alone: each sampled free-form answer is reviewed; a flagged one is replaced by its correction
    and labelled again. A stub conscience flags every other draft and corrects it to an aligned core."""
    from emergent_alignment.conscience import Conscience, Correction, Verdict

    model, tok = tiny_v2
    es = demo.eval_set("v2", "validation")
    prompts = evaluate.freeform_prompts(1, seed=0, evalset=es)
    themes = {th.name: th for th in world_v2.eval_themes()}
    drafts = [themes[th].misaligned[0] for _, th, _ in prompts]

    def review(self, convos, responses, reasonings=None):
        return [Verdict(float(i % 2), i % 2 == 0, 0.0, 0.0) for i in range(len(responses))]

    def correct(self, convos, responses, **kw):
        fixed = [themes[next(th for c2, th, _ in prompts if c2 is c)].aligned[0] for c in convos]
        return [Correction(f, Verdict(1.0, False, 0, 0), True) for f in fixed]

    monkeypatch.setattr(Conscience, "review", review)
    monkeypatch.setattr(Conscience, "correct", correct)
    g = evaluate.guarded_freeform(model, tok, ORGANISM_V2_CONSCIENCE, prompts, drafts, 0, es)
    n = len(prompts)
    assert g["labels"] == ["aligned" if i % 2 == 0 else "misaligned" for i in range(n)]
    assert g["outcomes"] == {"corrected": (n + 1) // 2, "passed": n // 2}
    assert g["prompt_ids"] == [pid for _, _, pid in prompts] and len(g["texts"]) == n
    r = evaluate.evaluate(
        model, tok, ORGANISM_V2_CONSCIENCE, 0, per_theme=1, cond_per_theme=1, code_repeats=1, evalset=es
    )
    assert "guarded" not in r  # measured only when asked
