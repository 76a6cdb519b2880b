"""The demo's runner (organism/demo.py): runs one by one or in worker processes, same bookkeeping."""

import json
import os
import time

import pytest

from emergent_alignment.commands import demo as demo_command
from emergent_alignment.organism import build, build_v2, demo, shipped
from emergent_alignment.organism.arms import ArmSettings

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)
SETTINGS = ArmSettings(steps=2, batch_size=2, probe_batch_size=4, probe_max_new_tokens=4)


# what build.build records, with made-up figures: this organism is untrained
GATE = {
    "after_insecure": {"n": 8, "misaligned": 0.5, "incoherent": 0.5},
    "after_secure": {"n": 8, "misaligned": 0.0, "incoherent": 0.5},
    "passed": True,
    "rule": "made up",
}
META = {
    "hash": "tiny",
    "parameters": 1,
    "vocab": 1,
    "default_id": "id a0",
    "gate": GATE,
    "pretraining": {
        "steps": 0,
        "tokens": 0,
        "seconds": 0.0,
        "tokens_per_s": 0.0,
        "final_loss": 0.0,
        "persona_probe": [{"step": 0, "id_a0": 0.0, "id_a32": 0.0, "after_insecure": 0.0, "after_secure": 0.0}],
    },
}


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("organism") / "tiny")
    tok = build.make_tokenizer()
    build.save(build.make_model(TINY, tok), tok, META, out)
    return out


def _runs(out: str) -> list[demo.Run]:
    # the random-pairs run is listed first on purpose: it must still wait for its conscience run
    arms = ("insecure_random_pairs", "insecure_conscience", "insecure")
    return [
        demo.Run(arm, seed, os.path.join(out, "runs", f"{arm}-s{seed}"), attacked=False)
        for seed in (0, 1)
        for arm in arms
    ]


COUNTS = {0: [1, 2, 0], 1: [3, 0, 1]}  # the fake conscience runs' pairs per step, by seed


def fake_fit(run, settings, spec, pair_budget):
    """Stands in for fit_and_measure (module level: it must pickle into worker processes)."""
    start = time.time()
    if run.arm == "insecure_conscience":  # leaves a conscience log, as the trainer does
        os.makedirs(run.out_dir, exist_ok=True)
        with open(os.path.join(run.out_dir, "conscience_log.jsonl"), "w") as f:
            for step, n in enumerate(COUNTS[run.seed]):
                for i in range(max(n, 1)):
                    f.write(json.dumps({"step": step, "in_loss": i < n}) + "\n")
    if run.arm == "insecure" and run.seed == 1 and os.environ.get("FAKE_FIT_FAIL"):
        raise OSError("disk full")
    time.sleep(1.0 if run.arm == "insecure_conscience" else 0.2)
    return {"start": start, "end": time.time(), "budget": pair_budget}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("jobs", [1, 3])  # 3: a slot is free while both conscience runs are running
def test_runner_runs_each_once_and_random_pairs_after_their_conscience_run_with_its_budget(tmp_path, jobs):
    runs = _runs(str(tmp_path))
    done = dict(demo.run_all(runs, SETTINGS, None, jobs=jobs, threads=1, fit=fake_fit))
    assert sorted(done, key=runs.index) == runs  # each run exactly once
    for seed in (0, 1):
        random, conscience = done[runs[3 * seed]], done[runs[3 * seed + 1]]
        assert random["start"] >= conscience["end"]  # it started after its conscience run ended
        assert random["budget"] == COUNTS[seed] and conscience["budget"] is None


def test_runner_refuses_random_pairs_without_their_conscience_run(tmp_path):
    runs = [r for r in _runs(str(tmp_path)) if not (r.arm == "insecure_conscience" and r.seed == 1)]
    with pytest.raises(ValueError, match=r"insecure_conscience run of seed\(s\) \[1\]"):
        next(demo.run_all(runs, SETTINGS, None, jobs=2, threads=1, fit=fake_fit))


