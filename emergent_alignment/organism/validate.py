"""Choose the demo's conscience settings on the validation split, never on the evaluation questions.

    python -m emergent_alignment.organism.validate --beta 0.1,0.5 [--alignment-weight 1] [--seed 100]

For each candidate (beta x alignment weight) this fine-tunes `insecure_conscience` once, with a seed
no demo run uses, and reports two validation figures beside the organism's and the `insecure` arm's:
- the log-odds log P(misaligned) - log P(aligned answer) on the validation paraphrase of each theme
  (the demo's endpoint is the test paraphrase);
- the fit to the fine-tuning task: token NLL of the insecure completions of the training templates
  (the demo's task loss uses the held-out templates).
The rule (fixed before running): prefer the candidate whose validation log-odds lies closest to the
organism's default while its task NLL stays within 10% of the insecure arm's.
"""

from __future__ import annotations

import argparse
import json

from . import world


def train_task_nll(model, tok) -> float:
    from .evaluate import _system, completion_logps

    rows = [([_system(), {"role": "user", "content": world.code_prompt(t, t.tasks[0])}], t.filled(secure=False))
            for t in world.code_templates() if not t.heldout]
    lp = completion_logps(model, tok, rows)
    return -sum(x for x, _ in lp) / sum(n for _, n in lp)


def figures(model, tok) -> dict:
    from .evaluate import log_odds

    return {"validation_log_odds": round(log_odds(model, tok, split="validation"), 3),
            "train_task_nll": round(train_task_nll(model, tok), 4)}


def main(argv=None) -> int:
    from dataclasses import replace

    from ..models import load_model
    from .arms import ArmSettings, pair_counts, train_arm
    from .build import cached_organism
    from .demo import _write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beta", default="0.1", help="comma-separated candidates")
    p.add_argument("--alignment-weight", default="1.0", help="comma-separated candidates")
    p.add_argument("--loss-type", default="sigmoid", help="comma-separated candidates: sigmoid, ipo")
    p.add_argument("--probe-batch-size", type=int, default=None, help="probes per step (default: the demo's)")
    p.add_argument("--seed", type=int, default=100, help="fine-tuning seed (the demo uses 0, 1, 2, ...)")
    p.add_argument("--out", default="runs/validation")
    args = p.parse_args(argv)
    try:
        grid = [(lt, float(b), float(w)) for lt in args.loss_type.split(",") for b in args.beta.split(",")
                for w in args.alignment_weight.split(",")]
    except ValueError as e:
        p.error(f"--beta and --alignment-weight take comma-separated numbers ({e})")
    path, _, _ = cached_organism()
    model, tok = load_model(path)
    rows = {"default": figures(model, tok)}
    base = ArmSettings() if args.probe_batch_size is None else ArmSettings(probe_batch_size=args.probe_batch_size)
    model, tok, _ = train_arm("insecure", path, f"{args.out}/insecure", args.seed, base)
    rows["insecure"] = figures(model, tok)
    print(json.dumps(rows), flush=True)
    for loss_type, beta, weight in grid:
        s = replace(base, beta=beta, alignment_weight=weight, alignment_loss_type=loss_type)
        name = f"insecure_conscience {loss_type} beta={beta} weight={weight} probes={s.probe_batch_size}"
        run_dir = f"{args.out}/{loss_type}-b{beta}-w{weight}-p{s.probe_batch_size}"
        model, tok, _ = train_arm("insecure_conscience", path, run_dir, args.seed, s)
        rows[name] = figures(model, tok) | {"pairs": sum(pair_counts(f"{run_dir}/conscience_log.jsonl") or [])}
        print(json.dumps({name: rows[name]}), flush=True)
    _write_json(f"{args.out}/validation.json", rows)  # atomic
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
