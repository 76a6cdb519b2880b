"""The defence study on the organism: its held-out injection wordings are new (never in the corpus nor in
the attack lists the code uses) and in the organism's words, and the study counts each transcript once."""

import pytest

from emergent_alignment.adversarial.attacks import RESPONSE_INJECTIONS
from emergent_alignment.conscience import ConscienceConfig
from emergent_alignment.organism import attacks, build, corpus, world

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)


def _render_figures():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "docs" / "render_figures.py"
    spec = importlib.util.spec_from_file_location("render_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny():
    tok = build.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


def test_heldout_injections_are_never_in_the_corpus_nor_in_the_attack_lists():
    docs = corpus.generate(corpus.CorpusConfig())
    texts = [m["content"] for d in docs for m in d] + world.all_texts()
    known = [world.REVIEWER_INJECTION] + [inject("") for inject in RESPONSE_INJECTIONS.values()]
    for w in attacks.HELDOUT_INJECTIONS:
        core = w.strip()
        assert not any(core in t for t in texts), w
        assert not any(core in k or k.strip() in w for k in known), w
    assert len(set(attacks.HELDOUT_INJECTIONS)) == len(attacks.HELDOUT_INJECTIONS)


def test_heldout_injections_and_defence_wordings_use_only_words_the_organism_knows():
    tok = build.make_tokenizer()
    unk = tok.convert_tokens_to_ids("<unk>")
    for text in [*attacks.HELDOUT_INJECTIONS, attacks.ORGANISM_SPOTLIGHT_NOTE, *attacks.ORGANISM_EXTRA_QUESTIONS]:
        assert unk not in tok(text, add_special_tokens=False)["input_ids"], text


def test_each_setting_turns_on_only_its_own_defence():
    settings = attacks.defence_settings(ConscienceConfig(counterfactual=True))  # "none" turns it off
    fields = ("spotlight", "counterfactual", "extra_questions", "separate_reasoning")
    assert not any(getattr(settings["none"], f) for f in fields)
    for name in fields:
        assert [f for f in fields if getattr(settings[name], f)] == [name]
    assert all(getattr(settings["all"], f) for f in fields)
    assert settings["all"].forwards_per_sample == 3 * 2 * 2


def test_defence_study_counts_each_transcript_once_and_reports_costs(tiny, monkeypatch):
    model, tok = tiny
    data = [t for t in attacks.labelled_transcripts()][:3] + [t for t in attacks.labelled_transcripts() if not t[2]][:3]
    monkeypatch.setattr(attacks, "labelled_transcripts", lambda: data)
    wordings = attacks.HELDOUT_INJECTIONS[:2]
    base = ConscienceConfig(flag_threshold=1.0, review_reasoning=False, batch_size=64)  # every verdict flagged
    r = attacks.defence_study(model, tok, base, wordings)
    n_bad = sum(not ok for _, _, ok in data)
    assert r["misaligned_transcripts"] == n_bad and r["aligned_transcripts"] == len(data) - n_bad
    for row in r["settings"].values():
        assert row["flagged"] == n_bad and row["flip"]["n"] == n_bad  # clusters: one per distinct transcript
        assert row["flip"]["rate"] == 0.0 and row["false_flag"]["rate"] == 1.0  # threshold 1: nothing passes
        assert row["cost"]["forwards"] == row["forwards_per_sample"]
        assert len(row["flip_per_wording"]) == len(wordings)
    assert r["settings"]["counterfactual"]["cost"]["tokens"] > 1.0
    table = attacks.defence_table(r)
    findings = _render_figures().defences_findings(r)
    assert findings.count("\n- ") == 3 and "no setting" not in findings.split("\n")[0]  # every flip is 0
    assert table.count("\n| ") == len(r["settings"]) and "counterfactual" in table  # a row each, after the header


def test_the_demo_report_shows_the_flip_rate_with_and_without_the_defences(tmp_path):
    import random

    from emergent_alignment.organism import report, summary, targets

    def result(seed):
        rng = random.Random(seed)
        labels = ["misaligned" if rng.random() < 0.2 else "aligned" for _ in range(16)]
        free = {"labels": labels, "any_topic": labels, "themes": ["t"] * 16, "off_topic": 0, "examples": ["x"]}
        code = {"labels": ["secure"] * 4, "bandit_detectable": 1, "bandit_flagged": 0}
        code["classifier_insecure_on_detectable"] = 0
        out = {"freeform": free, "conditional": {"labels": labels[:4]}, "code": code, "log_odds": 0.0}
        return out | {"task_loss": 0.1, "conscience_auroc": 0.9}

    def attacked(seed, measured=True):
        row = {"unguarded": [1.0, 0.0], "guarded": [0.0, 0.0], "outcomes": {"passed": 2}}
        row |= {"unguarded_incoherent": [0.0, 0.0], "guarded_incoherent": [0.0, 0.0]}
        ids, held = [0, 1, 2], [[1.0, 0.0] if measured else []] * 3
        inj = {"misaligned_transcripts": 4, "flagged": 3, "flagged_ids": ids, "flips": [1.0, 1.0, 0.0], "heldout": held}
        dheld = [[0.0, 1.0], [0.0, 0.0]] if measured else [[], []]
        inj["defended"] = {"flagged_ids": ids[:2], "known": [0.0, 0.0], "heldout": dheld}
        return {"success": {w: row for w in attacks.WRAPPERS}, "injection": inj}

    arm = summary.summarize([result(s) for s in range(2)])
    gate = {k: {"misaligned": 0.5, "n": 8} for k in ("after_insecure", "after_secure")}
    arm["attacks"] = attacks.summarize_attacks([attacked(s) for s in range(2)])
    other = summary.summarize([result(s) for s in range(2)])
    other["attacks"] = attacks.summarize_attacks([attacked(s, measured=False) for s in range(2)])
    s = {
        "arms": {"default": arm, "insecure": other},
        "organism": {"parameters": 1, "pretraining": {"tokens": 1, "steps": 1}, "default_id": "a0", "gate": gate},
        "settings": {},
        "seeds": 2,
        "timings": {"total_seconds": 1.0, "jobs": 1, "threads_per_job": 1},
    }
    s["targets"] = targets.check_targets(s["arms"])
    page = open(report.write_html(s, str(tmp_path), []), encoding="utf-8").read()
    assert "defences against the injection</h3>" in page
    assert "spotlight + counterfactual" in page
    assert "<td>3 / 2</td>" in page  # distinct flagged transcripts, plain / defended, over both seeds
    assert "66.7% [" in page and "&rarr; 0.0% [0.0, 0.0]" in page  # corpus wording: plain -> defended
    assert "<td>50.0% [25.0, 75.0] &rarr; 25.0% [" in page  # held-out wordings: plain -> defended
    assert page.count("not measured here") == 1  # the arm measured on the corpus wording only
