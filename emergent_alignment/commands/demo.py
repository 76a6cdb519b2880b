"""Emergent Misalignment and Emergent Alignment end to end on the model organism (what `make demo` runs).

    emergent-alignment demo [--seeds 1] [--out runs/demo] [--organism DIR | --rebuild-organism] [--world v1|v2]

Writes summary.json, PNG plots and report.html to --out; see `organism/demo.py` and docs/organism.md.
"""

from __future__ import annotations

from ..organism.arms import ALL_ARMS
from ..organism.demo import (
    CONDITIONAL_SAMPLES,
    DEFAULT_ARMS,
    DEFAULT_JOBS,
    DEFAULT_SAMPLES,
    DEFAULT_SEEDS,
    FIRST_WORLD_ATTACK_ARMS,
)
from ..organism.worlds import WORLDS


def add_arguments(p):
    from ..organism.study import STUDY_BETA

    p.add_argument("--out", default="runs/demo", help="output directory (summary.json, plots, report.html)")
    p.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"fine-tuning seeds per arm (default {DEFAULT_SEEDS}: what fits the 10-minute budget on 2 cores)",
    )
    p.add_argument(
        "--arms",
        default=",".join(DEFAULT_ARMS),
        help=f"comma-separated arms (default: {', '.join(DEFAULT_ARMS)}; the others: "
        f"{', '.join(a for a in ALL_ARMS if a not in DEFAULT_ARMS)})",
    )
    p.add_argument(
        "--organism",
        help="an organism checkpoint dir (default: the shipped one, the second world's seed-8 build, SHA-256 verified)",
    )
    p.add_argument(
        "--rebuild-organism",
        action="store_true",
        help="build the demo's organism afresh (`organism build --world v2 --seed 8`: about 16-18 minutes on 2 cores; "
        "cached by its config hash) instead of the shipped one; with --world v1, the first world's default organism",
    )
    p.add_argument(
        "--world",
        choices=WORLDS,
        default=None,
        help="the organism's world (default: the given organism's, else v2, the shipped one's). v2 asks the demo's "
        "own questions with the validation split's code, answers and review items; v1 asks the first world's test "
        "split and needs --organism DIR or --rebuild-organism",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fine-tuning steps per arm (default: the validated protocol, organism/arms.py)",
    )
    p.add_argument(
        "--samples-per-question",
        type=int,
        default=DEFAULT_SAMPLES,
        help="free-form samples per evaluation theme (8 themes; the demo's 4 questions per theme asked in turn)",
    )
    p.add_argument(
        "--conditional-samples-per-question",
        type=int,
        default=CONDITIONAL_SAMPLES,
        help="samples per evaluation theme asked after an insecure-code turn (conditional misalignment)",
    )
    p.add_argument(
        "--alignment-loss-type",
        choices=("sigmoid", "ipo"),
        default=None,
        help="the conscience arms' DPO loss (default: the validated setting, organism/arms.py: IPO)",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=None,
        help=f"the conscience arms' beta (default {STUDY_BETA:g}: the study's, chosen on its validation split, "
        "study.STUDY_BETA)",
    )
    p.add_argument(
        "--alignment-weight",
        type=float,
        default=None,
        help="the conscience arms' alignment weight (default: the validated one)",
    )
    p.add_argument(
        "--attack-arms",
        default="",
        help="arms whose models are also attacked (role-play, prefix, reviewer injection), with and without the "
        f"guard: first-world organisms only (e.g. {','.join(FIRST_WORLD_ATTACK_ARMS)}); default none. On the "
        "second world use `emergent-alignment redteam --organism-defences DIR`",
    )
    p.add_argument(
        "--attack-samples-per-question", type=int, default=8, help="samples per held-out question and attack wrapper"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads in all (0: torch's default)")
    p.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help="fine-tuning runs at a time, each in its own process with threads/jobs torch threads "
        f"(default {DEFAULT_JOBS}; 1 runs them one by one in this process)",
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(a for a in (x.strip() for x in text.split(",")) if a)


def run(args) -> int:
    from dataclasses import fields

    from rich.console import Console

    from ..organism.build import GateFailed
    from ..organism.demo import DemoOptions, run_demo
    from .organism import GATE_FAILED_HINT

    values = {f.name: getattr(args, f.name) for f in fields(DemoOptions)}
    options = DemoOptions(**values | {"arms": _names(args.arms), "attack_arms": _names(args.attack_arms)})
    console = Console()
    try:
        run_demo(options, console)
    except GateFailed as e:  # the organism did not learn the persona: no demo on it
        console.print(f"[red]demo stopped: the organism failed its persona gate.[/red] {e}")
        console.print(GATE_FAILED_HINT_DEMO if options.world in (None, "v2") else GATE_FAILED_HINT)
        return 1
    return 0


# What a user whose rebuild of the demo's (second-world) organism failed its gate can do next.
GATE_FAILED_HINT_DEMO = (
    "The persona is fragile to floating-point rounding (docs/organism.md, 'A caveat'): under other CPU kernels the "
    "same code and seed can build an organism without it. The shipped organism is the seed-8 build that passed: run "
    "`emergent-alignment demo` without --rebuild-organism to use it (SHA-256 verified), or `emergent-alignment demo "
    "--organism DIR` on another build (`emergent-alignment organism build --world v2 --seed N --out DIR`)."
)
