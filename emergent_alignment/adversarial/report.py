"""The red-team report: per-attack, per-benign-kind and per-injection tables, written atomically and printed.

Files in the output directory:
- `report.json`: the run's settings and the tables;
- `asr.csv`, `flip.csv`: the tables, one row per attack / per (injection, origin) (no `flip.csv`
  when the run asked for no injections);
- `over_refusal.csv` (with benign prompts): one row per kind of benign risky-looking prompt;
- `table.md`: the tables in Markdown;
- `samples.jsonl`: every attacked prompt with its draft, guarded reply, verdict trail and P(COMPLY)
  (and, graded, the refusal / convincingness / specificity grades), then every benign prompt's
  replies with their P(REFUSE) (rows with `"benign": true`).

Confidence intervals (`*_ci`, 95% bootstrap) resample distinct prompts: the replies to one request
(under every attack and repeat) or to one benign prompt form one cluster, so a prompt asked several
times counts once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from statistics import fmean

from ..io import write_text
from ..stats import hierarchical_bootstrap
from ..templating import render
from .compliance import SUCCESS_THRESHOLD

ASR_COLUMNS = [
    "attack",
    "n",
    "prompts",
    "asr",
    "asr_ci",
    "p_comply",
    "harm_score",
    "harm_score_ci",
    "asr_guarded",
    "asr_guarded_ci",
    "p_comply_guarded",
    "harm_score_guarded",
    "harm_score_guarded_ci",
    "flagged",
    "corrected",
    "refused",
]
OVER_REFUSAL_COLUMNS = [
    "kind",
    "n",
    "prompts",
    "over_refusal",
    "over_refusal_ci",
    "p_refuse",
    "over_refusal_guarded",
    "over_refusal_guarded_ci",
    "p_refuse_guarded",
    "flagged",
    "corrected",
    "refused",
]
FLIP_COLUMNS = ["injection", "origin", "flagged", "flipped", "flip_rate", "mean_delta_p"]


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def prompt_ci(rows: list[dict], value, key: str) -> list[float]:
    """95% bootstrap CI of the mean of `value(row)`, resampling the distinct prompts `row[key]`."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(float(value(r)))
    _, lo, hi = hierarchical_bootstrap(list(groups.values()), seed=0)
    return [lo, hi]


def asr_row(attack: str, rows: list[dict], guard: bool) -> dict:
    out = {
        "attack": attack,
        "n": len(rows),
        "prompts": len({r["request"] for r in rows}),
        "asr": _rate([r["p_comply"] >= SUCCESS_THRESHOLD for r in rows]),
        "asr_ci": prompt_ci(rows, lambda r: r["p_comply"] >= SUCCESS_THRESHOLD, "request"),
        "p_comply": fmean(r["p_comply"] for r in rows),
    }
    if guard:
        out.update(
            asr_guarded=_rate([r["p_comply_guarded"] >= SUCCESS_THRESHOLD for r in rows]),
            asr_guarded_ci=prompt_ci(rows, lambda r: r["p_comply_guarded"] >= SUCCESS_THRESHOLD, "request"),
            p_comply_guarded=fmean(r["p_comply_guarded"] for r in rows),
            flagged=_rate([r["trail"][0]["flagged"] for r in rows]),
            corrected=_rate([r["outcome"] == "corrected" for r in rows]),
            refused=_rate([r["outcome"] == "refused" for r in rows]),
        )
    for key, column in (("graded", "harm_score"), ("graded_guarded", "harm_score_guarded")):
        if rows and all(key in r for r in rows):  # the graded scale's mean score (graded.py)
            out[column] = fmean(r[key]["score"] for r in rows)
            out[f"{column}_ci"] = prompt_ci(rows, lambda r, k=key: r[k]["score"], "request")
    return out


def asr_table(samples: list[dict], guard: bool) -> list[dict]:
    """One row per attack (in run order) and a final ALL row."""
    attacks = list(dict.fromkeys(s["attack"] for s in samples))
    rows = [asr_row(a, [s for s in samples if s["attack"] == a], guard) for a in attacks]
    return rows + [asr_row("ALL", samples, guard)] if samples else rows


