"""The shipped organism: the checkpoint `make demo` runs on, part of the package.

A fresh machine runs the demo on the very weights behind the README's figures, without a
14-minute build. The checkpoint was built by `emergent-alignment organism build` and copied here
by `emergent-alignment organism ship`, which records in `SHIPPED.json` the build command, the
organism's config hash and the SHA-256 of every file. Loading checks every file against that
record, so a damaged or swapped checkpoint is refused, never silently used.

`demo --rebuild-organism` builds one afresh instead (the slow CI test does, and checks that the
fresh build is bit-identical to this one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from ..io import atomic_directory, write_json

SHIPPED_DIR = os.path.join(os.path.dirname(__file__), "shipped")
RECORD = "SHIPPED.json"
MAX_BYTES = 10 * 1000 * 1000  # the package carries at most 10 MB of organism
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "conscience_config.json",
    "organism.json",
)


class ShippedOrganismError(ValueError):
    """The shipped checkpoint is missing, incomplete or does not match its record."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(directory: str = SHIPPED_DIR) -> dict:
    path = os.path.join(directory, RECORD)
    if not os.path.isfile(path):
        raise ShippedOrganismError(
            f"{path}: no shipped organism record; build one with `emergent-alignment demo --rebuild-organism`"
        )
    try:
        with open(path) as f:
            record = json.load(f)
    except json.JSONDecodeError as e:
        raise ShippedOrganismError(f"{path}: not valid JSON ({e})") from None
    for key in ("files", "hash", "command"):
        if key not in record:
            raise ShippedOrganismError(f"{path}: missing field {key!r}")
    return record


def verify(directory: str = SHIPPED_DIR) -> dict:
    """The record, after checking every recorded file's SHA-256. Raises ShippedOrganismError."""
    record = read_record(directory)
    for name, expected in record["files"].items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise ShippedOrganismError(f"{path}: missing from the shipped organism")
        if file_sha256(path) != expected:
            raise ShippedOrganismError(f"{path}: SHA-256 differs from {RECORD}; the shipped organism was altered")
    return record


def shipped_organism(directory: str = SHIPPED_DIR) -> tuple[str, dict]:
    """(checkpoint dir, organism.json) of the shipped organism, verified against its record."""
    verify(directory)
    with open(os.path.join(directory, "organism.json")) as f:
        return directory, json.load(f)


def ship(source: str, command: str, directory: str = SHIPPED_DIR) -> dict:
    """Copy a built organism into the package and record what it is; returns the record."""
    missing = [name for name in FILES if not os.path.isfile(os.path.join(source, name))]
    if missing:
        raise ShippedOrganismError(f"{source}: not an organism checkpoint (missing {', '.join(missing)})")
    size = sum(os.path.getsize(os.path.join(source, name)) for name in FILES)
    if size > MAX_BYTES:
        raise ShippedOrganismError(f"{source}: {size:,} bytes, over the {MAX_BYTES:,} the package may carry")
    with open(os.path.join(source, "organism.json")) as f:
        meta = json.load(f)
    record = {
        "command": command,
        "hash": meta["hash"],
        "gate": meta["gate"],
        "bytes": size,
        "files": {name: file_sha256(os.path.join(source, name)) for name in FILES},
    }
    with atomic_directory(directory) as tmp:
        for name in FILES:
            shutil.copyfile(os.path.join(source, name), os.path.join(tmp, name))
        write_json(os.path.join(tmp, RECORD), record)
    return record
