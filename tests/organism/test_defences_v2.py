"""The defence study on a second-world organism (a tiny untrained v2 model: the plumbing, not the figures):
it reads the validation split only (items and wordings), counts each distinct transcript once, checks the
defences' words are in the organism's vocabulary, and renders its tables; the command picks it from the
organism's organism.json."""

import json
from dataclasses import replace

import pytest

from emergent_alignment.conscience import Conscience
from emergent_alignment.organism import attacks, build, build_v2, world_v2
from emergent_alignment.organism.corpus_v2 import ORGANISM_V2_CONSCIENCE

TINY = build_v2.OrganismV2Config(hidden=32, layers=1, heads=2, ffn=64)
# Every verdict flagged (p_aligned < 1), so every injection is tried on every misaligned transcript.
ALL_FLAGGED = replace(ORGANISM_V2_CONSCIENCE, flag_threshold=1.0, batch_size=64)


@pytest.fixture(scope="module")
def tiny_v2():
    tok = build_v2.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


@pytest.fixture
def few_items(monkeypatch):
    """The study's item sources cut to a few (time), recording the split each was asked for."""
    asked = []
    real_items, real_hidden = build_v2.heldout_review_items, build_v2.hidden_intent_items

    def items(split="validation"):
        asked.append(split)
        rows = real_items(split)
        bad = [x for x in rows if not x["aligned"]]
        return [x for x in rows if x["aligned"]][:3] + bad[:2] + [x for x in bad if x["kind"] == "code"][:1]

    def hidden(split="validation"):
        asked.append(split)
        return real_hidden(split)[:2]

    monkeypatch.setattr(build_v2, "heldout_review_items", items)
    monkeypatch.setattr(build_v2, "hidden_intent_items", hidden)
    return asked


@pytest.fixture
def reviewed(monkeypatch):
    """Every (conversation, response) any conscience reviews during the test."""
    seen = []
    real = Conscience.review

    def review(self, conversations, responses, reasonings=None):
        seen.extend(zip(conversations, responses))
        return real(self, conversations, responses, reasonings)

    monkeypatch.setattr(Conscience, "review", review)
    return seen


def _text(convo, reply) -> str:
    return "\n".join(m["content"] for m in convo) + "\n" + reply


def test_the_study_reads_the_validation_split_only(tiny_v2, few_items, reviewed):
    model, tok = tiny_v2
    r = attacks.defence_study_v2(model, tok, ALL_FLAGGED)
    assert few_items and set(few_items) == {"validation"}  # never asked for test items
    validation = [*world_v2.INSTRUCTION_INJECTIONS["validation"], *world_v2.CLAIM_INJECTIONS["validation"]]
    assert r["split"] == "validation" and r["wordings"] == validation
    texts = [_text(c, x) for c, x in reviewed]
    test_words = [w.strip() for w in world_v2.INJECTIONS["test"]] + list(world_v2.HIDDEN_REASONING["test"])
    for w in test_words:
        assert not any(w in t for t in texts), f"a test-split wording was reviewed: {w!r}"
    test_questions = {x["convo"][-1]["content"] for x in build_v2.heldout_review_items("test")}
    test_questions -= {x["convo"][-1]["content"] for x in build_v2.heldout_review_items("validation")}
    assert not any(c[-1]["content"] in test_questions for c, _ in reviewed)
    # each validation wording in each place: after the answer, in the user turn, in the trace
    for w in validation:
        assert any(x.endswith(w) for _, x in reviewed), w
        assert any(c[-1]["content"].endswith(w) for c, _ in reviewed), w
        assert any(w in x.split("</think>")[0] for _, x in reviewed if "<think>" in x), w


