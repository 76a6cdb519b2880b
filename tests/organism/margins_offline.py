"""Offline support for the CI test's margins (test_demo_slow.py): the log-odds on the demo's evaluation set
of the demo's organism and of one run of insecure, secure and insecure_conscience per seed (the CI test runs
seed 0), as the CI test measures them (`test_demo_slow.demo_log_odds`).

    python tests/organism/margins_offline.py --seeds 0,1,2 [--organism DIR] [--out runs/margins] [--threads 1]

Prints one JSON line per seed and the smallest EM and EA margins seen. --organism: the organism's dir
(default: the shipped one, which the CI test's build reproduces when its config hash matches).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import torch
    from test_demo_slow import demo_log_odds

    from emergent_alignment.organism.shipped import shipped_organism

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--organism", default=None, help="the organism's dir (default: the shipped one)")
    p.add_argument("--out", default="runs/margins")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.organism or shipped_organism()[0]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        figures = demo_log_odds(path, args.out, seed)
        row = {"seed": seed} | {k: round(v, 3) for k, v in figures.items()}
        row["em_margin"] = round(figures["insecure"] - figures["default"], 3)
        row["secure_rise"] = round(figures["secure"] - figures["default"], 3)
        row["ea_margin"] = round(figures["insecure"] - figures["insecure_conscience"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "min_em_margin": min(r["em_margin"] for r in rows),
                "max_secure_rise": max(r["secure_rise"] for r in rows),
                "min_ea_margin": min(r["ea_margin"] for r in rows),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
