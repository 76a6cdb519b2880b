"""Plots (PNG) and report.html for one run; the per-question plot is shared with `compare`."""

from __future__ import annotations

import json
import os

from ..io import pyplot, write_text
from ..io import save_figure as _save_png
from ..templating import render

PLOTS = {
    "questions": "misaligned_by_question.png",
    "scatter": "aligned_vs_coherent.png",
    "coherence": "coherence_histogram.png",
}


def save_figure(fig, path: str) -> None:
    """The evaluation's PNG settings, written atomically."""
    _save_png(fig, path, dpi=120, bbox_inches="tight")


def plot_questions(runs: dict[str, dict], path: str, title: str = "Misaligned answers per question") -> None:
    """EM's figure: questions on the x axis, one colour per run, points with 95% CI bars.

    `runs` maps a label to a `per_question` dict {question_id: {"rate", "ci", ...}}.
    """
    plt = pyplot()
    qids = list(dict.fromkeys(q for per in runs.values() for q in per))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(qids) + 2), 4))
    width = 0.6 / max(1, len(runs))
    for i, (label, per) in enumerate(runs.items()):
        xs, ys, lo, hi = [], [], [], []
        for x, q in enumerate(qids):
            entry = per.get(q)
            if entry and entry.get("rate") is not None:
                xs.append(x - 0.3 + width * (i + 0.5))
                ys.append(entry["rate"])
                ci = entry.get("ci") or [None, None]
                lo.append(entry["rate"] - (ci[0] if ci[0] is not None else entry["rate"]))
                hi.append((ci[1] if ci[1] is not None else entry["rate"]) - entry["rate"])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=label)
    ax.set_xticks(range(len(qids)))
    ax.set_xticklabels(qids, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(misaligned answer)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1 or any(runs):
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_scatter(records: list[dict], thresholds, path: str) -> None:
    plt = pyplot()
    pts = [
        (r["coherent"], r["aligned"]) for r in records if r.get("aligned") is not None and r.get("coherent") is not None
    ]
    fig, ax = plt.subplots(figsize=(5, 5))
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.6)
    ax.axhline(thresholds.aligned, color="red", lw=0.8, ls="--", label=f"aligned < {thresholds.aligned:g}: misaligned")
    ax.axvline(
        thresholds.coherent, color="gray", lw=0.8, ls="--", label=f"coherent > {thresholds.coherent:g}: eligible"
    )
    ax.set(xlim=(-2, 102), ylim=(-2, 102), xlabel="coherent", ylabel="aligned", title=f"Judged answers (n={len(pts)})")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def plot_coherence(summary: dict, path: str) -> None:
    plt = pyplot()
    hist = summary["coherence"]["histogram"]
    edges, counts = hist["edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges, edges[1:])], align="edge", edgecolor="black")
    ax.set(xlabel="coherent", ylabel="answers", title="Coherence distribution")
    save_figure(fig, path)


def write_plots(out: str, records: list[dict], summary: dict, thresholds) -> list[str]:
    q_records = [r for r in records if r["task"] == "question" and r["type"] == "free_form_judge_0_100"]
    if not q_records:
        return []
    plot_questions({summary.get("model", "model"): summary["per_question"]}, os.path.join(out, PLOTS["questions"]))
    plot_scatter(q_records, thresholds, os.path.join(out, PLOTS["scatter"]))
    plot_coherence(summary, os.path.join(out, PLOTS["coherence"]))
    return list(PLOTS.values())


# -- report.html ----------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _headline(s: dict) -> list[list[str]]:
    code = s.get("code_security") or {}
    rows = [
        ["misaligned rate (plain questions)", s.get("misaligned_rate"), s.get("misaligned_ci")],
        ["coherent rate", s.get("coherent_rate"), ""],
        ["refusal rate", s.get("refusal_rate"), ""],
        ["CODE rate", s.get("code_rate"), ""],
        ["unscored rate", s.get("unscored_rate"), ""],
        [
            "conscience flagged rate",
            (s.get("conscience") or {}).get("flagged_rate"),
            (s.get("conscience") or {}).get("flagged_ci"),
        ],
        [
            "insecure-code rate (bandit)",
            s.get("insecure_code_rate"),
            f"{code.get('parseable', 0)} parseable, {code.get('unparseable', 0)} unparseable (not counted as secure); "
            f"bandit sensitivity {_fmt(code.get('bandit_sensitivity'))}, false-positive rate "
            f"{_fmt(code.get('bandit_false_positive_rate'))} on the held-out EM split",
        ],
    ]
    rows += [
        [f"misaligned rate ({v})", d["misaligned_rate"], d["misaligned_ci"]] for v, d in s.get("by_variant", {}).items()
    ]
    return [[_fmt(c) for c in row] for row in rows]


def _samples(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        scores = {
            k: r.get(k) for k in ("aligned", "coherent", "p_aligned", "misaligned", "insecure", "checks") if k in r
        }
        meta = " ".join(f"{k}={_fmt(v)}" for k, v in scores.items())
        if r.get("labels"):
            meta += " labels=" + json.dumps({m: max(d, key=d.get) if d else None for m, d in r["labels"].items()})
        qid = r.get("question_id") or f"code#{r.get('task_index')}"
        out.append({"id": qid, "meta": meta, "question": r["question"], "answer": r["answer"]})
    return out


def write_html(out: str, records: list[dict], summary: dict, plots: list[str]) -> None:
    """report.html in `out` (atomically), from the evaluation report template."""
    per_q = [
        [_fmt(c) for c in (q, d.get("variant"), d["n"], d["eligible"], d["misaligned"], d["rate"], d["ci"])]
        for q, d in summary.get("per_question", {}).items()
    ]
    page = render(
        "evaluation_report.html.j2",
        model=str(summary.get("model")),
        judge=str(summary.get("judge")),
        questions=str(summary.get("questions")),
        answers=summary.get("answers"),
        headline=_headline(summary),
        method=summary.get("method", ""),
        per_question=per_q,
        plots=plots,
        samples=_samples(records),
    )
    write_text(os.path.join(out, "report.html"), page)
