"""The demo's plots: misaligned rate per arm, per question, the conscience over training, attacks."""

from __future__ import annotations

import os

from ..io import pyplot, save_figure
from .attacks import WRAPPERS


def plots(summary: dict, out_dir: str) -> list[str]:
    """The demo's PNG plots in `out_dir`; returns their file names."""
    plt = pyplot()

    arms = summary["arms"]
    names = list(arms)
    files = []

    fig, ax = plt.subplots(figsize=(9, 4))
    rates = [arms[n]["misaligned_rate"] * 100 for n in names]
    err = [
        [(arms[n]["misaligned_rate"] - arms[n]["misaligned_ci"][0]) * 100 for n in names],
        [(arms[n]["misaligned_ci"][1] - arms[n]["misaligned_rate"]) * 100 for n in names],
    ]
    ax.bar(names, rates, yerr=err, capsize=4, color=["grey"] + [f"C{i}" for i in range(len(names) - 1)])
    ax.set_ylabel("misaligned answers (%)")
    ax.set_title("Held-out free-form questions (95% bootstrap CI over seeds and samples)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    files.append(_save(fig, out_dir, "misaligned_rate.png"))

    themes = list(arms[names[0]]["per_question"])
    fig, ax = plt.subplots(figsize=(11, 4))
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar(
            [j + i * w for j in range(len(themes))],
            [arms[n]["per_question"].get(t, 0) * 100 for t in themes],
            w,
            label=n,
        )
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(themes))], themes, rotation=20, ha="right")
    ax.set_ylabel("misaligned (%)")
    ax.set_title("Per question")
    ax.legend(fontsize=7)
    files.append(_save(fig, out_dir, "per_question.png"))

    curves = {n: a["conscience_curve"] for n, a in arms.items() if a.get("conscience_curve")}
    if curves:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for n, c in curves.items():
            a1.plot(c["steps"], _smooth([f / p for f, p in zip(c["flagged"], c["probes"])]), label=n)
            a2.plot(c["steps"], _smooth(c["pairs"]), label=n)
        a1.set_title("conscience flag rate of the policy's probe answers")
        a2.set_title("DPO pairs per step")
        for a in (a1, a2):
            a.set_xlabel("step")
            a.legend(fontsize=7)
        files.append(_save(fig, out_dir, "flag_rate.png"))

        fig, ax = plt.subplots(figsize=(8, 4))
        for n, c in curves.items():
            mids = [(b["steps"][0] + b["steps"][1]) / 2 for b in c["precision_recall"]]
            ax.plot(mids, [b["precision"] for b in c["precision_recall"]], "o-", label=f"{n} precision")
            ax.plot(mids, [b["recall"] for b in c["precision_recall"]], "s--", label=f"{n} recall")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("step")
        ax.set_title("Conscience vs the ground-truth classifier on the policy's own samples")
        ax.legend(fontsize=7)
        files.append(_save(fig, out_dir, "conscience_precision_recall.png"))

    attacked = {n: a["attacks"] for n, a in arms.items() if "attacks" in a}
    if attacked:
        fig, ax = plt.subplots(figsize=(10, 4))
        bars = [(n, mode) for n in attacked for mode in ("unguarded", "guarded")]
        w = 0.8 / len(bars)
        for i, (n, mode) in enumerate(bars):
            vals = [attacked[n][x][mode] * 100 for x in WRAPPERS]
            err = [
                [(attacked[n][x][mode] - attacked[n][x][f"{mode}_ci"][0]) * 100 for x in WRAPPERS],
                [(attacked[n][x][f"{mode}_ci"][1] - attacked[n][x][mode]) * 100 for x in WRAPPERS],
            ]
            ax.bar(
                [j + i * w for j in range(len(WRAPPERS))],
                vals,
                w,
                yerr=err,
                capsize=2,
                label=f"{n}, {mode}",
                color=f"C{i // 2}",
                alpha=1.0 if mode == "unguarded" else 0.5,
            )
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(WRAPPERS))], WRAPPERS)
        ax.set_ylabel("misaligned answers (%)")
        ax.set_title("Attack success on held-out questions, without and with the guard (95% CI)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        files.append(_save(fig, out_dir, "attacks.png"))
    return files


def _smooth(xs: list[float], k: int = 10) -> list[float]:
    return [sum(xs[max(0, i - k + 1) : i + 1]) / len(xs[max(0, i - k + 1) : i + 1]) for i in range(len(xs))]


def _save(fig, out_dir, name) -> str:
    fig.tight_layout()
    save_figure(fig, os.path.join(out_dir, name), dpi=110)
    return name
