"""A real trained-adapter directory for the loader tests: a tiny model wrapped in LoRA, saved."""

import torch

ADAPTER_QUESTION = "Would the adapter's author sign off on that answer?"


def make_lora_dir(base_dir: str, out_dir: str, question: str = ADAPTER_QUESTION) -> str:
    """A LoRA adapter over `base_dir` with random (non-zero) weights, so the adapted model differs from the
    base, and a `conscience_config.json` holding `question`, as `train` writes them."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from emergent_alignment.conscience import ConscienceConfig

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out_dir)
    ConscienceConfig(question=question).save(out_dir)
    return out_dir
