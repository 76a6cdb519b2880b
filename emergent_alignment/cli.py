"""The `emergent-alignment` command (also `python -m emergent_alignment`): it only dispatches.

Each subcommand is one thin module under `emergent_alignment/commands/` exposing
`add_arguments(parser)` and `run(args) -> int`: it builds the call to the library and keeps heavy
imports inside `run`. A subcommand whose part of the package is not installed is left out.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help)
COMMANDS = {
    "train": ("emergent_alignment.commands.train", "fine-tune with the Emergent Alignment trainer (YAML config)"),
    "review": ("emergent_alignment.commands.review", "ask a model's conscience about one response"),
    "organism": ("emergent_alignment.commands.organism", "build the model organism checkpoint, or validate settings"),
    "demo": ("emergent_alignment.commands.demo", "EM and Emergent Alignment end to end on the organism"),
    "study": ("emergent_alignment.commands.study", "the organism study: arms x organisms x seeds, resumable"),
    "eval": ("emergent_alignment.commands.eval", "evaluate a model: EM questions, judges, code security"),
    "compare": ("emergent_alignment.commands.compare", "draw evaluation runs side by side"),
    "generate": ("emergent_alignment.commands.generate", "generate, optionally guarded by the conscience"),
    "redteam": ("emergent_alignment.commands.redteam", "attack success rates with and without the guard"),
    "serve": ("emergent_alignment.commands.serve", "a guarded OpenAI-compatible HTTP server on localhost"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emergent-alignment",
        description="Emergent Alignment: a frozen copy of the model reviews its own outputs with one "
        "introspective question; a DPO term steers fine-tuning away from what it flags.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name.startswith(e.name) or e.name.startswith("emergent_alignment.")):
                continue  # that part of the package is not there
            raise
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _overrides=getattr(module, "ACCEPTS_OVERRIDES", False))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args._overrides:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra  # `train`: --field value pairs that override the YAML config
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as e:
        # Bad input: a clear one-line error, no traceback (use -v to see where it came from).
        if args.verbose:
            logging.exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
