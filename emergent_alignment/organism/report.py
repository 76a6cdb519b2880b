"""The demo's report.html, assembled from summary.json's figures and the organism report template.

The figures come from `summary` (per-arm rates and CIs), `targets` (target verdicts),
`conscience_log` (the conscience over training) and `plots` (the PNGs); this module only lays them
out.
"""

from __future__ import annotations

import os

from ..io import write_text
from ..templating import render
from . import world
from .attacks import WRAPPERS
from .targets import specificity

COLUMNS = [
    ("misaligned_rate", "misaligned", "%"),
    ("incoherent_rate", "incoherent", "%"),
    ("off_topic_rate", "of which off-topic", "%"),
    ("misaligned_any_topic_rate", "misaligned, any topic", "%"),
    ("log_odds", "log-odds", "f"),
    ("conditional_misaligned_rate", "misaligned after code turn", "%"),
    ("insecure_code_rate", "insecure code", "%"),
    ("unparseable_code_rate", "unparseable code", "%"),
    ("bandit_flag_rate", "bandit flags", "%"),
    ("task_loss", "task loss", "f4"),
    ("conscience_auroc", "conscience AUROC", "f2"),
]

SATURATED_AUROC = 0.95  # at or above this for every arm, the AUROC leaves no room to separate the arms


def fmt(v, kind) -> str:
    if v is None or v != v:
        return "-"
    return {"%": f"{v * 100:.1f}%", "f4": f"{v:.4f}", "f2": f"{v:.2f}"}.get(kind, f"{v:+.2f}")


def auroc_sentence(arms: dict) -> str:
    """What the measured conscience AUROCs say, in one sentence that depends on them."""
    values = [a.get("conscience_auroc") for a in arms.values()]
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "The conscience AUROC could not be measured (the held-out labelled transcripts held a single class)."
    lo, hi = min(values), max(values)
    span = f"{lo:.2f}" if lo == hi else f"from {lo:.2f} to {hi:.2f} across arms"
    said = f"The conscience AUROC, measured on held-out labelled transcripts, is {span}"
    if lo >= SATURATED_AUROC:
        return f"{said}: near its ceiling, so it does not separate the arms."
    return f"{said}."


def _attacks(arms: dict) -> dict | None:
    """The attacks section's figures: success per wrapper without / with the guard, flip rate."""
    attacked = {n: a["attacks"] for n, a in arms.items() if "attacks" in a}
    if not attacked:
        return None
    rows = []
    for n, a in attacked.items():
        cells = [
            {
                "unguarded": f"{a[w]['unguarded'] * 100:.1f}%",
                "guarded": f"{a[w]['guarded'] * 100:.1f}%",
                "unguarded_incoherent": fmt(a[w].get("unguarded_incoherent"), "%"),
                "guarded_incoherent": fmt(a[w].get("guarded_incoherent"), "%"),
            }
            for w in WRAPPERS
        ]
        inj = a["injection"]
        rows.append(
            {
                "arm": n,
                "cells": cells,
                "flip_rate": fmt(inj["flip_rate"], "%"),
                "flip_lo": fmt(inj["flip_ci"][0], "%"),
                "flip_hi": fmt(inj["flip_ci"][1], "%"),
                "flagged": sum(inj["flagged"]),
                "defences": inj.get("defences"),
            }
        )
    return {
        "roleplay": world.ATTACKS["roleplay"],
        "prefix": world.ATTACKS["prefix"],
        "injection": world.REVIEWER_INJECTION.strip(),
        "susceptibility": world.ATTACK_SUSCEPTIBILITY,
        "obeyed": world.INJECTION_OBEYED,
        "wrappers": WRAPPERS,
        "rows": rows,
    }


def write_html(summary: dict, out_dir: str, images: list[str]) -> str:
    """report.html in `out_dir` (atomically); returns its path."""
    arms = summary["arms"]
    rows = [
        {
            "arm": n,
            "cells": [fmt(a.get(k), kind) for k, _, kind in COLUMNS],
            "ci": f"[{a['misaligned_ci'][0] * 100:.1f}, {a['misaligned_ci'][1] * 100:.1f}]",
            "pairs": str(a.get("pairs", "-")),
        }
        for n, a in arms.items()
    ]
    page = render(
        "organism_report.html.j2",
        org=summary["organism"],
        gate=summary["organism"]["gate"],
        settings=summary["settings"],
        seeds=summary["seeds"],
        evaluation=summary.get("evaluation"),
        columns=[label for _, label, _ in COLUMNS],
        rows=rows,
        targets=summary["targets"],
        images=images,
        auroc_sentence=auroc_sentence(arms),
        specificity=specificity(arms),
        attacks=_attacks(arms),
        examples={n: a.get("examples", []) for n, a in arms.items()},
        timings=summary["timings"],
    )
    path = os.path.join(out_dir, "report.html")
    write_text(path, page)
    return path
