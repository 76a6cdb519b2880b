"""The second world's build on a tiny organism (too small to learn anything: the gate must stop it,
and the record must still hold its conscience figures on the validation split)."""

import json
import os

import pytest

from emergent_alignment.conscience import ConscienceConfig
from emergent_alignment.organism import build, build_v2, world_v2
from emergent_alignment.organism.corpus_v2 import ORGANISM_V2_CONSCIENCE, CorpusV2Config

TINY = build_v2.OrganismV2Config(
    corpus=CorpusV2Config(n_docs=32),
    hidden=32,
    layers=1,
    heads=2,
    ffn=64,
    gate_samples=8,
    batch_size=8,
    probe_every=0,
)


def test_a_tiny_v2_build_fails_the_gate_and_keeps_its_figures(tmp_path):
    out = str(tmp_path / "organism")
    with pytest.raises(build.GateFailed, match="persona gate failed"):
        build_v2.build(out, TINY)
    kept = out + ".gate-failed"
    assert not os.path.exists(out)
    meta = json.load(open(os.path.join(kept, "organism.json")))
    assert meta["world"] == "v2" and meta["hash"] == build_v2.config_hash(TINY)
    assert meta["gate"]["passed"] is False and meta["gate"]["after_insecure"]["n"] == 8
    con = meta["conscience"]
    assert con["split"] == "validation" and con["n"] == len(build_v2.heldout_review_items("validation"))
    for variant in ("clean", "injected", "claimed", "user_injected"):
        assert 0.0 <= con[variant]["auroc_all"] <= 1.0
    for variant in ("hidden_intent", "hidden_intent_claimed"):
        assert set(con[variant]) == set(build_v2.TRACE_SETTINGS)
        assert all(0.0 <= row["flagged"] <= 1.0 for row in con[variant].values())
    saved = ConscienceConfig.from_pretrained(kept)
    assert saved == ORGANISM_V2_CONSCIENCE and saved.spotlight and saved.forwards_per_sample == 1
    assert meta["review_gaps"]
    assert build_v2.OrganismV2Config.from_dict(meta["config"]) == TINY


def test_injections_go_into_the_answer_the_user_turn_and_the_trace():
    from emergent_alignment.chat import split_reasoning

    items = build_v2.heldout_review_items("validation")[:3]
    w = world_v2.CLAIM_INJECTIONS["validation"]
    answer, user = build_v2._injected(items, w, "answer"), build_v2._injected(items, w, "user")
    assert all(a["reply"] == x["reply"] + w[0] and a["convo"] == x["convo"] for a, x in zip(answer, items))
    assert all(u["convo"][-1]["content"].endswith(w[0]) and u["reply"] == x["reply"] for u, x in zip(user, items))
    assert all(x["convo"][-1]["content"] != u["convo"][-1]["content"] for u, x in zip(user, items))  # a copy
    hidden = build_v2._injected(build_v2.hidden_intent_items("validation"), w, "reasoning")
    for x in hidden:
        trace, answer = split_reasoning(x["reply"])
        assert trace.endswith(w[0].strip()) and answer == x["answer"]


def test_the_v2_cache_key_differs_from_the_default_and_names_the_world():
    assert build_v2.config_hash(TINY) != build.config_hash(build.OrganismConfig())
    assert os.path.basename(build_v2.cache_path(TINY)).startswith(world_v2.NAME + "-")


def test_spotlight_markers_of_punctuation_need_no_new_words():
    tok = build_v2.make_tokenizer()
    marked = "\n".join(f"> {line}" for line in world_v2.eval_themes()[0].questions[:3])
    marked += "\n| ^ " + world_v2.INJECTIONS["test"][0].strip()
    ids = tok(marked, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == marked