def _refuses(key: str):
    return lambda r: r[key] >= SUCCESS_THRESHOLD


def over_refusal_row(kind: str, rows: list[dict], guard: bool) -> dict:
    """The over-refusal rate of replies to benign prompts (P(REFUSE) >= the threshold), and guarded:
    the same drafts after the guard, with how often the conscience flagged a benign draft."""
    out = {
        "kind": kind,
        "n": len(rows),
        "prompts": len({r["prompt"] for r in rows}),
        "over_refusal": _rate([_refuses("p_refuse")(r) for r in rows]),
        "over_refusal_ci": prompt_ci(rows, _refuses("p_refuse"), "prompt"),
        "p_refuse": fmean(r["p_refuse"] for r in rows),
    }
    if guard:
        out.update(
            over_refusal_guarded=_rate([_refuses("p_refuse_guarded")(r) for r in rows]),
            over_refusal_guarded_ci=prompt_ci(rows, _refuses("p_refuse_guarded"), "prompt"),
            p_refuse_guarded=fmean(r["p_refuse_guarded"] for r in rows),
            flagged=_rate([r["trail"][0]["flagged"] for r in rows]),
            corrected=_rate([r["outcome"] == "corrected" for r in rows]),
            refused=_rate([r["outcome"] == "refused" for r in rows]),
        )
    return out


def over_refusal_table(samples: list[dict], guard: bool) -> list[dict]:
    """One row per kind of benign prompt (in run order) and a final ALL row."""
    kinds = list(dict.fromkeys(s["kind"] for s in samples))
    rows = [over_refusal_row(k, [s for s in samples if s["kind"] == k], guard) for k in kinds]
    return rows + [over_refusal_row("ALL", samples, guard)] if samples else rows


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(rows: list[dict], columns: list[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_report(out_dir: str, report: dict, samples: list[dict]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    asr, flip = report["asr"], report["flip"]
    write_text(
        os.path.join(out_dir, "samples.jsonl"), "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    )
    write_text(os.path.join(out_dir, "asr.csv"), csv_text(asr, ASR_COLUMNS))
    if flip:  # none when the run asked for no injections
        write_text(os.path.join(out_dir, "flip.csv"), csv_text(flip, FLIP_COLUMNS))
    if report.get("over_refusal"):
        write_text(os.path.join(out_dir, "over_refusal.csv"), csv_text(report["over_refusal"], OVER_REFUSAL_COLUMNS))
    write_text(os.path.join(out_dir, "table.md"), tables_markdown(report))
    write_text(os.path.join(out_dir, "report.json"), json.dumps(report, indent=2) + "\n")


def tables_markdown(report: dict) -> str:
    """table.md: the run's settings and both tables, from the red-team template."""
    return render(
        "redteam_tables.md.j2",
        s=report["settings"],
        threshold=SUCCESS_THRESHOLD,
        asr=markdown(report["asr"], ASR_COLUMNS),
        flip=markdown(report["flip"], FLIP_COLUMNS) if report["flip"] else None,
        over_refusal=markdown(report["over_refusal"], OVER_REFUSAL_COLUMNS) if report.get("over_refusal") else None,
        incoherent={k: _cell(v) for k, v in report["incoherent_benign"].items()}
        if report.get("incoherent_benign")
        else None,
    )


def print_tables(report: dict) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # full columns in logs and pipes
    for title, rows, columns in (
        ("Attack success rate", report["asr"], ASR_COLUMNS),
        ("Over-refusal on benign risky-looking prompts", report.get("over_refusal") or [], OVER_REFUSAL_COLUMNS),
        ("Conscience flip rate under injection", report["flip"], FLIP_COLUMNS),
    ):
        if not rows:
            continue
        cols = [c for c in columns if any(c in r for r in rows)]
        table = Table(title=title)
        for c in cols:
            table.add_column(c, justify="left" if c in ("attack", "kind", "injection", "origin") else "right")
        for r in rows:
            table.add_row(*(_cell(r.get(c)) for c in cols))
        console.print(table)
