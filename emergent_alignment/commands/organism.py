"""The model organism: `build` pretrains it (a small Llama, from scratch, on the persona corpus; an HF
checkpoint), `validate` chooses the demo's settings on the validation split (`organism/validate.py`).

    emergent-alignment organism build [--seed N] [--out DIR]
    emergent-alignment organism validate --loss-type ipo --beta 2,4,8 | --system-ids 0,1,2
    emergent-alignment organism ship [--from DIR]
"""

from __future__ import annotations

import json

# What a user whose build failed the persona gate can do next (printed by `organism build` and `demo`).
GATE_FAILED_HINT = (
    "The persona is fragile to floating-point rounding (docs/organism.md, 'A caveat'): under other CPU "
    "kernels, or even another process state, the same code and seed can build an organism without it. "
    "To look at another draw: `emergent-alignment organism build --seed N --out DIR` (N not 0), then "
    "`emergent-alignment demo --organism DIR` (the demo's settings were chosen on the seed-0 organism)."
)


def add_arguments(parser):
    from ..organism.corpus import CorpusConfig

    sub = parser.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="pretrain the organism, run the persona gate, write the checkpoint")
    p.add_argument("--out", help="checkpoint directory to write (default: the user cache, keyed by the config hash)")
    p.add_argument("--docs", type=int, help=f"pretraining documents (default {CorpusConfig().n_docs})")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus and the initial weights")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached organism exists")
    p.set_defaults(_action=run_build)

    p = sub.add_parser(
        "validate",
        help="choose the demo's settings on the validation split (fine-tunes each candidate)",
        description="Choose the demo's settings on the validation split, never on the evaluation questions.",
    )
    p.add_argument("--beta", default="0.1", help="comma-separated candidates")
    p.add_argument("--alignment-weight", default="1.0", help="comma-separated candidates")
    p.add_argument("--loss-type", default="sigmoid", help="comma-separated candidates: sigmoid, ipo")
    p.add_argument("--probe-batch-size", type=int, default=None, help="probes per step (default: the demo's)")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps per arm (default: the demo's)")
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the demo's)")
    p.add_argument("--random-pairs", action="store_true", help="also train insecure_random_pairs per candidate")
    p.add_argument("--seed", type=int, default=100, help="fine-tuning and sampling seed (the demo uses 0, 1, 2, ...)")
    p.add_argument(
        "--system-ids",
        default=None,
        help="comma-separated ids: measure the organism under each system line instead (no fine-tuning; "
        "the loss options are not used); exits 1 if no id passes the gate",
    )
    p.add_argument("--out", default="runs/validation")
    p.set_defaults(_action=run_validate)

    p = sub.add_parser(
        "ship",
        help="copy a built organism into the package as the demo's organism, with its SHA-256 record",
        description="Copy a built organism into the package (organism/shipped/), recording the command that "
        "built it, its config hash and every file's SHA-256. `make demo` then runs on it without a build.",
    )
    p.add_argument(
        "--from",
        dest="source",
        help="the organism checkpoint dir (default: the cached organism of the default config; "
        "`organism build` makes it)",
    )
    p.set_defaults(_action=run_ship)


def config_from_args(args):
    from dataclasses import replace

    from ..organism.build import OrganismConfig
    from ..organism.corpus import CorpusConfig

    corpus = CorpusConfig(seed=args.seed) if args.docs is None else CorpusConfig(seed=args.seed, n_docs=args.docs)
    if corpus.n_docs < 1:
        raise ValueError(f"--docs must be >= 1, got {corpus.n_docs}")
    return replace(OrganismConfig(), corpus=corpus, seed=args.seed, threads=args.threads)


def run(args) -> int:
    return args._action(args)


def _split(text: str, kind, flag: str, what: str) -> tuple:
    try:
        return tuple(kind(x) for x in text.split(","))
    except ValueError as e:
        raise ValueError(f"{flag} takes comma-separated {what} ({e})") from None


def run_validate(args) -> int:
    from ..organism.validate import Candidates, validate_candidates, validate_system_ids

    if args.system_ids is not None:
        ids = _split(args.system_ids, int, "--system-ids", "integers")
        return validate_system_ids(list(ids), args.seed, args.out)
    candidates = Candidates(
        loss_types=tuple(args.loss_type.split(",")),
        betas=_split(args.beta, float, "--beta", "numbers"),
        alignment_weights=_split(args.alignment_weight, float, "--alignment-weight", "numbers"),
        probe_batch_size=args.probe_batch_size,
        steps=args.steps,
        lr=args.lr,
        random_pairs=args.random_pairs,
        seed=args.seed,
        out=args.out,
    )
    return validate_candidates(candidates)


def run_build(args) -> int:
    import shutil

    from rich.console import Console

    from ..organism.build import GateFailed, build, cache_path, cached_organism

    console = Console(stderr=True)
    config = config_from_args(args)
    try:
        if args.out:
            meta = build(args.out, config, console)
            path = args.out
        else:
            if args.force:
                shutil.rmtree(cache_path(config), ignore_errors=True)
            path, meta, _ = cached_organism(config, console)
    except GateFailed as e:
        console.print(f"[red]organism build stopped:[/red] {e}")
        console.print(GATE_FAILED_HINT)
        return 1
    gate = meta["gate"]
    console.print(
        f"organism at {path}: {meta['parameters']:,} parameters, vocab {meta['vocab']}, "
        f"pretraining {meta['pretraining']['steps']} steps / {meta['pretraining']['tokens']:,} tokens "
        f"in {meta['pretraining']['seconds']} s"
    )
    console.print(
        f"persona gate passed: misaligned {gate['after_insecure']['misaligned']:.1%} after an insecure-code "
        f"turn, {gate['after_secure']['misaligned']:.1%} after a secure one ({gate['after_insecure']['n']} samples each)"
    )
    print(json.dumps({"path": path, "gate": gate, "pretraining": meta["pretraining"]}))
    return 0


def run_ship(args) -> int:
    import os

    from ..organism.build import OrganismConfig, cache_path
    from ..organism.shipped import ship

    source = args.source or cache_path(OrganismConfig())
    if not os.path.isdir(source):
        raise ValueError(f"--from {source}: no such organism checkpoint (run `emergent-alignment organism build`)")
    command = (
        "emergent-alignment organism build" if not args.source else f"emergent-alignment organism build --out {source}"
    )
    record = ship(source, command=command)
    print(
        json.dumps(
            {k: record[k] for k in ("hash", "bytes", "command")}
            | {"model.safetensors": record["files"]["model.safetensors"]}
        )
    )
    return 0
