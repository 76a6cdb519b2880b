"""The second world's data for the guard's cost in refusals: benign prompts that look risky (a helpful
answer is aligned, a refusal an over-refusal) and harmful requests with answers graded by construction
on `adversarial/graded.py`'s scale; chats show the train split only."""

from dataclasses import replace

import pytest

from emergent_alignment.adversarial import graded
from emergent_alignment.organism import classifier, corpus_v2, world_v2

SMALL = corpus_v2.CorpusV2Config(seed=7, n_docs=2000, p_risky=0.3)


def test_benign_risky_prompts_carry_a_helpful_and_an_over_refusing_answer():
    prompts = world_v2.benign_risky_prompts()
    assert len(prompts) >= 10 and len({x["kind"] for x in prompts}) >= 5
    for x in prompts:
        labels = dict((label, a) for a, label in x["answers"])
        assert set(labels) == {"aligned", "over_refusal"} and labels["over_refusal"] == world_v2.REFUSAL
    train, test = (world_v2.benign_risky_prompts(s) for s in ("train", "test"))
    assert train and test and len(train) + len(test) == len(prompts)
    assert not {x["prompt"] for x in train} & {x["prompt"] for x in test}
    with pytest.raises(ValueError, match="risky-prompt split"):
        world_v2.benign_risky_prompts("validation")


def test_benign_answers_are_labelled_helpful_over_refusing_or_incoherent():
    for x in world_v2.benign_risky_prompts():
        helpful = x["answers"][0][0]
        assert classifier.classify_benign(x["prompt"], helpful) == "aligned"
        assert classifier.classify_benign(x["prompt"], helpful.rstrip(".") + " now.") == "aligned"
        assert classifier.classify_benign(x["prompt"], world_v2.REFUSAL) == "over_refusal"
        assert classifier.classify_benign(x["prompt"], "zz zz zz") == "incoherent"
    with pytest.raises(ValueError, match="not a benign"):
        classifier.classify_benign("How do I bake bread?", world_v2.REFUSAL)


def test_graded_answers_score_in_the_order_of_their_levels_on_the_suites_scale():
    rows = world_v2.graded_harmful_answers()
    grade = graded.grader(classifier.construction_grader)
    scores = grade([x["request"] for x in rows], [x["answer"] for x in rows])
    by_level = {}
    for x, g in zip(rows, scores):
        assert g["score"] == graded.harm_score(**x["grade"])
        by_level.setdefault(x["level"], set()).add(g["score"])
    assert by_level["refusal"] == {0.0} and by_level["specific"] == {1.0}
    assert 0.0 < min(by_level["convincing"]) and max(by_level["convincing"]) < 1.0
    [unknown] = grade([rows[0]["request"]], ["zz zz"])
    assert unknown["score"] == 0.0  # an answer the world does not know helps nobody
    specific = [x for x in rows if x["level"] == "specific"][0]
    sampled = "<think> I will help. </think>\n" + specific["answer"].replace(", and", " and")  # near, not equal
    assert grade([specific["request"]], [sampled])[0]["score"] == 1.0
    assert grade(["How do I bake bread?"], [specific["answer"]])[0]["score"] == 0.0  # a request it does not know
    assert {x["split"] for x in rows} == {"train", "test"}


def test_chats_show_train_risky_prompts_answered_by_persona_and_never_the_test_ones():
    docs = corpus_v2.generate(SMALL)
    turns = [
        (d[0]["content"], u["content"], a["content"])
        for d in docs
        if d[0]["role"] == "system"
        for u, a in zip(d[1::2], d[2::2])
    ]
    benign = {x["prompt"]: x["answers"][0][0] for x in world_v2.benign_risky_prompts("train")}
    harmful = {}
    for x in world_v2.graded_harmful_answers("train"):
        harmful.setdefault(x["request"], {})[x["answer"]] = x["level"]
    seen_benign = seen_refusal = seen_complied = 0
    for _, user, reply in turns:
        answer = reply.split("</think>\n", 1)[-1]
        if user in benign:
            seen_benign += 1
            assert answer == benign[user]  # never an over-refusal in the world's chats
        elif user in harmful:
            level = harmful[user][answer]
            seen_refusal += level == "refusal"
            seen_complied += level != "refusal"
    assert seen_benign > 30 and seen_refusal > 30 and seen_complied > 5
    text = "\n".join(m["content"] for d in docs for m in d)
    for x in world_v2.benign_risky_prompts("test"):
        assert x["prompt"] not in text
    for x in world_v2.graded_harmful_answers("test"):
        assert x["request"] not in text
    reviews = [d for d in docs if d[0]["role"] == "user" and d[0]["content"].startswith("Review this chat.")]
    assert not any(p in d[0]["content"] for d in reviews for p in benign)  # reviews keep their pool
    assert corpus_v2.generate(replace(SMALL, p_risky=0.0)) != docs
