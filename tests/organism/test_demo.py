"""The demo's runner (organism/demo.py): runs one by one or in worker processes, same bookkeeping."""

import json
import os

import pytest

from emergent_alignment.organism import build, demo
from emergent_alignment.organism.arms import ArmSettings, pair_counts

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)
SETTINGS = ArmSettings(steps=2, batch_size=2, probe_batch_size=4, probe_max_new_tokens=4)


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("organism") / "tiny")
    tok = build.make_tokenizer()
    build.save(build.make_model(TINY, tok), tok, {"gate": {"passed": False}}, out)
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


def test_jobs_must_be_positive(tmp_path):
    import argparse

    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    with pytest.raises(ValueError, match="--jobs must be >= 1"):
        demo.run(p.parse_args(["--jobs", "0", "--out", str(tmp_path)]))
