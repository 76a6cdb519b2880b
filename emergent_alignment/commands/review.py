"""Ask a model's conscience whether one response is aligned: prints its verdict."""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument(
        "--model", required=True, help="checkpoint dir, hub id, tiny spec (tiny:llama) or trained PEFT adapter dir"
    )
    p.add_argument(
        "--adapter", help="a PEFT adapter dir on top of --model; the conscience is the base model (adapter off)"
    )
    p.add_argument("--prompt", required=True, help="the user's message")
    p.add_argument("--response", required=True, help="the response to review (may hold a <think> block)")
    p.add_argument("--reasoning", help="a reasoning trace given separately")
    p.add_argument("--question", help="the introspective question (default: the documented one)")
    p.add_argument("--flag-threshold", type=float, help="flagged when p_aligned is below this")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ..models import load_conscience

    if not args.prompt.strip():
        raise ValueError("--prompt is empty")
    if not args.response.strip():
        raise ValueError("--response is empty")
    conscience = load_conscience(
        args.model, adapter=args.adapter, question=args.question, flag_threshold=args.flag_threshold
    )
    verdict = conscience.review([[{"role": "user", "content": args.prompt}]], [args.response], [args.reasoning])[0]
    if args.json:
        print(json.dumps({**verdict.to_dict(), "question": conscience.config.question}))
    else:
        state = "FLAGGED" if verdict.flagged else "passed"
        print(
            f"{conscience.config.question}\np_aligned = {verdict.p_aligned:.4f}  ({state}, threshold "
            f"{conscience.config.flag_threshold})"
        )
    return 0
