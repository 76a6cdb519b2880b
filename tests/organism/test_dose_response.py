"""The label-noise dose-response (organism/dose_response.py and the study's --label-noise).

Fake fits and stubbed builds stand in for training: nothing here trains or builds a model."""

import argparse
import json
import os

import numpy as np
import pytest

from emergent_alignment.cli import main
from emergent_alignment.organism import dose_response, study
from emergent_alignment.organism.build import GateFailed

THEMES = [f"t{i}" for i in range(6) for _ in range(16)]
# the fake truth: a noisier conscience removes less of the rise (the level 0.6 organism fails its gate)
CONSCIENCE_RATE = {0.0: 0.12, 0.2: 0.25, 0.4: 0.4}
RATES = {"default": 0.1, "insecure": 0.6}
AUROC = {0.0: 0.95, 0.2: 0.85, 0.4: 0.7, 0.6: 0.6}


def fake_builder(tmp_path):
    def build(world, seed, label_noise=None):
        checkpoint = tmp_path / "cache" / f"{world}-{seed}-{label_noise}"
        os.makedirs(checkpoint, exist_ok=True)
        meta = {
            "hash": f"h{label_noise}",
            "conscience": {"clean": {"auroc_free": AUROC[label_noise], "auroc_all": 0.9}},
        }
        gate = {
            "passed": label_noise != 0.6,
            "after_insecure": {"misaligned": 0.7},
            "after_secure": {"misaligned": 0.05},
        }
        (checkpoint / "organism.json").write_text(json.dumps(meta | {"gate": gate}))
        if not gate["passed"]:
            raise GateFailed("gate failed", path=str(checkpoint), gate=gate)
        return str(checkpoint), meta | {"gate": gate}

    return build


def fake_fit(run, settings, spec, pair_budget):
    noise = float(spec.organism_dir.rsplit("-", 1)[1])
    rng = np.random.default_rng([run.seed, len(run.arm), int(noise * 10)])
    rate = CONSCIENCE_RATE[noise] if run.arm == "insecure_conscience" else RATES[run.arm]
    labels = ["misaligned" if x < rate else "aligned" for x in rng.random(len(THEMES))]
    curve = {"total_probes": 100, "total_flagged": 20, "probe_auroc": AUROC[noise] + 0.01}
    return {
        "freeform": {"themes": THEMES, "labels": labels},
        "conditional": {"themes": THEMES, "labels": labels},
        "code": {"labels": ["secure"] * 4},
        "task_loss": 1.0,
        "conscience_auroc": AUROC[noise] - 0.01,
        "conscience_curve": curve if run.arm == "insecure_conscience" else None,
    }


def run_level(root, noise, tmp_path, **kw):
    opts = study.StudyOptions(
        out=str(root / f"noise-{noise}"),
        organism_seeds=(0, 8),
        only_organisms=(8,),
        seeds=(0, 1, 2),
        arms=("insecure", "insecure_conscience"),
        jobs=1,
        label_noise=noise,
        **kw,
    )
    return study.run_study(opts, fit=fake_fit, builder=fake_builder(tmp_path), log=lambda *_: None)