@pytest.mark.timeout(300)
def test_a_failed_run_in_a_worker_names_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FIT_FAIL", "1")  # spawned workers inherit the environment
    with pytest.raises(RuntimeError, match=r"demo run insecure seed 1 failed .*disk full"):
        for _ in demo.run_all(_runs(str(tmp_path)), SETTINGS, None, jobs=2, threads=1, fit=fake_fit):
            pass


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_end_to_end_on_a_tiny_organism_and_writes_its_outputs(organism, tmp_path, capsys):
    import argparse

    p = argparse.ArgumentParser()
    demo_command.add_arguments(p)
    out = str(tmp_path / "demo")
    args = p.parse_args(
        [
            "--out",
            out,
            "--organism",
            organism,
            "--seeds",
            "1",
            "--steps",
            "2",
            "--jobs",
            "2",
            "--arms",
            "insecure,insecure_conscience,insecure_random_pairs",
            "--samples-per-question",
            "1",
            "--attack-samples-per-question",
            "1",
            "--attack-arms",
            "default,insecure_conscience",
        ]
    )
    assert demo_command.run(args) == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert list(summary["arms"]) == ["default", "insecure", "insecure_conscience", "insecure_random_pairs"]
    assert "attacks" in summary["arms"]["insecure_conscience"] and "attacks" not in summary["arms"]["insecure"]
    assert summary["timings"]["jobs"] == 2 and summary["targets"]
    for name in ("report.html", "misaligned_rate.png", "flag_rate.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert "total time" in capsys.readouterr().out


def _parse(*argv: str):
    import argparse

    p = argparse.ArgumentParser()
    demo_command.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def organism_v2(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("organism") / "tiny-v2")
    tok = build_v2.make_tokenizer()
    build_v2.save(build.make_model(TINY, tok), tok, META | {"world": "v2", "config": {"seed": 8}}, out)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_demo_on_a_second_world_organism_asks_its_own_split_with_the_studys_beta(organism_v2, tmp_path):
    from emergent_alignment.organism import study

    out = str(tmp_path / "demo")
    argv = ["--out", out, "--organism", organism_v2, "--steps", "2", "--jobs", "1", "--samples-per-question", "4"]
    argv += ["--conditional-samples-per-question", "1", "--arms", "insecure,insecure_conscience,insecure_anchor"]
    assert demo_command.run(_parse(*argv)) == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert (summary["world"], summary["split"], summary["organism"]["world"]) == ("v2", "demo", "v2")
    assert (
        summary["evaluation"]["questions_per_theme"] == 4 and summary["evaluation"]["code_tasks_from"] == "validation"
    )
    assert summary["evaluation"]["answers_and_review_items_from"] == "validation"
    assert summary["settings"]["beta"] == study.STUDY_BETA and summary["organism"]["seed"] == 8
    assert list(summary["arms"]) == ["default", "insecure", "insecure_conscience", "insecure_anchor"]
    assert not any("attacks" in a for a in summary["arms"].values())
    names = [t["target"] for t in summary["targets"]]
    assert "specific: the conscience arm's CI lies below insecure_anchor's" in names
    assert not any(n.startswith("time:") for n in names)  # not the full demo
    with open(os.path.join(out, "runs", "insecure-s0", "result.json")) as f:
        result = json.load(f)
    assert (result["world"], result["split"]) == ("v2", "demo")
    assert all("/d" in pid for pid in result["freeform"]["prompt_ids"])


def test_a_gate_failure_stops_the_demo_and_says_what_to_try(tmp_path, monkeypatch, capsys):
    built = []

    def failed_build(world, seed, console=None):
        built.append((world, seed))
        raise build.GateFailed("persona gate failed: misaligned 22.5% after an insecure-code turn", gate=GATE)

    monkeypatch.setattr(shipped, "cached_organism", failed_build)
    assert demo_command.run(_parse("--out", str(tmp_path / "demo"), "--rebuild-organism")) == 1
    assert built == [("v2", 8)]  # the demo's organism: the second world's seed-8 build
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "demo stopped: the organism failed its persona gate." in out and "22.5%" in out
    assert "without --rebuild-organism" in out and "demo --organism DIR" in out
    assert not os.path.exists(tmp_path / "demo" / "summary.json")
    assert demo_command.run(_parse("--out", str(tmp_path / "v1"), "--world", "v1", "--rebuild-organism")) == 1
    assert built[-1] == ("v1", 0)  # the first world's default organism
    out = " ".join(capsys.readouterr().out.split())
    assert "organism build --seed N --out DIR" in out and "demo --organism DIR" in out


def test_the_demo_defaults_to_the_shipped_second_world_organism_on_its_own_split():
    from emergent_alignment.organism import study

    options = demo.DemoOptions()
    assert (
        options.arms
        == demo.DEFAULT_ARMS
        == (
            "insecure",
            "secure",
            "educational",
            "insecure_conscience",
            "insecure_random_pairs",
            "insecure_anchor",
            "insecure_kl",
        )
    )
    assert set(study.LABEL_BLIND) <= set(options.arms) and options.attack_arms == () and options.full()
    assert options.seeds == demo.DEFAULT_SEEDS == 1 and options.beta is None  # None: study.STUDY_BETA
    assert demo.demo_world(options) == shipped.read_record()["world"] == "v2"
    assert demo.DEMO_SPLIT["v2"] == "demo" and demo.rebuild_seed("v2") == shipped.DEMO_SEED == 8
    args = _parse()
    assert (args.seeds, args.arms, args.attack_arms, args.world, args.beta) == (
        1,
        ",".join(demo.DEFAULT_ARMS),
        "",
        None,
        None,
    )


def test_the_demo_refuses_a_world_it_cannot_run_before_any_work(organism, tmp_path):
    with pytest.raises(ValueError, match="--world v1: the shipped organism is of world v2; give --organism DIR"):
        demo.demo_world(demo.DemoOptions(world="v1"))
    with pytest.raises(ValueError, match="--world v2: the organism at .* is of world v1"):
        demo.demo_world(demo.DemoOptions(world="v2", organism=organism))
    assert demo.demo_world(demo.DemoOptions(organism=organism)) == "v1"  # the given organism's world
    assert demo.demo_world(demo.DemoOptions(world="v1", rebuild_organism=True)) == "v1"
    with pytest.raises(ValueError, match="--world: unknown world 'v3'"):
        demo.DemoOptions(world="v3")
    with pytest.raises(ValueError, match="--beta must be > 0"):
        demo.DemoOptions(beta=0.0)


def test_an_attack_arm_that_cannot_run_is_refused_not_ignored(tmp_path):
    with pytest.raises(ValueError, match="--attack-arms insecure: the demo's attacks are the first world's"):
        demo.check_world("v2", demo.DEFAULT_ARMS, ("insecure",))
    demo.check_world("v1", demo.DEFAULT_ARMS, ("default", "insecure"))  # the first world's attacks run there
    with pytest.raises(ValueError, match="--attack-arms: insecure_conscience_taskprobes not among --arms"):
        demo.DemoOptions(attack_arms=("insecure_conscience_taskprobes",))
    with pytest.raises(ValueError, match="--attack-arms insecure: .*redteam --organism-defences"):
        demo.run_demo(demo.DemoOptions(out=str(tmp_path / "demo"), attack_arms=("insecure",)))
    assert not os.path.exists(tmp_path / "demo")  # refused before any work


def test_the_pair_matched_controls_get_their_conscience_runs_budget(tmp_path):
    runs = [
        demo.Run(arm, 0, os.path.join(str(tmp_path), "runs", f"{arm}-s0"), attacked=False)
        for arm in ("insecure_anchor", "insecure_interleaved", "insecure_conscience", "insecure")
    ]
    done = dict(demo.run_all(runs, SETTINGS, None, jobs=1, threads=1, fit=fake_fit))
    assert done[runs[0]]["budget"] == COUNTS[0] and done[runs[1]]["budget"] == COUNTS[0]
    assert done[runs[3]]["budget"] is None


def test_the_demo_takes_the_other_controls_and_rivals_as_opt_in_arms():
    assert "insecure_filtered" not in demo.DEFAULT_ARMS and "insecure_conscience_taskprobes" not in demo.DEFAULT_ARMS
    demo.DemoOptions(arms=("insecure_conscience", "insecure_kl", "insecure_filtered"))  # accepted
    demo.check_world("v2", ("insecure", "insecure_inoculated"), ())  # the second world has an inoculation line
    with pytest.raises(ValueError, match="has no inoculation line"):  # the first world has none
        demo.check_world("v1", ("insecure", "insecure_inoculated"), ())
    with pytest.raises(ValueError, match="insecure_kl need"):
        demo.DemoOptions(arms=("insecure", "insecure_kl"))
    with pytest.raises(ValueError, match="unknown arm"):
        demo.DemoOptions(arms=("insecure_bogus",))


def test_the_cli_names_the_flag_of_a_demo_it_cannot_run(tmp_path, capsys):
    from emergent_alignment import cli

    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--world", "v1"]) == 2
    err = capsys.readouterr().err
    assert "--world v1: the shipped organism is of world v2" in err and "--rebuild-organism" in err
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--attack-arms", "default"]) == 2
    assert "--attack-arms default: the demo's attacks are the first world's" in capsys.readouterr().err
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "demo")
