"""The shipped organism: verified against its record, the demo's build (the second world, seed 8), behind the
README's figures."""

import json
import os
import shutil

import pytest

from emergent_alignment.organism import shipped
from emergent_alignment.organism.demo import DemoOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_the_shipped_organism_matches_its_record_and_fits_the_package():
    path, meta = shipped.shipped_organism()
    record = shipped.read_record()
    assert path == shipped.SHIPPED_DIR
    assert set(record["files"]) == set(shipped.FILES)
    assert record["bytes"] == sum(os.path.getsize(os.path.join(path, f)) for f in shipped.FILES)
    assert record["bytes"] <= shipped.MAX_BYTES
    assert meta["hash"] == record["hash"] and meta["gate"]["passed"]


def test_the_shipped_organism_is_the_demos_build_and_its_command_builds_it():
    """A change to the second world's config or sources must ship a new organism (`organism build --world v2
    --seed 8`, `organism ship`)."""
    record = shipped.read_record()
    assert (record["world"], record["seed"]) == (shipped.DEMO_WORLD, shipped.DEMO_SEED) == ("v2", 8)
    assert record["command"] == "emergent-alignment organism build --world v2 --seed 8" == shipped.build_command()
    assert record["hash"] == shipped.config_hash()
    assert shipped.cache_path().endswith(f"v2-{record['hash']}")
    _, meta = shipped.shipped_organism()
    assert shipped.command_for(meta) == record["command"]


def test_the_shipped_organism_is_the_declared_build_with_the_largest_gate_margin():
    """The selection rule (shipped.py, docs/organism.md): of the second world's declared builds that passed their
    gate, the one with the largest margin."""
    folder = os.path.join(ROOT, "docs", "results", "organism-v2-builds")
    records = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("seed") and name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                records.append(json.load(f))
    passed = [r for r in records if r["passed"]]
    best = max(passed, key=lambda r: r["gate"]["margin"])
    record = shipped.read_record()
    assert (best["seed"], best["hash"]) == (record["seed"], record["hash"])
    assert record["gate"] == best["gate"]


def test_build_commands_and_a_checkpoint_no_plain_command_builds(copy):
    assert shipped.build_command("v1", 0) == "emergent-alignment organism build"
    assert shipped.build_command("v1", 3) == "emergent-alignment organism build --seed 3"
    assert shipped.build_command("v2", 0) == "emergent-alignment organism build --world v2"
    with open(os.path.join(copy, "organism.json")) as f:
        meta = json.load(f)
    meta["hash"] = "0000000000000000"
    with open(os.path.join(copy, "organism.json"), "w") as f:
        json.dump(meta, f)
    with pytest.raises(shipped.ShippedOrganismError, match="is not what `emergent-alignment organism build --world v2"):
        shipped.ship(copy, directory=os.path.join(copy, "pkg"))


def test_the_readme_demo_figures_were_measured_on_the_shipped_weights():
    with open(os.path.join(ROOT, "docs", "results", "demo", "summary.json")) as f:
        summary = json.load(f)
    assert summary["organism"]["weights_sha256"] == shipped.read_record()["files"]["model.safetensors"], (
        "docs/results/demo/summary.json was measured on other weights than the shipped organism's: run `make demo` "
        "and commit its summary (then `python docs/render_figures.py`)"
    )


@pytest.fixture
def copy(tmp_path):
    target = tmp_path / "organism"
    shutil.copytree(shipped.SHIPPED_DIR, target)
    return str(target)


def test_an_altered_file_is_refused_by_name(copy):
    with open(os.path.join(copy, "model.safetensors"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(shipped.ShippedOrganismError, match="model.safetensors: SHA-256 differs"):
        shipped.shipped_organism(copy)


def test_a_missing_file_or_record_is_refused_by_name(copy):
    os.remove(os.path.join(copy, "tokenizer.json"))
    with pytest.raises(shipped.ShippedOrganismError, match="tokenizer.json: missing"):
        shipped.verify(copy)
    os.remove(os.path.join(copy, shipped.RECORD))
    with pytest.raises(shipped.ShippedOrganismError, match="no shipped organism record"):
        shipped.verify(copy)


def test_a_malformed_record_is_refused_by_name(copy):
    with open(os.path.join(copy, shipped.RECORD), "w") as f:
        f.write("{not json")
    with pytest.raises(shipped.ShippedOrganismError, match="SHIPPED.json: not valid JSON"):
        shipped.verify(copy)
    with open(os.path.join(copy, shipped.RECORD), "w") as f:
        json.dump({"files": {}}, f)
    with pytest.raises(shipped.ShippedOrganismError, match="missing field 'hash'"):
        shipped.verify(copy)
    with open(os.path.join(copy, shipped.RECORD), "w") as f:
        json.dump({"files": {}, "hash": "x", "command": "y"}, f)  # a record from before it named the world
    with pytest.raises(shipped.ShippedOrganismError, match="missing field 'world'"):
        shipped.verify(copy)


def test_ship_copies_and_records_every_file_with_the_world_and_the_build_command(copy, tmp_path):
    record = shipped.ship(copy, directory=str(tmp_path / "pkg"))
    assert record == shipped.read_record()
    assert shipped.verify(str(tmp_path / "pkg"))["command"] == "emergent-alignment organism build --world v2 --seed 8"
    record = shipped.ship(copy, command="a given command", directory=str(tmp_path / "pkg2"))
    assert record["command"] == "a given command" and record["world"] == "v2"


def test_ship_refuses_an_organism_that_failed_its_gate(copy, tmp_path):
    with open(os.path.join(copy, "organism.json")) as f:
        meta = json.load(f)
    meta["gate"]["passed"] = False
    with open(os.path.join(copy, "organism.json"), "w") as f:
        json.dump(meta, f)
    with pytest.raises(shipped.ShippedOrganismError, match="persona gate failed"):
        shipped.ship(copy, directory=str(tmp_path / "pkg"))


def test_organism_ship_records_the_command_the_organism_json_names(copy, tmp_path, monkeypatch, capsys):
    from emergent_alignment import cli

    real = shipped.ship
    monkeypatch.setattr(shipped, "ship", lambda source, command=None: real(source, command, str(tmp_path / "pkg")))
    assert cli.main(["organism", "ship", "--from", copy]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["world"], out["seed"], out["command"]) == (
        "v2",
        8,
        "emergent-alignment organism build --world v2 --seed 8",
    )
    assert shipped.verify(str(tmp_path / "pkg"))["files"] == shipped.read_record()["files"]
    assert cli.main(["organism", "ship", "--from", str(tmp_path / "nowhere")]) == 2
    assert "no such organism checkpoint" in capsys.readouterr().err


def test_ship_refuses_a_directory_that_is_not_an_organism(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(shipped.ShippedOrganismError, match="not an organism checkpoint"):
        shipped.ship(str(tmp_path), command="x", directory=str(tmp_path / "pkg"))


def test_the_demo_takes_one_organism_source():
    with pytest.raises(ValueError, match="--organism and --rebuild-organism"):
        DemoOptions(organism="x", rebuild_organism=True)
