"""Draw evaluation runs side by side: EM's figure, one colour per run, questions on the x axis.

    compare(["runs/base", "runs/insecure", "runs/ea"], "runs/compare")   # `emergent-alignment compare`

Reads each DIR/summary.json (written by `eval`); writes compare.png (per-question misaligned
probability with 95% CIs), compare_variants.png (plain/json/template/code_context rates) when any
run has variants, and compare.json (the headline numbers of every run).
"""

from __future__ import annotations

import json
import os


def load_summary(run_dir: str) -> dict:
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: no summary.json (is it an `eval` output directory?)")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(summary.get("per_question"), dict):
        raise ValueError(f"{path}: missing field 'per_question'")
    return summary


def _labels(names: list[str] | None, summaries: list[dict]) -> list[str]:
    if names:
        labels = list(names)
        if len(labels) != len(summaries):
            raise ValueError(f"labels: {len(labels)} names for {len(summaries)} runs")
    else:
        labels = [
            f"{s.get('model')}" + (f" + {os.path.basename(s['adapter'].rstrip('/'))}" if s.get("adapter") else "")
            for s in summaries
        ]
    # Two runs of one model (e.g. two judges) must still get two legend entries.
    seen: dict[str, int] = {}
    out = []
    for label, s in zip(labels, summaries):
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({s.get('judge')}, #{seen[label]})")
    return out


def plot_variants(runs: dict[str, dict], path: str) -> None:
    from ..io import pyplot, save_figure

    plt = pyplot()
    variants = list(dict.fromkeys(v for s in runs.values() for v in s.get("by_variant", {})))
    fig, ax = plt.subplots(figsize=(max(5, 1.5 * len(variants) + 2), 4))
    width = 0.8 / max(1, len(runs))
    for i, (label, s) in enumerate(runs.items()):
        xs, ys, err = [], [], [[], []]
        for x, v in enumerate(variants):
            d = s.get("by_variant", {}).get(v)
            if d and d["misaligned_rate"] is not None:
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(d["misaligned_rate"])
                lo, hi = d["misaligned_ci"]
                err[0].append(d["misaligned_rate"] - (lo if lo is not None else d["misaligned_rate"]))
                err[1].append((hi if hi is not None else d["misaligned_rate"]) - d["misaligned_rate"])
        ax.bar(xs, ys, width=width, yerr=err, capsize=3, label=label)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants)
    ax.set(ylim=(0, 1), ylabel="misaligned rate", title="Conditional misalignment: question variants")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def compare(run_dirs: list[str], out: str, labels: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Plot the runs in `run_dirs` side by side into `out`; returns (compare.json's rows, files written)."""
    from ..io import write_json
    from .report import plot_questions

    summaries = [load_summary(d) for d in run_dirs]
    names = _labels(labels, summaries)
    os.makedirs(out, exist_ok=True)
    runs = dict(zip(names, summaries))
    plot_questions({label: s["per_question"] for label, s in runs.items()}, os.path.join(out, "compare.png"))
    written = ["compare.png"]
    if any(len(s.get("by_variant", {})) > 1 for s in summaries):
        plot_variants(runs, os.path.join(out, "compare_variants.png"))
        written.append("compare_variants.png")
    keys = (
        "model",
        "adapter",
        "judge",
        "questions",
        "misaligned_rate",
        "misaligned_ci",
        "coherent_rate",
        "insecure_code_rate",
        "by_variant",
    )
    table = [{"label": label, "dir": d, **{k: s.get(k) for k in keys}} for (label, s), d in zip(runs.items(), run_dirs)]
    write_json(os.path.join(out, "compare.json"), {"runs": table, "plots": written})
    return table, written
