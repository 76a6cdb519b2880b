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
