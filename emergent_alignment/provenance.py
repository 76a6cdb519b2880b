"""Where a result came from: the command, the commit, the machine and the library versions.

Every result file the README and docs draw their figures from carries this record, so a figure can
be traced to the run that produced it and re-made.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys


def git_state(path: str | None = None) -> dict:
    """The checkout's commit and whether it had uncommitted changes (empty outside a git checkout)."""
    where = path or os.path.dirname(os.path.abspath(__file__))
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", where, *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def provenance(argv: list[str] | None = None) -> dict:
    import torch
    import transformers
    import trl

    return {
        "command": " ".join(argv if argv is not None else sys.argv),
        "git": git_state(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    }
