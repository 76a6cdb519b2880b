import pytest

from emergent_alignment.models import load_conscience, resolve_model_path


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
