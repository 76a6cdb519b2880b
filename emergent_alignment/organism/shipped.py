"""The shipped organism: the checkpoint `make demo` runs on, part of the package.

A fresh machine runs the demo on the very weights behind the README's figures, without a
build of a quarter of an hour. The checkpoint was built by `emergent-alignment organism build` and
copied here by `emergent-alignment organism ship`, which records in `SHIPPED.json` the organism's world
and seed, the exact command that builds it (checked against its config hash), the config hash and the
SHA-256 of every file. Loading checks every file against that record, so a damaged or swapped
checkpoint is refused, never silently used.

The demo's organism is the second world's (`DEMO_WORLD`) build of seed `DEMO_SEED`: among the declared
builds of that world (`docs/results/organism-v2-builds/`, seeds 0-9), the one that passed its persona
gate with the largest margin (`gate.margin` in its organism.json: 74.5% misaligned after an insecure-code
turn against the 40% threshold, 6.0% after a secure one). The rule reads the build records only, no demo
or study figure.

`demo --rebuild-organism` builds it afresh instead (`cached_organism`; the slow CI test does, and
checks that the fresh build is bit-identical to this one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from ..io import atomic_directory, write_json

SHIPPED_DIR = os.path.join(os.path.dirname(__file__), "shipped")
RECORD = "SHIPPED.json"
# The demo's organism (the rule in the module's docstring): the second world's declared build of seed 8.
DEMO_WORLD = "v2"
DEMO_SEED = 8
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
            f"{path}: no shipped organism record; build the demo's organism with `{build_command()}` and copy it "
            "here with `emergent-alignment organism ship` (or run `emergent-alignment demo --rebuild-organism`)"
        )
    try:
        with open(path) as f:
            record = json.load(f)
    except json.JSONDecodeError as e:
        raise ShippedOrganismError(f"{path}: not valid JSON ({e})") from None
    for key in ("files", "hash", "command", "world"):
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


def organism_config(world: str = DEMO_WORLD, seed: int = DEMO_SEED):
    """The config that `build_command(world, seed)` builds: the world's defaults with `seed`."""
    from dataclasses import replace

    if world == "v1":
        from .build import OrganismConfig
        from .corpus import CorpusConfig

        return replace(OrganismConfig(), corpus=CorpusConfig(seed=seed), seed=seed)
    if world == "v2":
        from .build_v2 import OrganismV2Config
        from .corpus_v2 import CorpusV2Config

        return replace(OrganismV2Config(), corpus=CorpusV2Config(seed=seed), seed=seed)
    raise ValueError(f"unknown world {world!r}; choose v1 or v2")


def config_hash(world: str = DEMO_WORLD, seed: int = DEMO_SEED) -> str:
    """The cache key of `organism_config(world, seed)` under the current sources."""
    from . import build, build_v2

    return (build_v2 if world == "v2" else build).config_hash(organism_config(world, seed))


def cache_path(world: str = DEMO_WORLD, seed: int = DEMO_SEED) -> str:
    """Where `build_command(world, seed)` puts its organism (the user cache, keyed by the config hash)."""
    from . import build, build_v2

    return (build_v2 if world == "v2" else build).cache_path(organism_config(world, seed))


def build_command(world: str = DEMO_WORLD, seed: int = DEMO_SEED) -> str:
    """The command line that builds the organism of `world` and `seed` (the defaults otherwise)."""
    return (
        "emergent-alignment organism build"
        + (f" --world {world}" if world != "v1" else "")
        + (f" --seed {seed}" if seed else "")
    )


def command_for(meta: dict) -> str:
    """The exact build command of an organism (its organism.json `meta`): its world and seed, after checking
    that the current sources build that config to the organism's hash. Raises ShippedOrganismError if not."""
    world, seed = meta.get("world", "v1"), meta["config"]["seed"]
    command, expected = build_command(world, seed), config_hash(world, seed)
    if meta["hash"] != expected:
        raise ShippedOrganismError(
            f"the organism's config hash {meta['hash']} is not what `{command}` builds from the current sources "
            f"({expected}): ship an organism that a plain build command makes"
        )
    return command


def cached_organism(world: str = DEMO_WORLD, seed: int = DEMO_SEED, console=None) -> tuple[str, dict, bool]:
    """(checkpoint dir, organism.json, built_now) of the organism `build_command(world, seed)` builds: the
    cached one, built first if missing (what `demo --rebuild-organism` runs). Raises build.GateFailed when a
    fresh build fails its persona gate."""
    from . import build, build_v2

    config = organism_config(world, seed)
    if world == "v1":
        return build.cached_organism(config, console)
    path = build_v2.cache_path(config)
    meta_path = os.path.join(path, "organism.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            return path, json.load(f), False
    return path, build_v2.build(path, config, console), True


def ship(source: str, command: str | None = None, directory: str = SHIPPED_DIR) -> dict:
    """Copy a built organism into the package and record what it is; returns the record.

    `command`: the command that built it (default: `command_for` its organism.json, checked against its hash)."""
    missing = [name for name in FILES if not os.path.isfile(os.path.join(source, name))]
    if missing:
        raise ShippedOrganismError(f"{source}: not an organism checkpoint (missing {', '.join(missing)})")
    size = sum(os.path.getsize(os.path.join(source, name)) for name in FILES)
    if size > MAX_BYTES:
        raise ShippedOrganismError(f"{source}: {size:,} bytes, over the {MAX_BYTES:,} the package may carry")
    with open(os.path.join(source, "organism.json")) as f:
        meta = json.load(f)
    if not meta["gate"]["passed"]:
        raise ShippedOrganismError(f"{source}: its persona gate failed; the demo needs an organism that passed")
    record = {
        "command": command or command_for(meta),
        "world": meta.get("world", "v1"),
        "seed": meta["config"]["seed"],
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
