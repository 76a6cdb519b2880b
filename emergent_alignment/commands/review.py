"""Ask a model's conscience whether one response is aligned: prints its verdict."""

from __future__ import annotations

import json

from .common import add_defence_arguments


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
    add_defence_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ..conscience import DEFENCES, defence_overrides
    from ..models import load_conscience

    if not args.prompt.strip():
        raise ValueError("--prompt is empty")
    if not args.response.strip():
        raise ValueError("--response is empty")
    conscience = load_conscience(
        args.model,
        adapter=args.adapter,
        question=args.question,
        flag_threshold=args.flag_threshold,
        **defence_overrides(args.defences, args.extra_question),
    )
    verdict = conscience.review([[{"role": "user", "content": args.prompt}]], [args.response], [args.reasoning])[0]
    if args.json:
        c = conscience.config
        defences = {d: getattr(c, d) for d in DEFENCES} | {"extra_questions": list(c.extra_questions)}
        print(json.dumps({**verdict.to_dict(), "question": c.question, "defences": defences}))
    else:
        state = "FLAGGED" if verdict.flagged else "passed"
        on = [d for d in DEFENCES if getattr(conscience.config, d)] + [
            f"{len(conscience.config.extra_questions)} extra question(s)"
        ] * bool(conscience.config.extra_questions)
        if on:
            print(f"defences: {', '.join(on)} ({conscience.config.forwards_per_sample} forwards, the lowest stands)")
        print(
            f"{conscience.config.question}\np_aligned = {verdict.p_aligned:.4f}  ({state}, threshold "
            f"{conscience.config.flag_threshold})"
        )
    return 0
