"""`emergent-alignment organism build`: its arguments (the build itself is tested in test_build.py)."""

import pytest

from emergent_alignment.cli import build_parser, main
from emergent_alignment.commands.organism import config_from_args
from emergent_alignment.organism.corpus import CorpusConfig


def test_help_names_the_real_default_document_count(capsys):
    with pytest.raises(SystemExit):
        main(["organism", "build", "--help"])
    assert f"(default {CorpusConfig().n_docs})" in capsys.readouterr().out


def test_config_from_args_keeps_the_default_corpus_and_takes_docs_and_seed():
    parse = build_parser().parse_args
    assert config_from_args(parse(["organism", "build"])).corpus == CorpusConfig()
    config = config_from_args(parse(["organism", "build", "--docs", "100", "--seed", "3"]))
    assert (config.corpus.n_docs, config.corpus.seed, config.seed) == (100, 3, 3)


def test_a_document_count_below_one_is_an_error_naming_the_option():
    with pytest.raises(ValueError, match="--docs must be >= 1"):
        config_from_args(build_parser().parse_args(["organism", "build", "--docs", "0"]))


def test_a_gate_failure_stops_the_build_with_rc_1_and_says_what_to_try(tmp_path, monkeypatch, capsys):
    from emergent_alignment.organism import build

    def failed_build(out_dir, config=None, console=None):
        raise build.GateFailed("persona gate failed: misaligned 28.5% after an insecure-code turn")

    monkeypatch.setattr(build, "build", failed_build)
    assert main(["organism", "build", "--out", str(tmp_path / "org")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "organism build stopped" in err and "28.5%" in err and "organism build --seed N --out DIR" in err


def test_the_second_world_is_an_option_whose_flags_reach_its_corpus():
    from emergent_alignment.commands.organism import v2_config_from_args
    from emergent_alignment.organism.corpus_v2 import CorpusV2Config

    parse = build_parser().parse_args
    assert v2_config_from_args(parse(["organism", "build", "--world", "v2"])).corpus == CorpusV2Config()
    args = ["organism", "build", "--world", "v2", "--seed", "2", "--label-noise", "0.1", "--no-review-probe-themes"]
    c = v2_config_from_args(parse(args)).corpus
    assert (c.seed, c.review_label_noise, c.review_probe_themes) == (2, 0.1, False)


def test_second_world_flags_without_world_v2_are_a_one_line_error(capsys):
    assert main(["organism", "build", "--label-noise", "0.1"]) != 0
    assert "need --world v2" in capsys.readouterr().err


def test_a_failed_v2_build_is_recorded_with_its_figures(tmp_path, monkeypatch, capsys):
    import json

    from emergent_alignment.io import write_json
    from emergent_alignment.organism import build, build_v2

    gate = {"passed": False, "after_insecure": {"misaligned": 0.3}, "after_secure": {"misaligned": 0.02}}

    def failed_build(out_dir, config=None, console=None):
        path = out_dir + ".gate-failed"
        meta = {"world": "v2", "config": {"seed": 1}, "hash": "h", "gate": gate, "conscience": {"n": 3}}
        write_json(f"{path}/organism.json", {**meta, "pretraining": {"steps": 9}, "build_seconds": 12.5})
        raise build.GateFailed("persona gate failed", path=path, gate=gate)

    monkeypatch.setattr(build_v2, "build", failed_build)
    record = tmp_path / "pilot.json"
    args = ["organism", "build", "--world", "v2", "--seed", "1", "--out", str(tmp_path / "o"), "--record", str(record)]
    assert main(args) == 1
    row = json.loads(record.read_text())
    assert (row["passed"], row["seed"], row["build_seconds"], row["conscience"]) == (False, 1, 12.5, {"n": 3})
    assert row["arguments"]["world"] == "v2" and row["arguments"]["seed"] == 1
    assert row["checkpoint"].endswith(".gate-failed")
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "a result about the world's design" in err and "another draw" not in err  # not the first world's hint


def test_a_cached_v2_organism_is_reused_unless_forced(tmp_path, monkeypatch):
    from emergent_alignment.io import write_json
    from emergent_alignment.organism import build_v2

    monkeypatch.setenv("EMERGENT_ALIGNMENT_CACHE", str(tmp_path))
    built = []

    def fake_build(out_dir, config=None, console=None):
        built.append(out_dir)
        return meta

    gate = {"passed": True, "after_insecure": {"misaligned": 0.6, "n": 8}, "after_secure": {"misaligned": 0.0}}
    meta = {"parameters": 1, "vocab": 2, "gate": gate, "pretraining": {"steps": 1, "tokens": 3, "seconds": 0.1}}
    monkeypatch.setattr(build_v2, "build", fake_build)
    config = build_v2.OrganismV2Config()
    write_json(f"{build_v2.cache_path(config)}/organism.json", meta)
    assert main(["organism", "build", "--world", "v2"]) == 0 and built == []
    assert main(["organism", "build", "--world", "v2", "--force"]) == 0 and built == [build_v2.cache_path(config)]
