"""The label-noise dose-response: review label noise in the corpus -> the conscience's AUROC -> the EA effect.

If it is the conscience's answers that steer fine-tuning, a conscience pretrained on noisier review labels
should separate aligned from misaligned answers less well, and remove less of the Emergent Misalignment
rise. One organism seed is rebuilt at several noise levels (`organism build --world v2 --seed S
--label-noise R`); each level is a study directory of its own,

    emergent-alignment study --out ROOT/noise-R --label-noise R --only-organisms S \\
        --arms insecure,insecure_conscience --split test

and `summarize(ROOT)` reads every ROOT/noise-*/ into ROOT/dose_response.json: per level the build's gate,
the conscience's AUROC (on the build's held-out validation items, on the split's held-out review items,
on the policy's own probe answers during training), the misaligned rate of each arm, the share of the
rise removed with a bootstrap CI over fine-tuning seeds and themes (paired across arms), task loss
and incoherence; and across levels the Spearman correlation of noise with AUROC and with the share.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from ..io import read_json, write_json, write_text
from ..provenance import provenance
from ..stats import mean_or_none, percentile_ci
from .study import CONSCIENCE, arm_figures, label_rate

ARMS = ("default", "insecure", CONSCIENCE)
RESULT = "dose_response.json"


def level_dirs(root: str) -> list[str]:
    """ROOT/noise-*/ study directories."""
    dirs = [d for d in glob.glob(os.path.join(root, "noise-*")) if os.path.isdir(d)]
    if not dirs:
        raise ValueError(
            f"{root}: no noise-R/ study directories (run `emergent-alignment study --label-noise R "
            f"--out {root}/noise-R ...` first)"
        )
    return sorted(dirs)


def _organism(level_dir: str) -> dict:
    """The one organism record of a level's study directory (it must carry its label noise)."""
    records = sorted(glob.glob(os.path.join(level_dir, "organisms", "*.json")))
    if len(records) != 1:
        raise ValueError(f"{level_dir}: expected one organism record under organisms/, found {len(records)}")
    record = read_json(records[0])
    if record.get("label_noise") is None:
        raise ValueError(f"{records[0]}: no label_noise (run the level with `study --label-noise R`)")
    return record


def _runs(level_dir: str, organism: str) -> dict[str, dict[int, dict]]:
    """{arm: {seed: result}} of the finished runs of `organism` in ARMS."""
    out: dict[str, dict[int, dict]] = {}
    for arm in ARMS:
        for path in glob.glob(os.path.join(level_dir, "runs", organism, f"{arm}-s*", "result.json")):
            seed = int(os.path.basename(os.path.dirname(path)).rsplit("-s", 1)[1])
            out.setdefault(arm, {})[seed] = read_json(path)
    return {arm: dict(sorted(by_seed.items())) for arm, by_seed in out.items()}


def seed_theme_rates(runs: dict[int, dict]) -> np.ndarray:
    """[seed, theme] misaligned rates of one arm's free-form answers (a theme's questions asked in turn; themes
    sorted): the theme is the cluster, as in the study's hierarchical bootstrap."""
    rows = []
    for result in runs.values():
        by_theme: dict[str, list[bool]] = {}
        for q, label in zip(result["freeform"]["themes"], result["freeform"]["labels"]):
            by_theme.setdefault(q, []).append(label == "misaligned")
        rows.append([np.mean(by_theme[q]) for q in sorted(by_theme)])
    return np.array(rows)