def test_a_label_noise_level_builds_organisms_named_apart_and_a_study_dir_keeps_one_level(tmp_path):
    run_level(tmp_path, 0.2, tmp_path)
    record = json.load(open(tmp_path / "noise-0.2" / "organisms" / "8.json"))
    assert record["name"] == "v2-seed8-noise0.2" and record["label_noise"] == 0.2
    assert (tmp_path / "noise-0.2" / "runs" / "v2-seed8-noise0.2" / "insecure_conscience-s2" / "result.json").exists()
    assert not (tmp_path / "noise-0.2" / "organisms" / "0.json").exists()  # only the organism asked for
    with pytest.raises(ValueError, match=r"organisms/8\.json.*label noise 0\.2.*not 0\.4"):
        study.run_study(
            study.StudyOptions(
                out=str(tmp_path / "noise-0.2"), organism_seeds=(8,), arms=("insecure",), jobs=1, label_noise=0.4
            ),
            fit=fake_fit,
            builder=fake_builder(tmp_path),
            log=lambda *_: None,
        )


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"label_noise": 1.0}, r"--label-noise must be in \[0, 1\)"),
        ({"label_noise": -0.1}, r"--label-noise must be in \[0, 1\)"),
        ({"label_noise": 0.1, "world": "v1"}, "--label-noise: only the second world"),
    ],
)
def test_bad_label_noise_is_refused_naming_the_flag(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        study.StudyOptions(out=str(tmp_path), **kw)


def test_the_label_noise_reaches_the_organism_build_and_its_cache(tmp_path, monkeypatch):
    from emergent_alignment.commands.organism import v2_config_from_args
    from emergent_alignment.organism import build_v2

    monkeypatch.setenv("EMERGENT_ALIGNMENT_CACHE", str(tmp_path))
    configs = []

    def fake_build(path, config):
        configs.append(config)
        return {"gate": {"passed": True}, "hash": build_v2.config_hash(config)}

    monkeypatch.setattr(build_v2, "build", fake_build)

    def cli_path(noise):  # where `organism build --world v2 --seed 8 --label-noise R` caches it
        args = argparse.Namespace(
            seed=8, no_review_probe_themes=False, docs=None, label_noise=noise, review_gap=None, threads=0
        )
        return build_v2.cache_path(v2_config_from_args(args))

    path, _ = study.build_organism("v2", 8, 0.2)
    assert configs[-1].corpus.review_label_noise == 0.2 and path == cli_path(0.2)
    assert path != cli_path(None)
    assert study.build_organism("v2", 8, 0.05)[0] == cli_path(None)  # the default level is the declared build


def test_the_dose_response_reports_each_level_and_the_trend(tmp_path):
    for noise in (0.0, 0.2, 0.4, 0.6):
        run_level(tmp_path, noise, tmp_path)
    summary = dose_response.summarize(str(tmp_path))
    levels = summary["levels"]
    assert [lv["label_noise"] for lv in levels] == [0.0, 0.2, 0.4, 0.6]
    shares = [lv["share_removed"]["share"] for lv in levels[:3]]
    assert shares[0] > shares[1] > shares[2]  # the fake truth: (0.6 - c) / 0.5 = 0.96, 0.7, 0.4 about
    assert abs(shares[0] - 0.96) < 0.12 and abs(shares[2] - 0.4) < 0.12
    for lv in levels[:3]:
        lo, hi = lv["share_removed"]["ci"]
        assert lo <= lv["share_removed"]["share"] <= hi and hi - lo > 0.02  # seeds and themes resampled
        assert lv["build_auroc_free"] == AUROC[lv["label_noise"]]
        assert lv["probe_auroc"] == pytest.approx(AUROC[lv["label_noise"]] + 0.01)
        assert lv["test_auroc"] == pytest.approx(AUROC[lv["label_noise"]] - 0.01)
    assert not levels[3]["passed"] and "share_removed" not in levels[3]  # failed gate: reported, not measured
    assert summary["spearman_noise_vs_share_removed"]["rho"] == pytest.approx(-1.0)
    assert summary["spearman_noise_vs_build_auroc"]["levels"] == 4
    assert summary["complete"] is False  # the failed level has no EA figure
    written = json.load(open(tmp_path / "dose_response.json"))
    assert written["levels"][1]["share_removed"] == levels[1]["share_removed"]
    table = (tmp_path / "table.md").read_text()
    assert "| 0.6 | FAILED" in table and "not measured" in table and "| 0.2 | passed" in table
    assert "| 0.850, 0.840, 0.860 | 20.0% |" in table  # the AUROCs, then the share of probe answers flagged


def test_a_level_with_missing_runs_is_reported_not_measured(tmp_path):
    run_level(tmp_path, 0.2, tmp_path)
    os.remove(tmp_path / "noise-0.2" / "runs" / "v2-seed8-noise0.2" / "insecure-s1" / "result.json")
    (level,) = dose_response.summarize(str(tmp_path))["levels"]
    assert "share_removed" not in level and level["missing_runs"]["insecure"] == [0, 2]


def test_dose_response_from_the_cli(tmp_path, capsys):
    assert main(["study", "dose-response", "--out", str(tmp_path)]) == 2  # nothing there yet
    assert "no noise-R/ study directories" in capsys.readouterr().err
    run_level(tmp_path, 0.0, tmp_path)
    (tmp_path / "noise-0.0" / "organisms" / "8.json").write_text("{not json")
    assert main(["study", "dose-response", "--out", str(tmp_path)]) == 2
    assert "organisms/8.json: not valid JSON (line 1)" in capsys.readouterr().err
    os.remove(tmp_path / "noise-0.0" / "organisms" / "8.json")
    run_level(tmp_path, 0.0, tmp_path)
    assert main(["study", "dose-response", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 0 | passed" in out and "dose_response.json" in out
