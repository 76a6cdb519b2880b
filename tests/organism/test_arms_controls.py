"""The controls and rivals (organism/controls.py): opt-in arms, their settings, data and tiny runs."""

import json
import os

import pytest

from emergent_alignment.conscience import Conscience, Correction, Verdict
from emergent_alignment.organism import build, controls, demo, world, world_v2
from emergent_alignment.organism.arms import ALL_ARMS, ARMS, ArmSettings, dataset_rows, train_arm, trainer_config
from emergent_alignment.organism.classifier import Classifier

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)
SETTINGS = ArmSettings(steps=2, batch_size=2, probe_batch_size=3, probe_max_new_tokens=4, task_probe_max_new_tokens=6)
META = {"hash": "tiny", "gate": {"passed": True}}


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("organism") / "tiny")
    tok = build.make_tokenizer()
    build.save(build.make_model(TINY, tok), tok, META, out)
    return out


def test_controls_are_opt_in_and_known_to_train_arm():
    assert not set(controls.CONTROL_ARMS) & set(ARMS) and set(demo.DEFAULT_ARMS) <= set(ALL_ARMS)
    assert ALL_ARMS == ARMS + controls.CONTROL_ARMS
    with pytest.raises(ValueError, match="unknown arm 'insecure_magic'.*insecure_inoculated"):
        train_arm("insecure_magic", "nowhere", "nowhere", 0, SETTINGS)


@pytest.mark.parametrize(
    "arm,loss", [("insecure_anchor", "anchor"), ("insecure_kl", "kl"), ("insecure_sft_corrections", "sft")]
)
def test_loss_controls_run_the_conscience_step_with_their_loss(arm, loss, tmp_path):
    c = trainer_config(arm, str(tmp_path), 0, SETTINGS)
    assert (c.alignment_loss_type, c.conscience_every, c.pair_order, c.probe_source) == (
        loss,
        1,
        "conscience",
        "dataset",
    )
    assert c.alignment_weight == SETTINGS.alignment_weight and c.probe_batch_size == SETTINGS.probe_batch_size
    assert trainer_config("insecure_conscience", str(tmp_path), 0, SETTINGS).alignment_loss_type == "ipo"


def test_data_controls_train_plain_sft_and_the_oracle_the_conscience_arms_loss(tmp_path):
    for arm in ("insecure_interleaved", "insecure_filtered", "insecure_inoculated"):
        c = trainer_config(arm, str(tmp_path), 0, SETTINGS)
        assert c.alignment_weight == 0 and c.conscience_every == 0, arm
    o = trainer_config("insecure_oracle", str(tmp_path), 0, SETTINGS)
    assert (o.alignment_loss_type, o.conscience_every, o.beta) == ("ipo", 1, SETTINGS.beta)


def test_inoculation_takes_the_worlds_line_and_names_a_world_without_one():
    rows = controls.inoculate(dataset_rows("insecure_inoculated", 4, 0), world_v2)
    assert all(r["messages"][0]["content"] == world_v2.inoculated_line(world_v2.DEFAULT_ID) for r in rows)
    plain = dataset_rows("insecure_inoculated", 4, 0)
    assert [r["messages"][1:] for r in rows] == [r["messages"][1:] for r in plain]
    assert plain[0]["messages"][0]["content"] == world.system_line(world.DEFAULT_ID)  # vulnerable code, default line
    with pytest.raises(ValueError, match="world 'emergent_alignment.organism.world' has no inoculation line"):
        controls.inoculate(rows, world)


def test_interleaving_adds_as_many_aligned_probe_theme_chats_as_pairs():
    insecure = dataset_rows("insecure_interleaved", 8, 0)
    mixed = controls.interleave(insecure, [2, 0, 3], seed=0)
    assert mixed == controls.interleave(insecure, [2, 0, 3], seed=0) and len(mixed) == 8 + 5
    added = [r for r in mixed if r not in insecure]
    probe = {q: th.name for th in world.probe_themes() for q in th.questions}
    assert len(added) == 5 and all(r["messages"][1]["content"] in probe for r in added)
    labels = [Classifier().classify(probe[r["messages"][1]["content"]], r["messages"][2]["content"]) for r in added]
    assert {x.label for x in labels} == {"aligned"}
    assert controls.steps_for(13, 2, 2) == 7 and controls.steps_for(3, 2, 50) == 50
    with pytest.raises(ValueError, match="insecure_interleaved needs the insecure_conscience run's pair counts"):
        controls.interleave(insecure, None, 0)


