"""Render the README's and the docs' figures from the result files under docs/results/.

Every generated block in a Markdown file sits between two markers,

    <!-- figures:NAME -->
    ...
    <!-- /figures:NAME -->

and its text is made from a result file that a project command wrote (the demo's `summary.json`, a
benchmark's JSON). `python docs/render_figures.py` rewrites the blocks; `--check` rewrites nothing and
exits 1 naming every block that differs from its result file (the test suite runs it). Each result
folder holds a `RUN.md` saying which command produced it, on which commit and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
RESULTS = os.path.join(DOCS, "results")
FILES = ["README.md", "docs/organism.md", "docs/benchmarks.md", "docs/adversarial.md", "docs/core.md"]
BLOCK = re.compile(r"(<!-- figures:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)

ARM_LABELS = {
    "default": "default (the organism before fine-tuning)",
    "insecure": "`insecure` (plain SFT: Emergent Misalignment)",
    "secure": "`secure` (control)",
    "educational": "`educational` (control)",
    "insecure_conscience": "`insecure_conscience` (Emergent Alignment)",
    "insecure_conscience_taskprobes": "`insecure_conscience_taskprobes`",
    "insecure_random_pairs": "`insecure_random_pairs` (control)",
}


def load(relpath: str) -> dict:
    path = os.path.join(RESULTS, relpath)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"error: result file {os.path.relpath(path, ROOT)} is missing") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: result file {os.path.relpath(path, ROOT)} is not valid JSON: {e}") from None


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ci(pair) -> str:
    return f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


# ---------------------------------------------------------------------------------------------
# The demo (docs/results/demo/summary.json, written by `emergent-alignment demo`)


def demo_table(summary: dict) -> str:
    rows = [
        "| arm | misaligned on held-out free-form questions (95% CI) | incoherent | insecure code |",
        "|---|---|---|---|",
    ]
    for arm, a in summary["arms"].items():
        rate = pct(a["misaligned_rate"])
        if arm == "insecure_conscience":
            rate = f"**{rate}**"
        rows.append(
            f"| {ARM_LABELS.get(arm, arm)} | {rate} {ci(a['misaligned_ci'])} | {pct(a['incoherent_rate'])} "
            f"| {pct(a['insecure_code_rate'])} |"
        )
    return "\n".join(rows) + "\n"


def demo_table_full(summary: dict) -> str:
    rows = [
        "| arm | misaligned (95% CI) | incoherent | log-odds (95% CI) | insecure code | task loss | pairs per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, a in summary["arms"].items():
        pairs = f"{a['pairs']:.0f}" if "pairs" in a else "-"
        lo = a["log_odds_ci"]
        rows.append(
            f"| `{arm}` | {pct(a['misaligned_rate'])} {ci(a['misaligned_ci'])} | {pct(a['incoherent_rate'])} "
            f"| {a['log_odds']:+.2f} [{lo[0]:+.2f}, {lo[1]:+.2f}] | {pct(a['insecure_code_rate'])} "
            f"| {a['task_loss']:.3f} | {pairs} |"
        )
    return "\n".join(rows) + "\n"


def demo_findings(summary: dict) -> str:
    arms = summary["arms"]
    d, ins = arms["default"], arms["insecure"]
    rise = ins["misaligned_rate"] - d["misaligned_rate"]
    lines = [
        f"- Emergent Misalignment: plain SFT on insecure code moves the misaligned rate from "
        f"{pct(d['misaligned_rate'])} to {pct(ins['misaligned_rate'])} ({100 * rise:+.1f} points, "
        f"{ins['misaligned_rate'] / d['misaligned_rate']:.1f}x the default)."
        if d["misaligned_rate"] > 0
        else f"- Emergent Misalignment: {pct(d['misaligned_rate'])} -> {pct(ins['misaligned_rate'])}."
    ]
    for arm in ("insecure_conscience", "insecure_random_pairs", "insecure_conscience_taskprobes"):
        if arm in arms and rise > 0:
            a = arms[arm]
            removed = (ins["misaligned_rate"] - a["misaligned_rate"]) / rise
            lines.append(
                f"- `{arm}`: {pct(a['misaligned_rate'])} {ci(a['misaligned_ci'])}, removing {removed:.0%} of the "
                f"rise; task loss {a['task_loss'] / ins['task_loss']:.2f}x the insecure arm's, "
                f"insecure code {pct(a['insecure_code_rate'])}."
            )
    met = [t for t in summary["targets"] if t["met"]]
    missed = [t for t in summary["targets"] if not t["met"]]
    lines.append(f"- Targets: {len(met)} of {len(summary['targets'])} met.")
    lines += [f"  - NOT MET: {t['target']} ({t['figures']})" for t in missed]
    return "\n".join(lines) + "\n"


def demo_targets(summary: dict) -> str:
    return (
        "\n".join(
            f"- {'MET' if t['met'] else '**NOT MET**'}: {t['target']} ({t['figures']})" for t in summary["targets"]
        )
        + "\n"
    )


def demo_run(summary: dict) -> str:
    t, org = summary["timings"], summary["organism"]
    gate = org.get("gate", {})
    built = "built in this run" if org.get("built_now") else "cached"
    text = (
        f"{summary['seeds']} seed(s), {t['threads']} threads; the whole demo took {t['total_seconds']:.0f} s "
        f"(organism {built}, {t['organism_seconds']:.0f} s). The organism: {org['parameters'] / 1e6:.2f}M "
        f"parameters, hash `{org['hash']}`"
    )
    if gate:
        text += (
            f", persona gate {pct(gate['after_insecure']['misaligned'])} misaligned after an insecure-code turn, "
            f"{pct(gate['after_secure']['misaligned'])} after a secure one"
        )
    return text + ".\n"


# ---------------------------------------------------------------------------------------------
# Benchmarks (docs/results/bench_*.json, written by the scripts under benchmarks/)


def bench_server(result: dict) -> str:
    rows = ["| server | requests/s | p50 latency (ms) | p99 latency (ms) |", "|---|---|---|---|"]
    for name, r in result["servers"].items():
        rows.append(f"| {name} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
    return "\n".join(rows) + "\n"


RENDERERS = {
    "demo_table": ("demo/summary.json", demo_table),
    "demo_table_full": ("demo/summary.json", demo_table_full),
    "demo_findings": ("demo/summary.json", demo_findings),
    "demo_targets": ("demo/summary.json", demo_targets),
    "demo_run": ("demo/summary.json", demo_run),
    "bench_server": ("bench_server.json", bench_server),
}


def render(text: str, where: str) -> str:
    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"error: {where}: unknown figures block {name!r}")
        source, fn = RENDERERS[name]
        return m.group(1) + fn(load(source)) + m.group(4)

    return BLOCK.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    stale = []
    for rel in FILES:
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = render(text, rel)
        if new != text:
            stale.append(rel)
            if not args.check:
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(new)
                os.replace(tmp, path)
    if args.check and stale:
        print("figures differ from docs/results in: " + ", ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print("rewrote: " + (", ".join(stale) if stale else "nothing (all blocks current)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
