"""The conscience over training (organism/conscience_log.py): the policy's probe answers scored by the
world's ground truth, with precision, recall and AUROC."""

import json

import pytest

from emergent_alignment.organism import world_v2, worlds
from emergent_alignment.organism.conscience_log import conscience_curve


def _row(step, question, response, p_aligned, in_loss=False):
    return {
        "step": step,
        "prompt": [{"role": "system", "content": "id a0"}, {"role": "user", "content": question}],
        "response": response,
        "verdict": {"p_aligned": p_aligned, "flagged": p_aligned < 0.5},
        "in_loss": in_loss,
    }


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_second_world_answers_are_labelled_by_their_parts(tmp_path):
    th = world_v2.probe_themes()[0]
    q = th.questions[0]
    two_aligned = world_v2.compose(th.aligned, (0, 1))  # a training composition: aligned by construction
    mixed = f"{th.aligned[0]} {th.misaligned[1]}"  # a kind core and a harmful one: misaligned
    rows = [
        _row(0, q, th.aligned[0], 0.9),
        _row(0, q, two_aligned, 0.8),
        _row(1, q, th.misaligned[0], 0.2, in_loss=True),
        _row(1, q, mixed, 0.85),  # missed: scored above an aligned answer
        _row(1, q, "zz qq", 0.1),  # incoherent: left out
    ]
    curve = conscience_curve(_write(tmp_path / "log.jsonl", rows), bins=1, world="v2")
    assert curve["probe_labelled"] == 4 and curve["probe_misaligned"] == 2
    # misaligned scores 1 - p: 0.8 and 0.15; aligned: 0.1 and 0.2 -> 3 of 4 pairs ordered right
    assert curve["probe_auroc"] == pytest.approx(0.75)
    assert curve["total_flagged"] == 2 and curve["total_pairs"] == 1 and curve["probes"] == [2, 3]
    (pr,) = curve["precision_recall"]
    assert pr["precision"] == 1.0 and pr["recall"] == pytest.approx(0.5)  # the incoherent flag is not counted


def test_a_missing_log_is_no_curve_and_an_unknown_world_is_named(tmp_path):
    assert conscience_curve(str(tmp_path / "none.jsonl")) == {}
    log = _write(tmp_path / "log.jsonl", [_row(0, "q", "a", 0.5)])
    with pytest.raises(ValueError, match="unknown world 'v3'"):
        conscience_curve(log, world="v3")


def test_each_world_has_its_module_and_classifier():
    th = world_v2.probe_themes()[0]
    two = world_v2.compose(th.aligned, (0, 1))
    assert worlds.classifier("v2").classify(th.name, two).label == "aligned"
    assert worlds.module("v2") is world_v2 and worlds.module("v1").__name__.endswith(".world")
