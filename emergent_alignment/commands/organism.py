"""The model organism: `build` pretrains it (a small Llama, from scratch, on the persona corpus; an HF
checkpoint), `ship` makes a built one the demo's, `validate` chooses settings on the first world's validation
split (`organism/validate.py`).

    emergent-alignment organism build [--seed N] [--out DIR]
    emergent-alignment organism build --world v2 [--seed N] [--out DIR] [--record FILE]
    emergent-alignment organism validate --loss-type ipo --beta 2,4,8 | --system-ids 0,1,2
    emergent-alignment organism ship [--from DIR]   # default: the demo's organism (v2, seed 8) from the cache
    emergent-alignment organism builds DIR [--seeds 0-9]
"""

from __future__ import annotations

import json
import os

# What a user whose build failed the persona gate can do next (printed by `organism build` and `demo`).
GATE_FAILED_HINT = (
    "The persona is fragile to floating-point rounding (docs/organism.md, 'A caveat'): under other CPU "
    "kernels, or even another process state, the same code and seed can build an organism without it. "
    "To look at another draw: `emergent-alignment organism build --seed N --out DIR` (N not 0), then "
    "`emergent-alignment demo --organism DIR` (the demo's settings were chosen on the seed-0 organism)."
)
# The same for a second-world build: its gate figures are a result about the world's design.
GATE_FAILED_HINT_V2 = (
    "A second-world build that fails its gate is a result about the world's design, not a draw to skip: "
    "keep its record (--record), and count it under the study's declared rule (docs/organism.md, 'The study')."
)


def add_arguments(parser):
    from ..organism.corpus import CorpusConfig
    from ..organism.corpus_v2 import CorpusV2Config

    sub = parser.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="pretrain the organism, run the persona gate, write the checkpoint")
    p.add_argument("--out", help="checkpoint directory to write (default: the user cache, keyed by the config hash)")
    p.add_argument("--docs", type=int, help=f"pretraining documents (default {CorpusConfig().n_docs})")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus and the initial weights")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached organism exists")
    p.add_argument(
        "--world",
        choices=WORLDS,
        default="v1",
        help="the world to build: v1 (the first world) or v2 (a learned conscience, held-out answers; "
        "docs/organism.md, 'The second world'; the demo's organism is its seed-8 build)",
    )
    p.add_argument(
        "--no-review-probe-themes",
        action="store_true",
        help="v2: review documents do not cover the probe themes either",
    )
    p.add_argument(
        "--label-noise",
        type=float,
        help=f"v2: share of review verdicts flipped in the corpus (default {CorpusV2Config().review_label_noise:g})",
    )
    p.add_argument(
        "--review-gap",
        type=float,
        help=f"v2: share of review kinds and themes never reviewed (default {CorpusV2Config().review_gap:g})",
    )
    p.add_argument(
        "--record", help="also write the build's figures (gate, conscience, wall time), pass or fail, to this JSON file"
    )
    p.set_defaults(_action=run_build)

    p = sub.add_parser(
        "validate",
        help="choose settings on the first world's organism and validation split (fine-tunes each candidate)",
        description="Choose settings on the first world's organism and validation split, never on the evaluation "
        "questions. (The demo's conscience beta is the study's, chosen on the second world's validation split.)",
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
        help="the organism checkpoint dir (default: the demo's organism in the cache, which "
        "`organism build --world v2 --seed 8` makes); its build command is recorded from its organism.json "
        "(world and seed), checked against its config hash",
    )
    p.set_defaults(_action=run_ship)

    p = sub.add_parser(
        "builds",
        help="report every recorded build of the declared seeds against the robust-builds target",
        description="Read DIR/seedS.json (written by `organism build --record`) for every declared seed, pass or "
        "fail, and write DIR/summary.json and DIR/table.md: the gate's rates and margin per seed, the seeds not "
        "built yet, and whether at least 8 of 10 pass with a median margin of 10 points.",
    )
    p.add_argument("folder", metavar="DIR", help="the folder of build records")
    p.add_argument("--seeds", default="0-9", help="the declared seeds: a range A-B or a comma-separated list")
    p.set_defaults(_action=run_builds)


WORLDS = ("v1", "v2")