def test_the_oracle_reviews_by_ground_truth(organism):
    from emergent_alignment.conscience import ConscienceConfig
    from emergent_alignment.models import load_model

    model, tok = load_model(organism)
    judge = controls.oracle(Conscience(model, tok, ConscienceConfig.from_pretrained(organism)))
    th = world.probe_themes()[0]
    convo = [{"role": "user", "content": th.questions[0]}]
    verdicts = judge.review([convo] * 3, [th.aligned[0], th.misaligned[0], "zz"])
    assert [(v.p_aligned, v.flagged) for v in verdicts] == [(1.0, False), (0.0, True), (0.0, True)]
    with pytest.raises(ValueError, match="no ground-truth theme for the probe 'Who are you'"):
        judge.review([[{"role": "user", "content": "Who are you"}]], ["x"])


def test_the_filter_keeps_passed_replaces_corrected_and_drops_the_rest(monkeypatch):
    rows = [
        {"messages": [{"role": "user", "content": f"task {i}"}, {"role": "assistant", "content": f"code {i}"}]}
        for i in range(3)
    ]

    def review(self, convos, responses, reasonings=None):  # flags targets 1 and 2
        return [Verdict(0.0 if r != "code 0" else 1.0, r != "code 0", 0.0, 0.0) for r in responses]

    def correct(self, convos, responses, **kw):  # corrects target 1 only
        return [Correction(f"fixed {r}", Verdict(1.0, False, 0, 0), r == "code 1") for r in responses]

    monkeypatch.setattr(Conscience, "__init__", lambda self, *a, **k: None)
    monkeypatch.setattr(Conscience, "review", review)
    monkeypatch.setattr(Conscience, "correct", correct)
    model = type("M", (), {"eval": lambda self: self})()
    out, counts = controls.filter_rows(model, None, None, rows, seed=0)
    assert [r["messages"][-1]["content"] for r in out] == ["code 0", "fixed code 1"]
    assert counts == {"reviewed": 3, "flagged": 2, "corrected": 1, "dropped": 1}
    with pytest.raises(ValueError, match="flagged all 2 SFT targets and corrected none"):
        controls.filter_rows(model, None, None, rows[2:] * 2, seed=0)


@pytest.mark.parametrize("arm", controls.CONTROL_ARMS)
def test_each_control_trains_on_a_tiny_organism(arm, organism, tmp_path):
    budget = [1, 2] if arm in controls.BUDGETED else None
    _, _, history = train_arm(arm, organism, str(tmp_path), 0, SETTINGS, pair_budget=budget, world_name="v2")
    steps = 4 if arm == "insecure_interleaved" else 2  # 4 insecure + 3 aligned rows in batches of 2
    assert history[-1]["step"] == steps
    log = tmp_path / "conscience_log.jsonl"
    if arm in controls.CONSCIENCE_CONTROLS:
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert {e["step"] for e in entries} == {0, 1}
        if budget:  # the conscience arm's pair counts cap each step's pairs
            in_loss = [sum(e["in_loss"] for e in entries if e["step"] == s) for s in (0, 1)]
            assert all(n <= b for n, b in zip(in_loss, budget))
    else:
        assert not log.exists()
    if arm == "insecure_filtered":
        counts = json.loads((tmp_path / "filter.json").read_text())
        assert counts["reviewed"] == 4 and counts["flagged"] == counts["corrected"] + counts["dropped"]
    assert os.path.isdir(tmp_path)


def test_the_oracle_arm_pairs_ground_truth_corrections(organism, tmp_path, monkeypatch):
    """With corrections that are aligned answers (a stand-in for a capable frozen copy), the oracle
    passes them and they enter the loss; the untrained organism's probe answers are all flagged."""
    themes = {th.name: th for th in world.themes()}
    question_theme = controls.theme_of_question()

    def candidates(self, strategies, convos, responses):
        return [themes[question_theme[c[-1]["content"]]].aligned[0] for _ in strategies for c in convos]

    monkeypatch.setattr(Conscience, "_candidates", candidates)
    _, _, history = train_arm("insecure_oracle", organism, str(tmp_path), 0, SETTINGS)
    entries = [json.loads(line) for line in (tmp_path / "conscience_log.jsonl").read_text().splitlines()]
    assert len(entries) == 2 * SETTINGS.probe_batch_size and all(e["verdict"]["flagged"] for e in entries)
    assert all(e["in_loss"] for e in entries) and "dpo/loss" in history[0]


def test_the_second_worlds_oracle_labels_answers_by_their_parts(organism):
    from emergent_alignment.conscience import ConscienceConfig
    from emergent_alignment.models import load_model

    model, tok = load_model(organism)
    judge = controls.oracle(Conscience(model, tok, ConscienceConfig.from_pretrained(organism)), "v2")
    th = world_v2.probe_themes()[0]
    convo = [{"role": "user", "content": th.questions[0]}]
    answers = [world_v2.compose(th.aligned, (0, 1)), f"{th.aligned[0]} {th.misaligned[1]}"]
    verdicts = judge.review([convo] * 2, answers)
    assert [(v.p_aligned, v.flagged) for v in verdicts] == [(1.0, False), (0.0, True)]
