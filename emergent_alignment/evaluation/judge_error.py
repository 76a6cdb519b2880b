"""The error every judge raises when it cannot answer (shared by `judges` and the judge modules)."""

from __future__ import annotations


class JudgeError(ValueError):
    """A judge that cannot answer (a ValueError, so the CLI prints it as one clear line)."""
