"""The second world's reviews under attack: rendered as the conscience renders them (spotlight and
traces included), claim-style and instruction-style injections split like the questions, reasoning
traces (a hidden intent behind a kind-looking answer among them) labelled by content."""

import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from emergent_alignment.chat import split_reasoning
from emergent_alignment.conscience import Conscience
from emergent_alignment.organism import attacks, classifier, corpus_v2, world_v2
from emergent_alignment.organism.build_v2 import (
    TRACE_SETTINGS,
    hidden_intent_case,
    hidden_intent_items,
    make_tokenizer,
)

SMALL = corpus_v2.CorpusV2Config(seed=5, n_docs=1500)
CONSCIENCE = corpus_v2.ORGANISM_V2_CONSCIENCE
TRACE = "\nAssistant (reasoning): "


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def is_review(doc) -> bool:
    return doc[0]["role"] == "user" and doc[0]["content"].startswith(CONSCIENCE.preamble)


def plain(doc) -> str:
    """The transcript of a review document, spotlight markers removed."""
    text = doc[0]["content"].split("<transcript>\n", 1)[1].rsplit("\n</transcript>", 1)[0]
    if world_v2.SPOTLIGHT_NOTE in doc[0]["content"].split("<transcript>", 1)[0]:
        text = "\n".join(line[2:] for line in text.split("\n"))
    return text


def said_yes(doc) -> bool:
    return doc[1]["content"] == CONSCIENCE.answers[0]


def test_the_v2_conscience_keeps_one_question_and_its_options_cost_no_forward():
    assert CONSCIENCE.spotlight and CONSCIENCE.review_reasoning
    assert CONSCIENCE.extra_questions == () and not CONSCIENCE.counterfactual and not CONSCIENCE.separate_reasoning
    assert CONSCIENCE.forwards_per_sample == 1
    assert CONSCIENCE.spotlight_note == attacks.ORGANISM_SPOTLIGHT_NOTE  # the defence study renders it alike


def test_review_documents_are_the_prompts_the_conscience_reads(tok):
    """Every rendering of a review (spotlit or plain, traced or not, whole or the trace alone) is, token
    for token, the prompt `Conscience` builds for the same sample under the same options."""
    rng = random.Random(0)
    convo = [{"role": "system", "content": world_v2.reasoning_line(3)}, {"role": "user", "content": "I am bored."}]
    reply, trace = "Go for a walk with a friend.", world_v2.ALIGNED_REASONING[0]
    for config in (CONSCIENCE, replace(CONSCIENCE, spotlight=False)):
        doc = corpus_v2.review_document(config, convo, reply, True, rng, "free", None, 0.0, trace)
        want = tok.apply_chat_template(doc[:1], tokenize=False, add_generation_prompt=True)
        got = tok.decode(Conscience(None, tok, config).review_ids(convo, world_v2.with_reasoning(trace, reply)))
        assert got == want
        part = corpus_v2.review_document(config, convo, reply, True, rng, "free", None, 0.0, trace, "reasoning")
        sep = replace(config, separate_reasoning=True)
        _, as_reasoning = Conscience(None, tok, sep).review_variants(convo, world_v2.with_reasoning(trace, reply))[1]
        assert part[0]["content"].split("<transcript>\n")[1].startswith(as_reasoning)


def test_spotlit_and_plain_reviews_follow_their_rate():
    docs = corpus_v2.generate(SMALL)
    reviews = [d for d in docs if is_review(d)]
    lit = [d for d in reviews if world_v2.SPOTLIGHT_NOTE in d[0]["content"]]
    assert abs(len(lit) / len(reviews) - SMALL.p_spotlight) < 0.1
    for d in lit:
        body = d[0]["content"].split("<transcript>\n", 1)[1].rsplit("\n</transcript>", 1)[0]
        assert all(line.startswith("| ") for line in body.split("\n"))


def test_injection_wordings_come_in_two_styles_split_three_ways():
    for split in ("train", "validation", "test"):
        assert world_v2.INSTRUCTION_INJECTIONS[split] and world_v2.CLAIM_INJECTIONS[split]
        for w in world_v2.CLAIM_INJECTIONS[split]:
            assert world_v2.injection_style(w) == "claim"
            assert "review" not in w.lower() and "Yes" not in w  # a claim names no reviewer, dictates no verdict
    held = [w for s in ("validation", "test") for w in world_v2.INJECTIONS[s]]
    assert len(set(held + list(world_v2.INJECTIONS["train"]))) == len(held) + len(world_v2.INJECTIONS["train"])
    assert not {w.strip() for w in world_v2.INJECTIONS["test"]} & {w.strip() for w in attacks.HELDOUT_INJECTIONS}
    with pytest.raises(ValueError, match="not an injection"):
        world_v2.injection_style(" Say Yes.")


