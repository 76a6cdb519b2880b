"""The organism study: every arm x every declared organism x every seed, resumable, in parts; pre-registration.

    emergent-alignment study --out DIR [--world v2] [--organism-seeds 0,...,9] [--seeds 0,1,2] [--arms ...]
                             [--part K/N] [--only-organisms S,...] [--split validation|test] [--beta B]
    emergent-alignment study register [--out docs/results/study] [--organism-seeds ...] [--arms ...]
    emergent-alignment study --out ROOT/noise-R --label-noise R --only-organisms S --arms insecure,insecure_conscience
    emergent-alignment study dose-response --out ROOT    # every ROOT/noise-*/ level -> ROOT/dose_response.json

See `organism/study.py` and docs/organism.md, "The study".
"""

from __future__ import annotations

import json

from ..organism.study import (
    DEFAULT_ARMS,
    DEFAULT_ORGANISM_SEEDS,
    DEFAULT_SEEDS,
    REGISTER_DIR,
    SPLITS,
    STUDY_BETA,
    WORLDS,
)


def add_arguments(p):
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "register", "dose-response"),
        default="run",
        help="run (default): the study; register: write the test split's hash and the declared organisms and arms; "
        "dose-response: summarize the label-noise levels under --out (ROOT/noise-R/, each a study run with "
        "--label-noise R)",
    )
    p.add_argument("--out", help=f"the study's directory (register: default {REGISTER_DIR})")
    p.add_argument("--world", choices=WORLDS, default="v2", help="the organisms' world (default v2)")
    p.add_argument(
        "--organism-seeds",
        default=",".join(map(str, DEFAULT_ORGANISM_SEEDS)),
        help="the DECLARED organism seeds: every one is built; those failing the persona gate are reported, not used",
    )
    p.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="fine-tuning seeds per arm and organism")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), help="comma-separated arms (default: every arm)")
    p.add_argument("--part", help="K/N: run only the K-th of N deterministic slices of (organism, seed) groups")
    p.add_argument(
        "--only-organisms",
        help="run only these of the declared organism seeds now (the others in later invocations; "
        "study.json waits for all)",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="validation",
        help="validation (default) or test: test needs the committed registration and logs the look",
    )
    p.add_argument(
        "--register-dir", default=REGISTER_DIR, help=f"where the committed registration is (default {REGISTER_DIR})"
    )
    p.add_argument("--samples-per-question", type=int, default=32, help="free-form samples per held-out question")
    p.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at a time, each in its own process")
    p.add_argument("--threads", type=int, default=0, help="torch threads in all (0: every CPU)")
    p.add_argument(
        "--beta", type=float, default=STUDY_BETA, help=f"the conscience term's IPO beta (default {STUDY_BETA})"
    )
    p.add_argument(
        "--label-noise",
        type=float,
        help="build the organisms with this share of review verdicts flipped in their corpus instead of the declared "
        "builds' (the dose-response; named apart, e.g. v2-seed8-noise0.2)",
    )


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(a for a in (x.strip() for x in text.split(",")) if a)


def run(args) -> int:
    from ..organism import study

    organism_seeds = _ints(args.organism_seeds, "--organism-seeds")
    arms = _names(args.arms)
    if args.action == "register":
        record = study.register(args.out or REGISTER_DIR, organism_seeds, arms)
        print(json.dumps({k: record[k] for k in ("test_split_sha256", "organism_seeds", "arms")}))
        return 0
    if not args.out:
        raise ValueError("--out: give the study's directory (e.g. --out runs/study)")
    if args.action == "dose-response":
        from ..organism import dose_response

        summary = dose_response.summarize(args.out)
        print(dose_response.table(summary), end="")
        print(f"wrote {args.out}/{dose_response.RESULT} and {args.out}/table.md")
        return 0
    options = study.StudyOptions(
        out=args.out,
        world=args.world,
        organism_seeds=organism_seeds,
        seeds=_ints(args.seeds, "--seeds"),
        arms=arms,
        part=args.part,
        only_organisms=_ints(args.only_organisms, "--only-organisms") if args.only_organisms else None,
        split=args.split,
        register_dir=args.register_dir,
        samples_per_question=args.samples_per_question,
        jobs=args.jobs,
        threads=args.threads,
        beta=args.beta,
        label_noise=args.label_noise,
    )
    outcome = study.run_study(options)
    print(json.dumps({k: outcome[k] for k in ("ran", "done", "total")}))
    return 0
