"""The demo's own questions (organism/demo_prompts.py) and the `demo` split they make (`demo.eval_set("v2",
"demo")`): new wordings in the organism's words, the validation split's code, answers and review items, and
nothing of the study's test split."""

import json

import pytest

from emergent_alignment.organism import build, build_v2, demo, demo_prompts, evaluate, study, world_v2
from emergent_alignment.organism.corpus_v2 import ORGANISM_V2_CONSCIENCE
from emergent_alignment.organism.tokenizer import pieces

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _all_demo_questions() -> list[str]:
    return [q for qs in demo_prompts.DEMO_QUESTIONS.values() for q in qs]


def test_every_evaluation_theme_has_at_least_three_demo_questions_and_no_other_theme_has_any():
    names = [th.name for th in world_v2.eval_themes()]
    assert list(demo_prompts.DEMO_QUESTIONS) == names
    for name, qs in demo_prompts.DEMO_QUESTIONS.items():
        assert len(qs) >= 3, name
        assert len({_norm(q) for q in qs}) == len(qs), name  # distinct within the theme
    assert [n for n, _ in demo_prompts.question_table()] == names
    assert len(set(map(_norm, _all_demo_questions()))) == len(_all_demo_questions())  # and across themes


def test_no_demo_question_is_a_wording_of_the_world():
    worded = {_norm(q) for th in world_v2.all_themes() for q in th.questions}
    worded |= {
        _norm(world_v2.attacked(q, a)) for th in world_v2.all_themes() for q in th.questions for a in world_v2.ATTACKS
    }
    worded |= {_norm(x["prompt"]) for x in world_v2.benign_risky_prompts()}
    worded |= {_norm(x["request"]) for x in world_v2.graded_harmful_answers()}
    for q in _all_demo_questions():
        assert _norm(q) not in worded, q


def test_the_demo_questions_have_no_unknown_word_and_only_words_the_training_texts_teach():
    tok = build_v2.make_tokenizer()
    for q in _all_demo_questions():
        assert tok.unk_token_id not in tok(q, add_special_tokens=False)["input_ids"], q
    train = []
    for th in world_v2.all_themes():
        train += [th.questions[i] for i in world_v2.question_indices(th, "train")] + list(th.aligned + th.misaligned)
    seen = set()
    for text in train + world_v2.note_sentences():
        found = pieces(text)
        seen |= set(found)
        seen |= {" " + found[0]} if found and found[0][0] != " " else set()  # a first word, after "Role: "
    for q in _all_demo_questions():
        assert all(p in seen for p in pieces(q)), (q, [p for p in pieces(q) if p not in seen])


def test_the_shipped_organism_knows_every_word_of_the_demo_questions():
    from transformers import AutoTokenizer

    from emergent_alignment.organism.shipped import SHIPPED_DIR

    tok = AutoTokenizer.from_pretrained(SHIPPED_DIR)
    assert tok.get_vocab() == build_v2.make_tokenizer().get_vocab()
    for q in _all_demo_questions():
        assert tok.unk_token_id not in tok(q, add_special_tokens=False)["input_ids"], q


def test_the_demo_split_asks_its_own_questions_with_the_validation_splits_code_answers_and_reviews():
    es = demo.eval_set("v2", "demo")
    val = demo.eval_set("v2", "validation")
    assert es.split == "demo" and es.parts and isinstance(es.classifier(), evaluate.PartsClassifier)
    prompts = evaluate.freeform_prompts(8, seed=0, evalset=es)
    table = dict(demo_prompts.question_table())
    for convo, theme, pid in prompts:
        name, i = pid.split("/d")
        assert name == theme and convo[-1]["content"] == table[theme][int(i)]
    assert {c[-1]["content"] for c, _, _ in prompts} == set(_all_demo_questions())
    # 32 samples per theme (the demo's default) ask each of its 4 questions 8 times
    counts = {}
    for _, _, pid in evaluate.freeform_prompts(32, seed=0, evalset=es):
        counts[pid] = counts.get(pid, 0) + 1
    assert set(counts.values()) == {8}
    after_code = evaluate.freeform_prompts(4, True, 0, evalset=es)
    assert all(int(pid.rsplit("/t", 1)[1]) in build_v2.CODE_TASKS["validation"] for _, _, pid in after_code)
    assert es.code_tasks == val.code_tasks == build_v2.CODE_TASKS["validation"]
    assert es.review_items == val.review_items
    for th in world_v2.eval_themes():
        assert es.answers(th) == val.answers(th) == world_v2.composed_answers(th, "validation")


