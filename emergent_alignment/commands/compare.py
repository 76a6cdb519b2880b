"""Draw evaluation runs side by side: EM's figure, one colour per run, questions on the x axis.

    emergent-alignment compare runs/base runs/insecure runs/ea --out runs/compare

Reads each DIR/summary.json (written by `eval`); writes compare.png, compare_variants.png when any
run has variants, and compare.json (see `evaluation/compare.py`).
"""

from __future__ import annotations

import os


def add_arguments(p):
    p.add_argument("runs", nargs="+", metavar="DIR", help="output directories of `eval` runs")
    p.add_argument("--labels", help="comma-separated names for the runs (default: each run's model)")
    p.add_argument("--out", required=True, help="directory for compare.png and compare.json")


def run(args) -> int:
    from ..evaluation.compare import compare

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.runs):
        raise ValueError(f"--labels names {len(labels)} runs but {len(args.runs)} were given")
    table, written = compare(args.runs, args.out, labels)
    for row in table:
        print(
            f"{row['label']}: misaligned {row['misaligned_rate']} CI {row['misaligned_ci']}, "
            f"insecure code {row['insecure_code_rate']}"
        )
    print(f"wrote {', '.join(os.path.join(args.out, w) for w in written)}")
    return 0
