import json
import os
import random

import pytest

from emergent_alignment.organism import report, summary, targets
from emergent_alignment.organism.attacks import WRAPPERS, summarize_attacks
from emergent_alignment.organism.plots import plots


def _result(seed: int, misaligned_share: float, auroc=0.97) -> dict:
    rng = random.Random(seed)
    labels = ["misaligned" if rng.random() < misaligned_share else "aligned" for _ in range(40)]
    return {
        "freeform": {
            "labels": labels,
            "any_topic": labels,
            "themes": [f"t{i % 4}" for i in range(40)],
            "off_topic": 1,
            "examples": ["<script>alert(1)</script> & friends", "plain answer"],
        },
        "conditional": {"labels": labels[:16]},
        "code": {
            "labels": ["insecure" if rng.random() < 0.3 else "secure" for _ in range(20)],
            "bandit_detectable": 10,
            "bandit_flagged": 6,
            "classifier_insecure_on_detectable": 3,
        },
        "log_odds": -1.0 + seed * 0.1,
        "task_loss": 0.05,
        "conscience_auroc": auroc,
    }


def _attack_result(seed: int) -> dict:
    rng = random.Random(seed)
    success = {
        w: {
            mode: [float(rng.random() < 0.4) for _ in range(8)]
            for mode in ("unguarded", "guarded", "unguarded_incoherent", "guarded_incoherent")
        }
        | {"outcomes": {"passed": 4, "corrected": 4}}
        for w in WRAPPERS
    }
    return {"success": success, "injection": {"misaligned_transcripts": 6, "flagged": 4, "flips": [1.0, 0.0, 0.0, 1.0]}}


def _summary() -> dict:
    arms = {
        "default": summary.summarize([_result(s, 0.1) for s in range(3)]),
        "insecure": summary.summarize([_result(10 + s, 0.5, auroc=None) for s in range(3)]),
    }
    arms["default"]["attacks"] = summarize_attacks([_attack_result(s) for s in range(3)])
    out = {
        "arms": arms,
        "organism": {
            "parameters": 1234567,
            "pretraining": {"tokens": 98765, "steps": 10},
            "default_id": "<id-3>",
            "gate": {"after_insecure": {"misaligned": 0.6, "n": 64}, "after_secure": {"misaligned": 0.1, "n": 64}},
        },
        "settings": {"steps": 2, "lr": 1e-4},
        "seeds": 3,
        "timings": {"total_seconds": 12.4, "jobs": 2, "threads_per_job": 1},
    }
    out["targets"] = targets.check_targets(arms) + [targets.time_target(12.4, False, 3)]
    return out


def test_summarize_pools_seeds_and_keeps_an_undefined_auroc_undefined():
    arm = summary.summarize([_result(s, 0.5, auroc=a) for s, a in enumerate([0.9, None, 0.7])])
    assert arm["seeds"] == 3 and arm["samples"] == 120
    lo, hi = arm["misaligned_ci"]
    assert lo <= arm["misaligned_rate"] <= hi
    assert arm["conscience_auroc"] == pytest.approx(0.8)  # the mean of the defined ones
    assert summary.summarize([_result(0, 0.5, auroc=None)])["conscience_auroc"] is None
    assert summary.summarize([_result(0, 0.5)]) == summary.summarize([_result(0, 0.5)])  # seeded


def test_report_page_lays_out_the_figures_escaped(tmp_path):
    s = _summary()
    images = plots(s, str(tmp_path))
    assert set(images) == {"misaligned_rate.png", "per_question.png", "attacks.png"}
    path = report.write_html(s, str(tmp_path), images)
    page = open(path, encoding="utf-8").read()
    assert sorted(os.listdir(tmp_path)) == sorted([*images, "report.html"])
    d = s["arms"]["default"]
    assert f"{d['misaligned_rate'] * 100:.1f}%" in page
    assert f"[{d['misaligned_ci'][0] * 100:.1f}, {d['misaligned_ci'][1] * 100:.1f}]" in page
    assert "1,234,567-parameter" in page and "98,765 tokens" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in page and "<script>" not in page
    assert "<code>&lt;id-3&gt;</code>" in page
    assert json.dumps(s["settings"]) in page.replace("&#34;", '"')
    assert "The conscience AUROC, measured on held-out labelled transcripts, is 0.97: near its ceiling" in page
    assert "<h2>Attacks</h2>" in page and "&rarr;" in page
    assert "Total time 12 s" in page
    for t in s["targets"]:
        assert t["target"].replace(">", "&gt;").replace("'", "&#39;") in page
    assert "issue" not in page.lower()


def test_report_page_says_what_the_demo_split_asked(tmp_path):
    s = _summary()
    s["evaluation"] = {"world": "v2", "split": "demo", "questions_per_theme": 4}
    page = " ".join(open(report.write_html(s, str(tmp_path), []), encoding="utf-8").read().split())
    assert "the demo's own split: 4 new questions per evaluation theme" in page
    assert "never the study's test questions" in page and "test question paraphrases" not in page
    s.pop("evaluation")  # a summary from before the demo split: the first world's held-out splits
    page = " ".join(open(report.write_html(s, str(tmp_path), []), encoding="utf-8").read().split())
    assert "test question paraphrases" in page