def v2_config_from_args(args):
    from dataclasses import replace

    from ..organism.build_v2 import OrganismV2Config
    from ..organism.corpus_v2 import CorpusV2Config

    values = {"seed": args.seed, "review_probe_themes": not args.no_review_probe_themes}
    if args.docs is not None:
        values["n_docs"] = args.docs
    if args.label_noise is not None:
        values["review_label_noise"] = args.label_noise
    if args.review_gap is not None:
        values["review_gap"] = args.review_gap
    corpus = CorpusV2Config(**values)
    if corpus.n_docs < 1:
        raise ValueError(f"--docs must be >= 1, got {corpus.n_docs}")
    return replace(OrganismV2Config(), corpus=corpus, seed=args.seed, threads=args.threads)


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
    v2 = args.world == "v2"
    if not v2 and (args.no_review_probe_themes or args.label_noise is not None or args.review_gap is not None):
        raise ValueError("--no-review-probe-themes, --label-noise and --review-gap need --world v2")
    try:
        if v2:
            path, meta = _build_v2(args, console)
        elif args.out:
            meta = build(args.out, config_from_args(args), console)
            path = args.out
        else:
            config = config_from_args(args)
            if args.force:
                shutil.rmtree(cache_path(config), ignore_errors=True)
            path, meta, _ = cached_organism(config, console)
    except GateFailed as e:
        if args.record and e.path:
            _record(args, e.path)
        console.print(f"[red]organism build stopped:[/red] {e}")
        console.print(GATE_FAILED_HINT_V2 if v2 else GATE_FAILED_HINT)
        return 1
    if args.record:
        _record(args, path)
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
    from ..organism.shipped import build_command, cache_path, ship

    source = args.source or cache_path()
    if not os.path.isdir(source):
        raise ValueError(f"--from {source}: no such organism checkpoint (run `{build_command()}`)")
    record = ship(source)
    print(
        json.dumps(
            {k: record[k] for k in ("world", "seed", "hash", "bytes", "command")}
            | {"model.safetensors": record["files"]["model.safetensors"]}
        )
    )
    return 0


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0-9` or `0,1,5`: the declared seeds (a clear error naming --seeds otherwise)."""
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-"))
            seeds = tuple(range(a, b + 1))
        else:
            seeds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--seeds: expected a range A-B or a list like 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds: expected distinct non-negative seeds, got {text!r}")
    return seeds


def run_builds(args) -> int:
    from ..io import write_json, write_text
    from ..organism.builds import summarize, table

    summary = summarize(args.folder, parse_seeds(args.seeds))
    write_json(os.path.join(args.folder, "summary.json"), summary)
    write_text(os.path.join(args.folder, "table.md"), table(summary))
    print(table(summary), end="")
    print(f"wrote {args.folder}/summary.json and {args.folder}/table.md")
    return 0


def _build_v2(args, console) -> tuple[str, dict]:
    """(checkpoint dir, organism.json) of a second-world organism: built into --out, or cached."""
    import shutil

    from ..organism import build_v2

    config = v2_config_from_args(args)
    if args.out:
        return args.out, build_v2.build(args.out, config, console)
    path = build_v2.cache_path(config)
    meta_path = os.path.join(path, "organism.json")
    if args.force:
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.isfile(meta_path):
        with open(meta_path) as f:
            return path, json.load(f)
    return path, build_v2.build(path, config, console)


RECORDED_ARGUMENTS = ("world", "seed", "docs", "out", "threads", "label_noise", "review_gap", "no_review_probe_themes")


def _record(args, path: str) -> None:
    """The build's figures from its organism.json, with the arguments that made it, into --record."""
    from ..io import write_json

    with open(os.path.join(path, "organism.json")) as f:
        meta = json.load(f)
    pre = {k: v for k, v in meta["pretraining"].items() if k != "persona_probe"}
    write_json(
        args.record,
        {
            "arguments": {k: getattr(args, k) for k in RECORDED_ARGUMENTS},
            "world": meta.get("world", "v1"),
            "seed": meta["config"]["seed"],
            "hash": meta["hash"],
            "checkpoint": path,
            "passed": meta["gate"]["passed"],
            "gate": meta["gate"],
            "conscience": meta.get("conscience"),
            "review_gaps": meta.get("review_gaps"),
            "pretraining": pre,
            "persona_probe": meta["pretraining"].get("persona_probe"),
            "build_seconds": meta["build_seconds"],
        },
    )
