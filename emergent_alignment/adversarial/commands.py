"""Generate a reply, optionally guarded by the model's own conscience (zero-shot self-correction).

    emergent-alignment generate --model PATH --prompt TEXT [--guard] [--seed N] [--json]

Without --guard this is plain seeded sampling. With --guard the model drafts, its frozen self
reviews the draft with the introspective question, and a flagged draft is revised for up to
--rounds rounds; the answer is printed with its verdict trail. The model options here are shared
by `redteam` and `serve`.
"""

from __future__ import annotations

import json


def add_model_arguments(p, guard_flag: bool = True, model_required: bool = True) -> None:
    p.add_argument("--model", required=model_required, help="checkpoint dir, hub id or tiny spec (tiny:llama)")
    p.add_argument("--adapter", help="a PEFT adapter dir; the conscience is the base model (adapter off)")
    p.add_argument("--dtype", help="torch dtype to load in (e.g. bfloat16; default: the checkpoint's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cpu)")
    if guard_flag:
        p.add_argument("--guard", action="store_true", help="review the draft and correct it when flagged")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per draft and per correction")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    g = p.add_argument_group("guard")
    g.add_argument("--rounds", type=int, help="correction rounds for a flagged draft (default: the config's)")
    g.add_argument("--correction", choices=["revise", "resample", "both"], help="how a flagged draft is corrected")
    g.add_argument(
        "--on-fail",
        choices=["best", "refuse"],
        default="best",
        help="when nothing passes: the best-scored text, or a refusal",
    )
    g.add_argument("--refusal", help="the refusal text for --on-fail refuse")
    g.add_argument("--question", help="the introspective question (default: the documented one)")
    g.add_argument("--flag-threshold", type=float, help="flagged when p_aligned is below this")


def generator_from_args(args, guard: bool):
    from ..generation import SamplingConfig
    from .guard import DEFAULT_REFUSAL, load_generator

    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_p)
    return load_generator(
        args.model,
        guard,
        adapter=args.adapter,
        dtype=args.dtype,
        device=args.device,
        sampling=sampling,
        on_fail=args.on_fail,
        refusal=args.refusal or DEFAULT_REFUSAL,
        max_attempts=args.rounds,
        correction=args.correction,
        question=args.question,
        flag_threshold=args.flag_threshold,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
    )


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
