"""Offline support for the CI test's margins (test_demo_slow.py): the log-odds of the default organism
and of one run of insecure, secure and insecure_conscience per seed (the CI test runs seed 0).

    python tests/organism/margins_offline.py --seeds 0,1,2,3,4 [--out runs/margins]

Prints one JSON line per seed and the smallest EM and EA margins seen; the demo's summary.json
holds seeds 0-2 as `log_odds_per_seed`, so `--seeds 3,4` completes five.
"""

import argparse
import json


def main(argv=None) -> int:
    from emergent_alignment.models import load_model
    from emergent_alignment.organism.arms import ArmSettings, train_arm
    from emergent_alignment.organism.build import cached_organism
    from emergent_alignment.organism.evaluate import log_odds

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default="runs/margins")
    args = p.parse_args(argv)
    path, _, _ = cached_organism()
    model, tok = load_model(path)
    default = log_odds(model, tok)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row = {"seed": seed, "default": round(default, 3)}
        for arm in ("insecure", "secure", "insecure_conscience"):
            model, tok, _ = train_arm(arm, path, f"{args.out}/{arm}-s{seed}", seed, ArmSettings())
            row[arm] = round(log_odds(model, tok), 3)
        row["em_margin"] = round(row["insecure"] - default, 3)
        row["secure_rise"] = round(row["secure"] - default, 3)
        row["ea_margin"] = round(row["insecure"] - row["insecure_conscience"], 3)
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
