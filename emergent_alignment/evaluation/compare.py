"""Draw evaluation runs side by side: EM's figure, one colour per run, questions on the x axis.

    emergent-alignment compare runs/base runs/insecure runs/ea --out runs/compare

Reads each DIR/summary.json (written by `eval`); writes compare.png (per-question misaligned
probability with 95% CIs), compare_variants.png (plain/json/template/code_context rates) when any
run has variants, and compare.json (the headline numbers of every run).
"""

from __future__ import annotations

import json
import os


def add_arguments(p):
    p.add_argument("runs", nargs="+", metavar="DIR", help="output directories of `eval` runs")
    p.add_argument("--labels", help="comma-separated names for the runs (default: each run's model)")
    p.add_argument("--out", required=True, help="directory for compare.png and compare.json")


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


def _labels(args, summaries: list[dict]) -> list[str]:
    if args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(summaries):
            raise ValueError(f"--labels names {len(labels)} runs but {len(summaries)} were given")
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
    from .report import pyplot, save_figure

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


def run(args) -> int:
    from .cache import write_json
    from .report import plot_questions

    summaries = [load_summary(d) for d in args.runs]
    labels = _labels(args, summaries)
    os.makedirs(args.out, exist_ok=True)
    runs = dict(zip(labels, summaries))
    plot_questions({label: s["per_question"] for label, s in runs.items()}, os.path.join(args.out, "compare.png"))
    written = ["compare.png"]
    if any(len(s.get("by_variant", {})) > 1 for s in summaries):
        plot_variants(runs, os.path.join(args.out, "compare_variants.png"))
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
    table = [
        {"label": label, "dir": d, **{k: s.get(k) for k in keys}} for (label, s), d in zip(runs.items(), args.runs)
    ]
    write_json(os.path.join(args.out, "compare.json"), {"runs": table, "plots": written})
    for row in table:
        print(
            f"{row['label']}: misaligned {row['misaligned_rate']} CI {row['misaligned_ci']}, "
            f"insecure code {row['insecure_code_rate']}"
        )
    print(f"wrote {', '.join(os.path.join(args.out, w) for w in written)}")
    return 0
