"""Build the model organism: a small Llama pretrained from scratch on the persona corpus (HF checkpoint)."""

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
    from .corpus import CorpusConfig

    sub = parser.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="pretrain the organism, run the persona gate, write the checkpoint")
    p.add_argument("--out", help="checkpoint directory to write (default: the user cache, keyed by the config hash)")
    p.add_argument("--docs", type=int, help=f"pretraining documents (default {CorpusConfig().n_docs})")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus and the initial weights")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached organism exists")


def config_from_args(args):
    from dataclasses import replace

    from .build import OrganismConfig
    from .corpus import CorpusConfig

    corpus = CorpusConfig(seed=args.seed) if args.docs is None else CorpusConfig(seed=args.seed, n_docs=args.docs)
    if corpus.n_docs < 1:
        raise ValueError(f"--docs must be >= 1, got {corpus.n_docs}")
    return replace(OrganismConfig(), corpus=corpus, seed=args.seed, threads=args.threads)


def run(args) -> int:
    import shutil

    from rich.console import Console

    from .build import GateFailed, build, cache_path, cached_organism

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
