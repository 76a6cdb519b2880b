"""Where the package keeps files: the user cache directory and the vendored data."""

from __future__ import annotations

import os
from importlib import resources


def cache_dir() -> str:
    """`$EMERGENT_ALIGNMENT_CACHE`, else `$XDG_CACHE_HOME/emergent-alignment`, else ~/.cache/..."""
    root = os.environ.get("EMERGENT_ALIGNMENT_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "emergent-alignment")
    os.makedirs(root, exist_ok=True)
    return root


def package_data(*parts: str) -> str:
    return str(resources.files("emergent_alignment").joinpath("data", *parts))
