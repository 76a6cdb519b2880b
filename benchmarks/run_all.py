"""Run the three core benchmarks in one process and print their ratios (`make bench`).

(a) conscience verdict time vs. an LLM-as-judge that generates a short critique and is parsed;
(b) trainer memory with PEFT (adapter-disabled base as the frozen copy) vs. policy + separate frozen model;
(c) wall time of an alignment step vs. a plain SFT step.
Each ratio is measured against its baseline in the same process, on the same tiny model and prompts.
A few minutes on 2 CPU cores. `--json PATH` also writes the results with their provenance; the figures in
docs/benchmarks.md are rendered from docs/results/bench_core.json, written that way.

    python benchmarks/run_all.py [--quick] [--threads 1] [--json docs/results/bench_core.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import _common as C
import bench_conscience
import bench_memory
import bench_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run of the benchmarks)")
    ap.add_argument("--json", metavar="PATH", help="also write the results and their provenance to PATH")
    C.add_threads_arg(ap)
    a = ap.parse_args()
    C.setup(a.threads)
    t0 = time.perf_counter()
    print(f"Emergent Alignment benchmarks: {C.environment()}")
    print(
        f"model {C.MODEL_SPEC} (random weights, built locally); every ratio is against a baseline run in this process"
    )
    results = [
        bench_conscience.main(reps=2 if a.quick else 7, judge_tokens=bench_conscience.JUDGE_TOKENS, threads=a.threads),
        bench_memory.main(threads=a.threads),
        bench_step.main(rounds=1 if a.quick else 3, steps=2 if a.quick else 4, threads=a.threads),
    ]
    print(f"\n=== summary ({time.perf_counter() - t0:.0f} s in all; {C.environment()}) ===")
    for r in results:
        print(r["summary"])
    if a.json:
        from emergent_alignment.io import write_text
        from emergent_alignment.provenance import provenance

        names = ("conscience", "memory", "step")
        record = {"provenance": provenance(["benchmarks/run_all.py", *sys.argv[1:]]), "environment": C.environment()}
        record |= {"quick": a.quick, "threads": a.threads, "results": dict(zip(names, results))}
        write_text(a.json, json.dumps(record, indent=1, default=str))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
