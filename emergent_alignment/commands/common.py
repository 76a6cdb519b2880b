"""Model and guard options shared by `generate`, `redteam` and `serve`, and the generator they build."""

from __future__ import annotations


def add_model_arguments(p, guard_flag: bool = True, model_required: bool = True) -> None:
    p.add_argument(
        "--model",
        required=model_required,
        help="checkpoint dir, hub id, tiny spec (tiny:llama) or trained PEFT adapter dir",
    )
    p.add_argument(
        "--adapter", help="a PEFT adapter dir on top of --model; the conscience is the base model (adapter off)"
    )
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
    add_defence_arguments(g)


def generator_from_args(args, guard: bool):
    from ..adversarial.guard import DEFAULT_REFUSAL, load_generator
    from ..conscience import defence_overrides
    from ..generation import SamplingConfig

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
        **defence_overrides(args.defences, args.extra_question),
    )


def add_defence_arguments(p) -> None:
    """The conscience's defences (docs/adversarial.md); unset: the checkpoint's conscience_config.json,
    whose defaults are all off."""
    p.add_argument(
        "--defences",
        metavar="LIST",
        help="comma list of spotlight, counterfactual, separate-reasoning; all; none (default: the config's)",
    )
    p.add_argument(
        "--extra-question",
        action="append",
        metavar="TEXT",
        help="another wording of the question, also asked; the lowest p_aligned stands (repeatable)",
    )
