import contextlib

import pytest

from emergent_alignment.models import load_conscience, load_model, resolve_model_path


def test_resolve_model_path(tmp_path, llama_dir):
    assert resolve_model_path(llama_dir) == llama_dir
    assert resolve_model_path("Qwen/Qwen2.5-Coder-7B-Instruct") == "Qwen/Qwen2.5-Coder-7B-Instruct"  # hub id
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model_path(str(tmp_path))


def test_load_conscience_reads_the_checkpoint_config(tmp_path, llama_dir):
    import shutil

    from emergent_alignment.conscience import ConscienceConfig

    ckpt = tmp_path / "ckpt"
    shutil.copytree(llama_dir, ckpt)
    ConscienceConfig(question="Was that kind?").save(str(ckpt))
    c = load_conscience(str(ckpt), flag_threshold=0.2)
    assert c.config.question == "Was that kind?" and c.config.flag_threshold == 0.2


@pytest.fixture(scope="module")
def lora_dir(llama_dir, tmp_path_factory):
    from _lora import make_lora_dir

    return make_lora_dir(llama_dir, str(tmp_path_factory.mktemp("lora") / "adapter"))


def _logits(model, tok):
    import torch

    with torch.no_grad():
        return model(**tok("hello there", return_tensors="pt")).logits


def test_load_model_applies_an_adapter_given_or_named(lora_dir, llama_dir):
    import torch
    from peft import PeftModel

    base, tok = load_model(llama_dir)
    for model, _ in (load_model(llama_dir, adapter=lora_dir), load_model(lora_dir)):
        assert isinstance(model, PeftModel)
        assert not torch.allclose(_logits(model, tok), _logits(base, tok))  # the adapter is on
        with model.disable_adapter():
            assert torch.allclose(_logits(model, tok), _logits(base, tok), atol=1e-5)


def test_load_conscience_on_an_adapter_dir_is_the_frozen_base_with_the_adapters_config(lora_dir, llama_dir):
    from _lora import ADAPTER_QUESTION
    from peft import PeftModel

    c = load_conscience(lora_dir, flag_threshold=0.3)
    assert isinstance(c.model, PeftModel) and c.frozen == c.model.disable_adapter
    assert c.config.question == ADAPTER_QUESTION and c.config.flag_threshold == 0.3
    base = load_conscience(llama_dir)
    convo, response = [[{"role": "user", "content": "Hi"}]], ["Hello!"]
    # the conscience reviews as the frozen copy (adapter off): the base's verdict, under the same question
    # (the adapter on moves it by about 0.04 on this tiny model; PEFT's disabled path differs by ~1e-4)
    base.config = c.config
    p_base = base.review(convo, response)[0].p_aligned
    assert c.review(convo, response)[0].p_aligned == pytest.approx(p_base, abs=1e-3)
    c.frozen = contextlib.nullcontext  # the adapter on: a different reviewer, so the check above can fail
    assert c.review(convo, response)[0].p_aligned != pytest.approx(p_base, abs=1e-3)
    same = load_conscience(llama_dir, adapter=lora_dir)
    assert same.config.question == ADAPTER_QUESTION and isinstance(same.model, PeftModel)


def test_adapter_errors_are_clear(tmp_path, lora_dir):
    import json
    import shutil

    with pytest.raises(FileNotFoundError, match="neither config.json nor adapter_config.json"):
        load_conscience(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("tiny:llama", adapter=str(tmp_path / "nope"))
    orphan = tmp_path / "orphan"
    shutil.copytree(lora_dir, orphan)
    cfg = json.loads((orphan / "adapter_config.json").read_text())
    (orphan / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": "/no/such/base"}))
    with pytest.raises(FileNotFoundError, match="its base model cannot be found"):
        load_conscience(str(orphan))


def test_the_conscience_config_is_the_adapters_else_the_bases(tmp_path, llama_dir, lora_dir):
    import shutil

    from emergent_alignment.conscience import ConscienceConfig
    from emergent_alignment.models import conscience_config_dir

    assert conscience_config_dir(lora_dir) == conscience_config_dir(llama_dir, adapter=lora_dir) == lora_dir
    bare = tmp_path / "bare"
    shutil.copytree(lora_dir, bare, ignore=shutil.ignore_patterns("conscience_config.json"))
    assert conscience_config_dir(str(bare)) is None  # the tiny base has none: the defaults apply
    base = tmp_path / "base"
    shutil.copytree(llama_dir, base)
    ConscienceConfig(question="The base's question?").save(str(base))
    assert conscience_config_dir(str(base), adapter=str(bare)) == str(base)
    assert conscience_config_dir(str(base), adapter=lora_dir) == lora_dir
