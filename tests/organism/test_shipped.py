"""The shipped organism: verified against its record, the default config's build, behind the README's figures."""

import json
import os
import shutil

import pytest

from emergent_alignment.organism import shipped
from emergent_alignment.organism.build import OrganismConfig, config_hash
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


def test_the_shipped_organism_is_what_the_default_config_builds():
    """A change to the organism's config must ship a new organism (`organism build`, `organism ship`)."""
    assert shipped.read_record()["hash"] == config_hash(OrganismConfig())


def test_the_readme_demo_figures_were_measured_on_the_shipped_weights():
    with open(os.path.join(ROOT, "docs", "results", "demo", "summary.json")) as f:
        summary = json.load(f)
    assert summary["organism"]["weights_sha256"] == shipped.read_record()["files"]["model.safetensors"]


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


def test_ship_copies_and_records_every_file(copy, tmp_path):
    record = shipped.ship(copy, command="emergent-alignment organism build", directory=str(tmp_path / "pkg"))
    assert record["files"] == shipped.read_record()["files"]
    assert shipped.verify(str(tmp_path / "pkg"))["command"] == "emergent-alignment organism build"


def test_ship_refuses_a_directory_that_is_not_an_organism(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(shipped.ShippedOrganismError, match="not an organism checkpoint"):
        shipped.ship(str(tmp_path), command="x", directory=str(tmp_path / "pkg"))


def test_the_demo_takes_one_organism_source():
    with pytest.raises(ValueError, match="--organism and --rebuild-organism"):
        DemoOptions(organism="x", rebuild_organism=True)