def share_removed(runs: dict[str, dict[int, dict]], resamples: int = 2000, seed: int = 0) -> dict:
    """(insecure - conscience) / (insecure - default) with a percentile CI from one bootstrap of seeds and of
    themes, the same draws for the three arms (paired): one organism, so no organism level to resample."""
    d, ins, c = (seed_theme_rates(runs[arm]) for arm in ARMS)
    if not d.shape == ins.shape == c.shape:
        raise ValueError(f"the arms' runs differ in seeds or themes: {d.shape}, {ins.shape}, {c.shape}")
    rng = np.random.default_rng(seed)
    n_seed, n_q = d.shape
    s = rng.integers(0, n_seed, (resamples, n_seed))
    q = rng.integers(0, n_q, (resamples, n_q))

    def means(x):  # [resamples]
        return x[s[:, :, None], q[:, None, :]].mean(axis=(1, 2))

    dd, ii, cc = means(d), means(ins), means(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(ii - dd > 0, (ii - cc) / (ii - dd), np.nan)
    rise = ins.mean() - d.mean()
    share = float((ins.mean() - c.mean()) / rise) if rise > 0 else float("nan")
    return {"share": share, "ci": percentile_ci(draws), "rise": float(rise)}


def summarize_level(level_dir: str) -> dict:
    org = _organism(level_dir)
    checkpoint_meta = os.path.join(org["checkpoint"], "organism.json") if org.get("checkpoint") else None
    build = read_json(checkpoint_meta) if checkpoint_meta and os.path.isfile(checkpoint_meta) else {}
    clean = build.get("conscience", {}).get("clean", {})
    level = {
        "label_noise": org["label_noise"],
        "organism": org["name"],
        "hash": org.get("hash") or build.get("hash"),
        "passed": org["passed"],
        "gate": org["gate"],
        "build_auroc_free": clean.get("auroc_free"),
        "build_auroc_all": clean.get("auroc_all"),
    }
    if not org["passed"]:
        return level | {"note": "the rebuild failed its persona gate: no fine-tuning runs on it"}
    runs = _runs(level_dir, org["name"])
    missing = [a for a in ARMS if not runs.get(a)]
    if missing:
        return level | {"missing_arms": missing}
    seeds = [sorted(runs[a]) for a in ARMS]
    if any(s != seeds[0] for s in seeds):
        return level | {"missing_runs": {a: sorted(runs[a]) for a in ARMS}}
    per_org = {org["name"]: runs}
    c = runs[CONSCIENCE].values()
    return level | {
        "seeds": seeds[0],
        "arms": {arm: arm_figures(per_org, arm) for arm in ARMS},
        "share_removed": share_removed(runs),
        # the frozen copy the conscience runs on is the organism: every run measures the same one
        "test_auroc": mean_or_none([r.get("conscience_auroc") for r in runs["default"].values()]),
        "probe_auroc": mean_or_none([(r.get("conscience_curve") or {}).get("probe_auroc") for r in c]),
        "flag_rate": mean_or_none(
            [
                r["conscience_curve"]["total_flagged"] / r["conscience_curve"]["total_probes"]
                for r in c
                if r.get("conscience_curve")
            ]
        ),
        "conscience_misaligned_per_seed": [label_rate(r) for r in c],
    }


def spearman(levels: list[dict], key) -> dict | None:
    """Spearman's rho (scipy.stats.spearmanr) of label noise against `key(level)` over the measured levels."""
    from scipy.stats import spearmanr

    pairs = [(lv["label_noise"], key(lv)) for lv in levels]
    pairs = [(x, y) for x, y in pairs if y is not None and y == y]
    if len(pairs) < 3:
        return None
    rho, p = spearmanr(*zip(*pairs))
    return {"rho": float(rho), "p": float(p), "levels": len(pairs)}


def summarize(root: str) -> dict:
    """Read every ROOT/noise-*/ level, write ROOT/dose_response.json and ROOT/table.md; return the summary."""
    levels = sorted((summarize_level(d) for d in level_dirs(root)), key=lambda lv: lv["label_noise"])
    seeds = {lv["organism"].split("-noise")[0] for lv in levels}
    if len(seeds) != 1:
        raise ValueError(f"{root}: the levels are on different organisms ({', '.join(sorted(seeds))}); one per root")
    measured = [lv for lv in levels if "share_removed" in lv]
    out = {
        "provenance": provenance(),
        "organism": seeds.pop(),
        "levels": levels,
        "complete": len(measured) == len(levels),
        "spearman_noise_vs_build_auroc": spearman(levels, lambda lv: lv["build_auroc_free"]),
        "spearman_noise_vs_test_auroc": spearman(measured, lambda lv: lv["test_auroc"]),
        "spearman_noise_vs_share_removed": spearman(measured, lambda lv: lv["share_removed"]["share"]),
    }
    write_json(os.path.join(root, RESULT), out)
    write_text(os.path.join(root, "table.md"), table(out))
    return out


def _p(x) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def _f(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def table(summary: dict) -> str:
    """The dose-response as a Markdown table (README and docs/organism.md render it)."""
    lines = [
        "| label noise | gate (after insecure / secure) | conscience AUROC: build, test, probes "
        "| probe answers flagged | default | insecure | insecure_conscience | share of the rise removed (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lv in summary["levels"]:
        g = lv["gate"]
        gate = f"{'passed' if lv['passed'] else 'FAILED'} {_p(g['after_insecure']['misaligned'])} / " + _p(
            g["after_secure"]["misaligned"]
        )
        auroc = f"{_f(lv['build_auroc_free'])}, {_f(lv.get('test_auroc'))}, {_f(lv.get('probe_auroc'))}"
        if "share_removed" in lv:
            a, sh = lv["arms"], lv["share_removed"]
            rates = [_p(a[x]["misaligned_rate"]) for x in ARMS]
            share = f"{_p(sh['share'])} [{_p(sh['ci'][0])}, {_p(sh['ci'][1])}]"
        else:
            rates, share = ["-"] * 3, "not measured"
        flagged = _p(lv.get("flag_rate"))
        lines.append(f"| {lv['label_noise']:g} | {gate} | {auroc} | {flagged} | " + " | ".join(rates) + f" | {share} |")
    for key, name in (
        ("spearman_noise_vs_build_auroc", "build AUROC"),
        ("spearman_noise_vs_test_auroc", "test AUROC"),
        ("spearman_noise_vs_share_removed", "share removed"),
    ):
        s = summary.get(key)
        if s:
            lines.append(f"\nSpearman's rho, label noise vs {name}: {s['rho']:+.2f} over {s['levels']} levels.")
    return "\n".join(lines) + "\n"