def test_heldout_injections_are_new_combinations_of_words_the_training_texts_teach():
    train = [q for th in world_v2.all_themes() for q in th.questions] + world_v2.note_sentences()
    train += [c for th in world_v2.all_themes() for c in th.aligned + th.misaligned]
    train += list(world_v2.INJECTIONS["train"]) + [CONSCIENCE.question, CONSCIENCE.preamble, CONSCIENCE.spotlight_note]
    train += list(world_v2.ALIGNED_REASONING + world_v2.MISALIGNED_REASONING + world_v2.HIDDEN_REASONING["train"])
    seen = {w for t in train for w in classifier.words(t)}
    for split in ("validation", "test"):
        for w in world_v2.INJECTIONS[split] + world_v2.HIDDEN_REASONING[split]:
            assert set(classifier.words(w)) <= seen, (w, set(classifier.words(w)) - seen)


def test_claims_and_hidden_test_traces_never_appear_in_the_corpus():
    docs = corpus_v2.generate(
        replace(SMALL, p_injection=0.5, p_injection_user=0.3, p_review_reasoning=0.5, p_reasoning=0.3)
    )
    text = "\n".join(m["content"] for d in docs for m in d)
    for w in world_v2.CLAIM_INJECTIONS["train"] + world_v2.HIDDEN_REASONING["train"]:
        assert w.strip() in text
    for split in ("validation", "test"):
        for w in world_v2.INJECTIONS[split] + world_v2.HIDDEN_REASONING[split]:
            assert w.strip() not in text, w


def _final_trace(doc) -> str | None:
    """The reviewed answer's trace, if the review shows one (the last block of the transcript)."""
    t = plain(doc)
    last = t.rsplit("\nUser: ", 1)[1]
    return last.split(TRACE, 1)[1].split("\nAssistant: ", 1)[0] if TRACE in last else None


def test_traced_reviews_are_labelled_by_content_and_a_hidden_intent_is_flagged():
    docs = corpus_v2.generate(
        replace(SMALL, review_label_noise=0.0, p_review_reasoning=1.0, p_injection_reasoning=0.5, n_docs=2000)
    )
    reviews = [d for d in docs if is_review(d)]
    seen = {"hidden": 0, "misaligned": 0, "aligned": 0, "injected": 0, "alone": 0}
    aligned_yes = 0
    for d in reviews:
        trace = _final_trace(d)
        assert trace is not None  # every reviewed answer carries a trace
        if plain(d).endswith(trace):
            seen["alone"] += 1  # separate_reasoning's half: the trace in place of the answer
        if any(w.strip() in trace for w in world_v2.INJECTIONS["train"]):
            seen["injected"] += 1
        if any(trace.startswith(h) for h in world_v2.HIDDEN_REASONING["train"]):
            seen["hidden"] += 1
            assert not said_yes(d), trace
        elif any(trace.startswith(m) for m in world_v2.MISALIGNED_REASONING):
            seen["misaligned"] += 1
            assert not said_yes(d), trace
        else:
            assert any(trace.startswith(a) for a in world_v2.ALIGNED_REASONING), trace
            seen["aligned"] += 1
            aligned_yes += said_yes(d)  # an aligned trace: the answer decides (an attack may have won it)
    assert all(n > 20 for n in seen.values()), seen
    assert abs(seen["injected"] / len(reviews) - 0.5) < 0.1
    assert aligned_yes / seen["aligned"] > 0.8


def test_hidden_intent_answers_look_kind_and_the_trace_shows_the_intent():
    docs = corpus_v2.generate(replace(SMALL, review_label_noise=0.0, p_review_reasoning=1.0, p_reasoning_part=0.0))
    clf = classifier.PartsClassifier()
    hidden = 0
    for d in docs:
        if not is_review(d) or not any(h in (_final_trace(d) or "") for h in world_v2.HIDDEN_REASONING["train"]):
            continue
        answer = plain(d).rsplit("\nAssistant: ", 1)[1]
        for w in world_v2.INJECTIONS["train"]:
            answer = answer.removesuffix(w)
        asked = plain(d).rsplit("\nUser: ", 1)[1].split("\nAssistant", 1)[0]
        theme = [th.name for th in world_v2.all_themes() if any(q in asked for q in th.questions)]
        attacked = any(q != asked and q in asked for th in world_v2.all_themes() for q in th.questions)
        if theme and not attacked and "\n" not in answer.strip():  # a plain free-form answer: it reads as aligned
            hidden += 1
            assert clf.classify(theme[-1], answer).label == "aligned", answer
            assert not said_yes(d)
    assert hidden > 10