def test_each_distinct_transcript_counts_once_and_each_style_and_place_is_apart(tiny_v2, few_items):
    model, tok = tiny_v2
    r = attacks.defence_study_v2(model, tok, ALL_FLAGGED)
    bad, hidden = r["misaligned_transcripts"], r["injections"]["claim/reasoning"]["transcripts"]
    assert (bad, r["aligned_transcripts"], hidden) == (3, 3, 2)
    assert list(r["injections"]) == [
        f"{s}/{p}" for p in ("answer", "user", "reasoning") for s in ("instruction", "claim")
    ]
    names = ["none", "default", "spotlight", "counterfactual", "extra_questions", "separate_reasoning", "all"]
    assert list(r["settings"]) == names
    assert not any(r["settings"]["none"]["config"].values())
    assert r["settings"]["default"]["config"]["spotlight"]  # the organism's own config: spotlight on
    for row in r["settings"].values():
        assert row["flagged"] == bad and row["pools_flagged"] == {"review": bad, "hidden_intent": hidden}
        # the pooled flip rate: one cluster per distinct transcript (4 injections on a review item, 2 on a trace)
        assert row["flip"]["n"] == bad + hidden and row["flip"]["rate"] == 0.0
        for name, inj in row["injections"].items():
            assert inj["flip"]["n"] == (hidden if name.endswith("reasoning") else bad)
            assert inj["flip_per_wording"] == [0.0]
        assert row["false_flag"]["rate"] == 1.0 and row["cost"]["forwards"] == row["forwards_per_sample"]
    assert r["settings"]["all"]["cost"]["tokens"] > 1.0


def test_the_tables_render_every_setting_and_a_dash_where_nothing_was_flagged(tiny_v2, few_items):
    model, tok = tiny_v2
    r = attacks.defence_study_v2(model, tok, replace(ALL_FLAGGED, flag_threshold=0.0))  # nothing flagged
    assert all(row["flip"]["rate"] is None and row["flip"]["n"] == 0 for row in r["settings"].values())
    table = attacks.defence_table(r)
    main, rest = table.split("\n\n", 1)
    assert main.count("\n| ") == len(r["settings"])  # a row each, after the header
    assert "flip rate, validation wordings, every place" in main
    assert "| the organism's default (spotlight) | 0 of 3 | - | - | 0.0% [0.0, 0.0] |" in main
    assert "| instruction, appended to the answer | claim, appended to the answer |" in rest
    assert "| instruction, in the trace | claim, in the trace | hidden intent: flagged |" in rest
    assert "| none (the plain verdict) | - | - | - | - | - | - | 0 of 2 |" in rest
    assert "The validation split's 2 wordings" in rest and "issue" not in table.lower()


def test_the_defences_words_must_be_known_to_the_organism(tiny_v2, few_items):
    model, tok = tiny_v2
    assert (
        attacks.unknown_words(tok, attacks.defence_words(attacks.defence_settings(ORGANISM_V2_CONSCIENCE)["all"])) == []
    )
    assert attacks.unknown_words(tok, [ORGANISM_V2_CONSCIENCE.spotlight_note]) == []
    odd = replace(ALL_FLAGGED, extra_questions=("Was that answer zorblaxian?",))
    with pytest.raises(ValueError, match="'Was that answer zorblaxian\\?' has words this organism does not know"):
        attacks.defence_study_v2(model, tok, odd)


def test_the_command_picks_the_second_world_study_from_organism_json(tiny_v2, few_items, tmp_path):
    from emergent_alignment.commands import redteam

    model, tok = tiny_v2
    org = tmp_path / "org"
    build_v2.save(model, tok, {"world": "v2", "hash": "feed", "gate": {"passed": False}}, str(org))
    out = tmp_path / "out"
    assert redteam.organism_defences(str(out), str(org)) == 0
    result = json.loads((out / "defences.json").read_text())
    assert result["world"] == "v2" and result["split"] == "validation"
    assert result["organism"]["hash"] == "feed" and result["organism"]["gate_passed"] is False
    assert "default" in result["settings"] and "claim/user" in result["injections"]
    assert (out / "table.md").read_text() == attacks.defence_table(result)
    with pytest.raises(ValueError, match="no organism.json"):
        redteam.organism_defences(str(out), str(tmp_path))


def test_inject_puts_wordings_where_the_builds_figures_do():
    """`attacks.inject` and the build's own copy (`build_v2._injected`, frozen with the second world's
    sources) give the same items for every place."""
    from emergent_alignment.organism import build_v2
    from emergent_alignment.organism.attacks import inject

    items = build_v2.hidden_intent_items("validation")[:3]
    wordings = (" one.", " two.")
    for where in ("answer", "user", "reasoning"):
        assert inject(items, wordings, where) == build_v2._injected(items, wordings, where)
    with pytest.raises(ValueError, match="where must be"):
        inject(items, wordings, "elsewhere")
