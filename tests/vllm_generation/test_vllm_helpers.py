"""The vLLM backend's pure parts: these run without vLLM installed."""

import json

import pytest

from emergent_alignment.generation import SamplingConfig
from emergent_alignment.vllm_generation import (
    VLLMSettings,
    adapter_dir_rank,
    adapter_rank,
    cut_at_stop,
    lora_slot_rank,
    vllm_available,
)

NO_VLLM = "vLLM is not installed here (`make vllm-env` builds an environment with it; `make test-vllm` runs these)"


def test_cut_at_stop_keeps_the_first_stop_token():
    assert cut_at_stop([5, 6, 2, 7, 2], [2]) == [5, 6, 2]
    assert cut_at_stop([5, 6, 7], [2]) == [5, 6, 7]
    assert cut_at_stop([], [2]) == []


def test_lora_slot_rank_holds_the_adapter():
    assert lora_slot_rank(4) == 8
    assert lora_slot_rank(16) == 16
    assert lora_slot_rank(17) == 32
    assert lora_slot_rank(32) == 32  # the rank-32 adapters of the EM recipe
    with pytest.raises(ValueError, match="larger than"):
        lora_slot_rank(1024)


def test_adapter_dir_rank_reads_rank_and_rank_pattern(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8, "rank_pattern": {"q_proj": 32}}))
    assert adapter_dir_rank(str(tmp_path)) == 32
    (tmp_path / "adapter_config.json").write_text(json.dumps({"lora_alpha": 8}))
    with pytest.raises(ValueError, match="adapter_config.json: no field 'r'"):
        adapter_dir_rank(str(tmp_path))


def test_adapter_rank_of_a_peft_model(llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(llama_dir)
    assert adapter_rank(base) is None
    model = get_peft_model(base, LoraConfig(r=32, target_modules=["q_proj"]))
    assert adapter_rank(model) == 32


def test_settings_from_config_fields_and_validation():
    class Args:
        vllm_mode = "server"
        vllm_server_port = 8123
        vllm_enable_sleep_mode = True

    s = VLLMSettings.from_args(Args())
    assert (s.mode, s.server_port, s.enable_sleep_mode, s.tensor_parallel_size) == ("server", 8123, True, 1)
    with pytest.raises(ValueError, match="vllm_mode must be colocate or server"):
        VLLMSettings(mode="remote")
    with pytest.raises(ValueError, match="vllm_tensor_parallel_size"):
        VLLMSettings(tensor_parallel_size=0)


@pytest.mark.skipif(not vllm_available(), reason=NO_VLLM)
def test_sampling_params_are_plain_sampling():
    from emergent_alignment.vllm_generation import sampling_params

    p = sampling_params(SamplingConfig(12, 0.7, 0.9), seed=3, stops=[2], logprobs=True)
    assert (p.temperature, p.top_p, p.max_tokens, p.seed, p.logprobs) == (0.7, 0.9, 12, 3, 0)
    assert p.repetition_penalty == 1.0 and p.top_k in (0, -1) and p.stop_token_ids == [2]
    greedy = sampling_params(SamplingConfig(12, 0.0, 0.9), seed=3, stops=[2])
    assert greedy.temperature == 0.0 and greedy.logprobs is None
