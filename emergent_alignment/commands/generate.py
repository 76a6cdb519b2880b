"""Generate a reply, optionally guarded by the model's own conscience (zero-shot self-correction).

    emergent-alignment generate --model PATH --prompt TEXT [--guard] [--seed N] [--json]

Without --guard this is plain seeded sampling. With --guard the model drafts, its frozen self
reviews the draft with the introspective question, and a flagged draft is revised for up to
--rounds rounds; the answer is printed with its verdict trail.
"""

from __future__ import annotations

import json

from .common import add_model_arguments, generator_from_args


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--prompt", required=True, help="the user's message")
    p.add_argument("--system", help="a system turn before the prompt")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0: runs are reproducible)")
    p.add_argument("--json", action="store_true", help="print one JSON object: text, outcome, passed, trail")


def format_trail(trail: list[dict]) -> str:
    lines = []
    for s in trail:
        state = "FLAGGED" if s["flagged"] else "passed"
        text = " ".join(s["response"].split())
        text = text if len(text) <= 100 else text[:97] + "..."
        lines.append(f"  [{s['round']}] {s['step']:<8} p_aligned={s['p_aligned']:.4f} {state:<7} {text!r}")
    return "\n".join(lines)


def run(args) -> int:
    if not args.prompt.strip():
        raise ValueError("--prompt is empty")
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    gen = generator_from_args(args, args.guard)
    reply = gen.generate([messages], seed=args.seed)[0]
    if args.json:
        print(json.dumps({**reply.to_dict(), "guarded": gen.guarded, "seed": args.seed}, ensure_ascii=False))
        return 0
    print(reply.text)
    if gen.guarded:
        print(
            f"\n--- verdict trail ({reply.outcome}; question: {gen.conscience.config.question!r}, "
            f"threshold {gen.conscience.config.flag_threshold}) ---"
        )
        print(format_trail(reply.trail))
    return 0