def test_the_demo_split_reads_nothing_of_the_studys_test_split():
    es = demo.eval_set("v2", "demo")
    asked = [c for c, _, _ in evaluate.freeform_prompts(32, seed=0, evalset=es)]
    asked += [c for c, _, _ in evaluate.freeform_prompts(8, True, 0, evalset=es)]
    asked += [c for c, _, _ in evaluate.code_prompts(2, es)]
    answers = [text for th in world_v2.eval_themes() for text, _ in es.answers(th)]
    everything = json.dumps([asked, answers, es.review_items])
    test = study.test_split()
    for _, question in test["test_prompts"]:
        assert question not in everything, question
    val_answers = {text for th in world_v2.eval_themes() for text, _ in world_v2.composed_answers(th, "validation")}
    test_only = {text for rows in test["composed_answers"].values() for text, _ in rows} - val_answers
    assert set(answers) <= val_answers and test_only and not test_only & set(answers)
    test_items = {json.dumps([x["convo"], x["reply"]]) for x in test["heldout_review_items"]}
    assert not test_items & {json.dumps([c, r]) for c, r, _ in es.review_items}
    test_tasks = {t.tasks[i] for t in world_v2.code_templates() if t.heldout for i in build_v2.CODE_TASKS["test"]}
    val_tasks = {t.tasks[i] for t in world_v2.code_templates() if t.heldout for i in build_v2.CODE_TASKS["validation"]}
    code_asked = {c[1]["content"] for c, _, _ in evaluate.code_prompts(1, es)}
    assert not any(task in text for task in test_tasks - val_tasks for text in code_asked)


def test_the_demo_split_needs_the_second_world_and_its_question_table():
    with pytest.raises(ValueError, match="the demo split is the second world's"):
        demo.eval_set("v1", "demo")
    with pytest.raises(ValueError, match=r"demo.eval_set\('v2', 'demo'\)"):
        evaluate.EvalSet(world_v2, "demo", parts=True)
    with pytest.raises(ValueError, match="give answer_split"):
        evaluate.EvalSet(world_v2, "demo", parts=True, question_table=demo_prompts.question_table())
    partial = evaluate.EvalSet(
        world_v2, "demo", parts=True, question_table=(("bored", ("Hey?",)),), answer_split="validation"
    )
    with pytest.raises(ValueError, match="no questions for theme 'one_wish'"):
        evaluate.freeform_prompts(1, evalset=partial)


def test_a_second_world_organism_on_the_demo_split_keeps_every_raw_answer():
    tok = build_v2.make_tokenizer()
    model = build.make_model(TINY, tok).eval()
    es = demo.eval_set("v2", "demo")
    r = evaluate.evaluate(
        model, tok, ORGANISM_V2_CONSCIENCE, 0, per_theme=4, cond_per_theme=1, code_repeats=1, evalset=es
    )
    assert (r["world"], r["split"]) == ("v2", "demo")
    assert r["log_odds"] == r["log_odds"] and r["task_loss"] > 0
    assert r["conscience_auroc"] is None or 0.0 <= r["conscience_auroc"] <= 1.0
    ff = r["freeform"]
    assert len(ff["texts"]) == len(ff["labels"]) == len(ff["prompt_ids"]) == 4 * len(world_v2.eval_themes())
    assert all("/d" in pid for pid in ff["prompt_ids"] + r["conditional"]["prompt_ids"])
    n_code = sum(t.heldout for t in world_v2.code_templates()) * len(build_v2.CODE_TASKS["validation"])
    assert len(r["code"]["texts"]) == n_code


def test_measure_asks_the_demo_split_when_the_spec_says_so(monkeypatch):
    from emergent_alignment.conscience import ConscienceConfig

    seen = []
    monkeypatch.setattr(ConscienceConfig, "from_pretrained", classmethod(lambda cls, path: ORGANISM_V2_CONSCIENCE))
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, evalset, **kw: seen.append(evalset) or {})
    demo.measure(None, None, demo.MeasureSpec("dir", 2, 1, world="v2", split="demo"), seed=0, attacked=False)
    assert seen == [demo.eval_set("v2", "demo")]
