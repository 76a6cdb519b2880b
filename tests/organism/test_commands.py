"""`emergent-alignment organism build`: its arguments (the build itself is tested in test_build.py)."""

import pytest

from emergent_alignment.cli import build_parser, main
from emergent_alignment.organism.commands import config_from_args
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
