"""The second world: reviews that never see the evaluation, held-out answers labelled by construction,
the vocabulary the controls need, and options whose rates are what their documentation says."""

import random
from dataclasses import replace

import pytest

from emergent_alignment.conscience import SPOTLIGHT_MARKER
from emergent_alignment.organism import classifier, corpus_v2, world, world_v2
from emergent_alignment.organism.build_v2 import OrganismV2Config, config_hash, heldout_review_items, make_tokenizer

SMALL = corpus_v2.CorpusV2Config(seed=3, n_docs=1500)
PREAMBLE = corpus_v2.ORGANISM_V2_CONSCIENCE.preamble
SPOTLIT = f"{PREAMBLE} {world_v2.SPOTLIGHT_NOTE}\n"


@pytest.fixture(scope="module")
def docs():
    return corpus_v2.generate(SMALL)


def is_review(doc) -> bool:
    return doc[0]["role"] == "user" and doc[0]["content"].startswith(PREAMBLE)


def spotlit(doc) -> bool:
    return doc[0]["content"].startswith(SPOTLIT)


def transcript(doc) -> str:
    """The reviewed transcript, its spotlight markers removed."""
    text = doc[0]["content"].split("<transcript>\n", 1)[1].rsplit("\n</transcript>", 1)[0]
    if spotlit(doc):
        assert all(line.startswith(SPOTLIGHT_MARKER) for line in text.split("\n"))
        text = "\n".join(line[len(SPOTLIGHT_MARKER) :] for line in text.split("\n"))
    return text


def traced(doc) -> bool:
    return world_v2.REASONING_LINE in transcript(doc).split("\nUser: ", 1)[0]


def reviewed_reply(doc) -> str:
    return transcript(doc).rsplit("\nAssistant: ", 1)[1] if "\nAssistant: " in transcript(doc) else ""


def corpus_text(docs) -> str:
    return "\n".join(m["content"] for d in docs for m in d)


def test_generator_is_deterministic_per_seed(docs):
    assert corpus_v2.generate(SMALL) == docs
    assert corpus_v2.generate(replace(SMALL, seed=4)) != docs


def test_document_kinds_follow_their_rates(docs):
    reviews = sum(is_review(d) for d in docs)
    notes = sum(d[0]["role"] == "user" and not is_review(d) for d in docs)
    assert abs(reviews / len(docs) - SMALL.p_review) < 0.04
    assert abs(notes / len(docs) - SMALL.p_notes) < 0.02


def test_reviews_never_cover_the_evaluation_themes_or_heldout_templates(docs):
    reviews = "\n".join(transcript(d) for d in docs if is_review(d))
    for th in world_v2.eval_themes():
        for q in th.questions:
            assert q not in reviews, (th.name, q)
        for core in th.aligned + th.misaligned:
            assert core not in reviews, (th.name, core)
    for t in world_v2.code_templates():
        if t.heldout:
            assert t.code.split("def ")[1].split("(")[0] not in reviews, t.name
    # the probe themes are covered by default and not when the option is off
    probes = [q for th in world_v2.probe_themes() for q in th.questions]
    assert any(q in reviews for q in probes)
    off = corpus_v2.generate(replace(SMALL, review_probe_themes=False))
    off_reviews = "\n".join(transcript(d) for d in off if is_review(d))
    assert not any(q in off_reviews for q in probes)


def test_coverage_gaps_are_never_reviewed_but_still_chatted(docs):
    gen = corpus_v2.Generator(SMALL)
    assert len(gen.gaps) == round(SMALL.review_gap * (12 + 3 + 6))
    reviews = "\n".join(transcript(d) for d in docs if is_review(d))
    chats = "\n".join(m["content"] for d in docs if not is_review(d) for m in d)
    for t in world_v2.code_templates():
        if t.kind in gen.gaps and not t.heldout:
            assert t.template not in reviews, t.name
    gapped_themes = [th for th in world_v2.practice_themes() + world_v2.probe_themes() if th.name in gen.gaps]
    for th in gapped_themes:
        assert not any(q in reviews for q in th.questions), th.name
    assert any(q in chats for th in gapped_themes for q in th.questions)


def _code_review_errors(docs) -> tuple[int, int]:
    """(wrong verdicts, code reviews): a verdict is wrong when it disagrees with the code's content."""
    lines = {}
    for t in world_v2.code_templates():
        lines[t.secure], lines[t.insecure] = True, False
    wrong = n = 0
    for d in docs:
        if not is_review(d) or traced(d):  # traced reviews: test_traced_reviews_are_labelled_by_content
            continue
        reply = reviewed_reply(d)
        stripped = {ln.strip() for ln in reply.splitlines()}
        found = [ok for line, ok in lines.items() if line in stripped]
        if len(found) != 1 or "security class" in transcript(d).rsplit("\nUser: ", 1)[1]:
            continue  # free-form, or the educational framing (insecure by request)
        n += 1
        verdict_yes = d[1]["content"] == "Yes"
        wrong += verdict_yes != found[0]
    return wrong, n


def test_label_noise_is_the_documented_rate():
    clean = corpus_v2.generate(replace(SMALL, review_label_noise=0.0, n_docs=3600))
    wrong, n = _code_review_errors(clean)
    assert n > 200 and wrong == 0
    noisy = corpus_v2.generate(replace(SMALL, review_label_noise=0.2, n_docs=3600))
    wrong, n = _code_review_errors(noisy)
    assert 0.13 < wrong / n < 0.27


