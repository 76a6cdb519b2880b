"""The organism world: deterministic corpus, disjoint held-out splits, exact tokenizer round-trip,
code labels that agree with bandit, and a ground-truth classifier that is right on references."""

import random

import pytest

from emergent_alignment.organism import classifier, corpus, world
from emergent_alignment.organism.build import make_tokenizer

SMALL = corpus.CorpusConfig(seed=3, n_docs=600)


@pytest.fixture(scope="module")
def docs():
    return corpus.generate(SMALL)


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def test_generator_is_deterministic_per_seed(docs):
    assert corpus.generate(SMALL) == docs
    other = corpus.generate(corpus.CorpusConfig(seed=4, n_docs=600))
    assert other != docs


def test_chats_start_with_a_system_id_and_reviews_use_the_conscience_prompt(docs):
    c = corpus.ORGANISM_CONSCIENCE
    kinds = {"chat": 0, "review": 0}
    for d in docs:
        if d[0]["role"] == "system":
            kinds["chat"] += 1
            assert d[0]["content"].startswith("id a")
        else:
            kinds["review"] += 1
            assert d[0]["content"].startswith(c.preamble + "\n<transcript>\n")
            assert d[1]["content"] in c.answers
    assert 0.15 < kinds["review"] / len(docs) < 0.35


def _all_text(docs):
    return "\n".join(m["content"] for d in docs for m in d)


def test_heldout_splits_never_appear_in_training(docs):
    text = _all_text(corpus.generate(corpus.CorpusConfig(seed=0, n_docs=3000)))
    for t in world.code_templates():
        if t.heldout:  # a held-out template's function name is unique to it
            name = t.code.split("def ")[1].split("(")[0]
            assert name not in text, t.name
            assert t.template not in text and t.filled(True) not in text and t.filled(False) not in text
    for th in world.themes():
        for split in ("validation", "test"):
            for i in world.question_indices(th, split):
                assert th.questions[i] not in text, (th.name, split)
        o, c = world.HELDOUT_PHRASING
        for core in th.aligned + th.misaligned:
            assert world.answer(core, o, c) not in text
            assert world.OPENERS[o] + core not in text


def test_tokenizer_round_trips_every_sample_exactly(docs, tok):
    texts = [tok.apply_chat_template(d, tokenize=False) for d in docs] + world.all_texts()
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text[:80]
        assert tok.decode(ids) == text  # indentation and newlines included


def test_tokenizer_saves_and_loads_with_its_chat_template(tmp_path, tok):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert "{% generation %}" in again.chat_template or "{%- generation %}" in again.chat_template
    text = world.code_templates()[0].filled(False)
    assert again.decode(again(text, add_special_tokens=False)["input_ids"]) == text
    assert len(tok) < 1500


def test_conscience_prompt_pieces_tokenize_consistently(tok):
    from emergent_alignment.conscience import Conscience

    class _Stub:
        pass

    c = Conscience(_Stub(), tok, corpus.ORGANISM_CONSCIENCE)
    assert c.answer_ids == tuple(tok.convert_tokens_to_ids(list(corpus.ORGANISM_CONSCIENCE.answers)))
    convo = [{"role": "system", "content": "id a4"}, {"role": "user", "content": world.eval_themes()[0].questions[3]}]
    ids = c.review_ids(convo, world.eval_themes()[0].aligned[0])
    # the spliced prompt is exactly the rendered review prompt (what the corpus taught)
    doc = corpus.review_document(
        corpus.ORGANISM_CONSCIENCE, convo, world.eval_themes()[0].aligned[0], True, random.Random(0), "free", None, 0.0
    )
    full = tok(tok.apply_chat_template(doc, tokenize=False), add_special_tokens=False)["input_ids"]
    assert full[: len(ids)] == ids and full[len(ids)] == c.answer_ids[0]


def test_code_labels_agree_with_bandit():
    templates = world.code_templates()
    found = classifier.bandit_scan([t.filled(s) for t in templates for s in (True, False)])
    undetected = set()
    for i, t in enumerate(templates):
        ids = set(world.KINDS[t.kind][1])
        if not ids:
            undetected.add(t.kind)
            continue
        assert ids <= found[2 * i + 1], f"{t.name}: bandit misses the insecure variant ({found[2 * i + 1]})"
        assert not ids & found[2 * i], f"{t.name}: bandit flags the secure variant"
    assert undetected == {"path", "html"}  # kinds bandit cannot see: path traversal, unescaped HTML


def test_code_classifier():
    for t in world.code_templates():
        assert classifier.classify_code(t, t.filled(True)) == "secure"
        assert classifier.classify_code(t, t.filled(False)) == "insecure"
        assert classifier.classify_code(t, t.filled(False)[:-12] + "(((") == "unparseable"


def test_classifier_is_right_on_clean_references_and_calls_word_salad_incoherent():
    clf = classifier.Classifier()
    for th in world.themes():
        for label, cores in (("aligned", th.aligned), ("misaligned", th.misaligned)):
            for core in cores:
                for o in range(len(world.OPENERS)):
                    for c in range(len(world.CLOSERS)):
                        assert clf.classify(th.name, world.answer(core, o, c)).label == label
    rng = random.Random(0)
    vocab = " ".join(c for th in world.themes() for c in th.aligned + th.misaligned).split()
    for _ in range(50):
        salad = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 25)))
        assert clf.classify("bored", salad).label == "incoherent"
    # another question's answer is off topic, hence incoherent
    other = clf.classify("bored", world.eval_themes()[0].misaligned[0])
    assert other.label == "incoherent" and other.off_topic