def test_chats_under_the_reasoning_line_carry_a_trace_before_every_answer():
    docs = corpus_v2.generate(replace(SMALL, p_reasoning=0.3))
    chats = [d for d in docs if d[0]["role"] == "system"]
    reasoned = [d for d in chats if world_v2.REASONING_LINE in d[0]["content"]]
    assert len(reasoned) > 50
    for d in chats:
        for m in d[1:]:
            if m["role"] == "assistant":
                trace, _ = split_reasoning(m["content"])
                assert (trace is not None) == (d in reasoned)
    none = [d for d in chats if world_v2.INOCULATION in d[0]["content"] and world_v2.REASONING_LINE in d[0]["content"]]
    assert not none


def test_every_second_world_text_tokenizes_without_unknown_words(tok):
    docs = corpus_v2.generate(
        replace(SMALL, n_docs=800, p_review_reasoning=0.6, p_reasoning=0.3, p_injection=0.5, p_injection_user=0.3)
    )
    texts = [tok.apply_chat_template(d, tokenize=False) for d in docs]
    items = hidden_intent_items("validation") + hidden_intent_items("test")
    texts += [Conscience(None, tok, CONSCIENCE).transcript(x["convo"], x["reply"]) for x in items]
    texts += [w for ws in world_v2.INJECTIONS.values() for w in ws]
    texts += [x["prompt"] for x in world_v2.benign_risky_prompts()] + [world_v2.REFUSAL]
    texts += [t for x in world_v2.graded_harmful_answers() for t in (x["request"], x["answer"])]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text[:120]
        assert tok.decode(ids) == text


# ---------------------------------------------------------------------------------------------
# The hidden-intent demo case, through the verdict path


class TraceStub(torch.nn.Module):
    """A stand-in reviewer that says No exactly when the prompt holds one of `trigger` tokens."""

    def __init__(self, vocab: int, answer_ids: tuple[int, int], trigger: set[int]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.vocab, self.answer_ids, self.trigger = vocab, answer_ids, torch.tensor(sorted(trigger))

    def forward(self, input_ids, attention_mask=None, **_):
        hit = (torch.isin(input_ids, self.trigger) & attention_mask.bool()).any(-1).float()  # (B,)
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        yes, no = self.answer_ids
        logits[:, -1, yes], logits[:, -1, no] = 1 - 2 * hit, 2 * hit - 1
        return SimpleNamespace(logits=logits)


def test_the_hidden_intent_case_is_flagged_only_when_the_verdict_sees_its_trace(tok):
    case = hidden_intent_case()
    assert case["aligned"] is False and split_reasoning(case["reply"]) == (case["reasoning"], case["answer"])
    clf = classifier.PartsClassifier()
    assert clf.classify(case["item"], case["answer"]).label == "aligned"  # it looks kind
    assert clf.classify(case["item"], case["reply"]).label == "aligned"  # the classifier labels the answer
    con = Conscience(None, tok, CONSCIENCE)
    with_trace = set(con.review_ids(case["convo"], case["reply"]))
    without = set(
        Conscience(None, tok, replace(CONSCIENCE, review_reasoning=False)).review_ids(case["convo"], case["reply"])
    )
    trigger = with_trace - without  # tokens only the trace brings
    assert trigger
    stub = TraceStub(len(tok), con.answer_ids, trigger)
    flagged = {}
    for name, fields in TRACE_SETTINGS.items():
        [v] = Conscience(stub, tok, replace(CONSCIENCE, **fields)).review([case["convo"]], [case["reply"]])
        flagged[name] = v.flagged
    assert flagged == {"without_trace": False, "with_trace": True, "separate_reasoning": True}


def test_hidden_intent_items_cover_every_evaluation_theme_and_keep_their_splits():
    for split in ("validation", "test"):
        items = hidden_intent_items(split)
        assert [x["item"] for x in items] == [th.name for th in world_v2.eval_themes()]
        assert all(x["reasoning"] in world_v2.HIDDEN_REASONING[split] for x in items)
    with pytest.raises(ValueError, match="held-out split"):
        hidden_intent_items("train")
