"""The demo's runner (organism/demo.py): runs one by one or in worker processes, same bookkeeping."""

import json
import os

import pytest

from emergent_alignment.organism import build, demo
from emergent_alignment.organism.arms import ArmSettings, pair_counts

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)
SETTINGS = ArmSettings(steps=2, batch_size=2, probe_batch_size=4, probe_max_new_tokens=4)


# what build.build records, with made-up figures: this organism is untrained
GATE = {"after_insecure": {"n": 8, "misaligned": 0.5, "incoherent": 0.5},
        "after_secure": {"n": 8, "misaligned": 0.0, "incoherent": 0.5}, "passed": True, "rule": "made up"}
META = {"hash": "tiny", "parameters": 1, "vocab": 1, "default_id": "id a4", "gate": GATE,
        "pretraining": {"steps": 0, "tokens": 0, "seconds": 0.0, "tokens_per_s": 0.0, "final_loss": 0.0,
                        "persona_probe": [{"step": 0, "id_a0": 0.0, "id_a32": 0.0, "after_insecure": 0.0,
                                           "after_secure": 0.0}]}}


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("organism") / "tiny")
    tok = build.make_tokenizer()
    build.save(build.make_model(TINY, tok), tok, META, out)
    return out


def _runs(out: str) -> list[demo.Run]:
    # the random-pairs run is listed first on purpose: it must still wait for its conscience run
    arms = ("insecure_random_pairs", "insecure_conscience", "insecure")
    return [demo.Run(arm, seed, os.path.join(out, "runs", f"{arm}-s{seed}"), attacked=False)
            for seed in (0, 1) for arm in arms]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("jobs", [1, 2])
def test_runner_finishes_every_run_once_and_gives_random_pairs_the_conscience_budget(organism, tmp_path, jobs):
    spec = demo.MeasureSpec(organism, samples_per_question=1, attack_samples_per_question=1)
    runs = _runs(str(tmp_path))
    order = [run for run, _ in demo.run_all(runs, SETTINGS, spec, jobs=jobs, threads=1)]
    assert sorted(order, key=runs.index) == runs  # each run exactly once
    for seed in (0, 1):
        if jobs > 1:  # in worker processes the random-pairs run waits for its seed's conscience run
            assert order.index(runs[3 * seed + 1]) < order.index(runs[3 * seed])
        conscience = pair_counts(os.path.join(runs[3 * seed + 1].out_dir, "conscience_log.jsonl")) or []
        random = pair_counts(os.path.join(runs[3 * seed].out_dir, "conscience_log.jsonl")) or []
        assert all(r <= c for r, c in zip(random, conscience)) and sum(random) <= sum(conscience)
    for run in runs:
        with open(os.path.join(run.out_dir, "result.json")) as f:
            result = json.load(f)
        assert {"freeform", "log_odds", "task_loss", "train_seconds", "conscience_curve"} <= set(result)
        assert result["task_loss"] > 0


@pytest.mark.timeout(600)
def test_demo_runs_end_to_end_on_a_tiny_organism_and_writes_its_outputs(organism, tmp_path, capsys):
    import argparse

    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    out = str(tmp_path / "demo")
    args = p.parse_args(["--out", out, "--organism", organism, "--seeds", "1", "--steps", "2", "--jobs", "2",
                         "--arms", "insecure,insecure_conscience,insecure_random_pairs",
                         "--samples-per-question", "1", "--attack-samples-per-question", "1",
                         "--attack-arms", "default,insecure_conscience"])
    assert demo.run(args) == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert list(summary["arms"]) == ["default", "insecure", "insecure_conscience", "insecure_random_pairs"]
    assert "attacks" in summary["arms"]["insecure_conscience"] and "attacks" not in summary["arms"]["insecure"]
    assert summary["timings"]["jobs"] == 2 and summary["targets"]
    for name in ("report.html", "misaligned_rate.png", "flag_rate.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert "total time" in capsys.readouterr().out


def test_jobs_must_be_positive(tmp_path):
    import argparse

    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    with pytest.raises(ValueError, match="--jobs must be >= 1"):
        demo.run(p.parse_args(["--jobs", "0", "--out", str(tmp_path)]))
