"""Emergent Misalignment and Emergent Alignment end to end on the model organism (what `make demo` runs).

    emergent-alignment demo [--seeds 3] [--out runs/demo] [--organism DIR | --rebuild-organism]

Writes summary.json, PNG plots and report.html to --out; see `organism/demo.py` and docs/organism.md.
"""

from __future__ import annotations

from ..organism.arms import ALL_ARMS
from ..organism.demo import ATTACK_ARMS, CONDITIONAL_SAMPLES, DEFAULT_ARMS, DEFAULT_JOBS


def add_arguments(p):
    p.add_argument("--out", default="runs/demo", help="output directory (summary.json, plots, report.html)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per arm (1 for a quick look)")
    p.add_argument(
        "--arms",
        default=",".join(DEFAULT_ARMS),
        help=f"comma-separated arms (default: {', '.join(DEFAULT_ARMS)}; the controls and rivals: "
        f"{', '.join(a for a in ALL_ARMS if a not in DEFAULT_ARMS)})",
    )
    p.add_argument("--organism", help="an organism checkpoint dir (default: the shipped one, SHA-256 verified)")
    p.add_argument(
        "--rebuild-organism",
        action="store_true",
        help="build the organism afresh (about 13 minutes on 2 cores; cached by its config hash) instead of the "
        "shipped one",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fine-tuning steps per arm (default: the validated protocol, organism/arms.py)",
    )
    p.add_argument(
        "--samples-per-question", type=int, default=32, help="free-form samples per held-out question (8 questions)"
    )
    p.add_argument(
        "--conditional-samples-per-question",
        type=int,
        default=CONDITIONAL_SAMPLES,
        help="samples per held-out question asked after an insecure-code turn (conditional misalignment)",
    )
    p.add_argument(
        "--alignment-loss-type",
        choices=("sigmoid", "ipo"),
        default=None,
        help="the conscience arms' DPO loss (default: the validated setting, organism/arms.py)",
    )
    p.add_argument("--beta", type=float, default=None, help="the conscience arms' beta (default: the validated one)")
    p.add_argument(
        "--alignment-weight",
        type=float,
        default=None,
        help="the conscience arms' alignment weight (default: the validated one)",
    )
    p.add_argument(
        "--attack-arms",
        default=",".join(ATTACK_ARMS),
        help="arms whose models are also attacked (role-play, prefix, reviewer injection), with and "
        "without the guard; empty: none",
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
        console.print(GATE_FAILED_HINT)
        return 1
    return 0
