import pytest

from emergent_alignment.tiny import build_tiny, parse_spec


def test_spec_parsing_and_errors():
    assert parse_spec("tiny:gpt2?hidden=32&template=none") == (
        "gpt2",
        {"hidden": 32, "layers": 2, "heads": 4, "vocab": 512, "template": "none", "seed": 0},
    )
    for bad, match in [
        ("tiny:mamba", "unknown architecture"),
        ("tiny:llama?width=3", "unknown option"),
        ("llama", "not a tiny model spec"),
        ("tiny:llama?template=x", "template"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_spec(bad)


def test_tiny_models_load_with_from_pretrained_and_round_trip_text(llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama_dir)
    AutoModelForCausalLM.from_pretrained(llama_dir)
    text = "def f(x):\n    return x  # ünïcode\t<tab>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert build_tiny("tiny:llama") == llama_dir  # cached