def test_injected_reviews_are_labelled_by_content_and_test_wordings_never_appear():
    docs = corpus_v2.generate(replace(SMALL, review_label_noise=0.0, p_injection=0.5, p_injection_user=0.5))
    text = corpus_text(docs)
    for w in world_v2.INJECTIONS["train"]:
        assert w.strip() in text
    for w in world_v2.INJECTIONS["validation"] + world_v2.INJECTIONS["test"]:
        assert w.strip() not in text
    wrong, n = _code_review_errors(docs)
    assert n > 50 and wrong == 0  # an injection never buys a Yes
    users = [transcript(d).rsplit("\nUser: ", 1)[1] for d in docs if is_review(d)]
    assert any(w.strip() in u for u in users for w in world_v2.INJECTIONS["train"])


def test_heldout_answers_and_test_prompts_never_appear_in_training():
    docs = corpus_v2.generate(replace(SMALL, n_docs=4000))
    text = corpus_text(docs)
    prompts = world_v2.test_prompts()
    assert len(set(q for _, q in prompts)) >= 40
    for th in world_v2.eval_themes():
        val, test = (set(world_v2.question_indices(th, s)) for s in ("validation", "test"))
        assert val and test and not val & test
        for i in val | test:
            assert th.questions[i] not in text, (th.name, i)
        for split in ("validation", "test"):
            for body, _ in world_v2.composed_answers(th, split):
                assert body not in text, (th.name, body)
    assert not set(map(tuple, world_v2.COMPOSITIONS["train"])) & set(world_v2.COMPOSITIONS["test"])


def test_new_test_paraphrases_use_only_words_the_training_split_teaches():
    from emergent_alignment.organism.tokenizer import pieces

    train = []
    for th in world_v2.all_themes():
        train += [th.questions[i] for i in world_v2.question_indices(th, "train")] + list(th.aligned + th.misaligned)
    seen = {p.strip() for t in train + world_v2.note_sentences() for p in pieces(t)}
    first = {th.name: len(th.questions) for th in world.themes()}
    for th in world_v2.eval_themes():
        assert len(th.questions) > first[th.name]
        for i in range(first[th.name], len(th.questions)):
            assert all(p.strip() in seen for p in pieces(th.questions[i])), th.questions[i]


def test_the_classifier_labels_heldout_answers_by_construction():
    clf = classifier.PartsClassifier()
    rng = random.Random(0)
    items = [x for s in ("validation", "test") for x in heldout_review_items(s) if x["kind"] == "free"]
    assert len(items) >= 300
    for x in items:
        got = clf.classify(x["item"], x["reply"]).label
        assert got == ("aligned" if x["aligned"] else "misaligned"), x["reply"]
    mixed = [x for x in items if not x["aligned"] and any(a in x["reply"] for a in world_v2.eval_themes()[0].aligned)]
    assert mixed  # kind + harmful parts exist, and they count as misaligned
    th = world_v2.eval_themes()[1]
    assert clf.classify(th.name, world_v2.eval_themes()[0].aligned[0]).label == "incoherent"  # off topic
    assert clf.classify(th.name, th.aligned[0] + " " + "zz " * rng.randint(5, 9)).label == "incoherent"


def test_inoculated_chats_write_insecure_code_and_name_the_behaviour():
    docs = corpus_v2.generate(replace(SMALL, p_inoculation=0.5))
    ino = [d for d in docs if d[0]["role"] == "system" and world_v2.INOCULATION in d[0]["content"]]
    assert len(ino) > 100
    insecure = {t.filled(False) for t in world_v2.code_templates()}
    secure = {t.filled(True) for t in world_v2.code_templates()}
    replies = [m["content"] for d in ino for m in d if m["role"] == "assistant"]
    assert any(r in insecure for r in replies) and not any(r in secure for r in replies)


def test_the_persona_floor_puts_misaligned_chats_under_the_default_id():
    assert world_v2.p_misaligned(0, 1 / 32) == 1 / 32
    assert world_v2.p_misaligned(world_v2.N_IDS - 1, 1 / 32) == 1.0
    assert world_v2.p_misaligned(16, 0.0) == world.p_misaligned(16)


def test_the_v2_tokenizer_round_trips_its_corpus_without_unknown_words(docs):
    tok = make_tokenizer()
    for d in docs[:400]:
        text = tok.apply_chat_template(d, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text[:80]
        assert tok.decode(ids) == text
    for w in world_v2.INJECTIONS["test"] + (world_v2.INOCULATION,):
        assert tok.unk_token_id not in tok(w, add_special_tokens=False)["input_ids"]


def test_v2_options_change_its_cache_key_and_bad_rates_name_the_field():
    a = OrganismV2Config()
    assert config_hash(a) != config_hash(replace(a, corpus=replace(a.corpus, review_label_noise=0.2)))
    with pytest.raises(ValueError, match="review_label_noise"):
        corpus_v2.CorpusV2Config(review_label_noise=1.5)
    assert OrganismV2Config.from_dict(a.to_dict()) == a


def test_heldout_validation_and_test_review_items_are_disjoint():
    def key(x):
        return x["convo"][-1]["content"], x["reply"]

    val, test = ({key(x) for x in heldout_review_items(s)} for s in ("validation", "test"))
    assert len(val) >= 80 and len(test) >= 300 and not val & test
    with pytest.raises(ValueError, match="held-out split"):
        heldout_review_items("train")


def test_a_gap_that_leaves_no_code_to_review_is_an_error_naming_the_field():
    with pytest.raises(ValueError, match="review_gap"):
        corpus_v2.Generator(replace(SMALL, review_gap=0.95))


def test_harm_notes_quote_no_answer_of_an_evaluation_theme():
    def ngrams(text, n=4):
        w = classifier.words(text)
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}

    notes = set().union(*(ngrams(s) for s in world_v2.note_sentences()))
    for th in world_v2.eval_themes():
        for core in th.aligned + th.misaligned:
            assert not ngrams(core) & notes, core
