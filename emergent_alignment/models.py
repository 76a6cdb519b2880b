"""Loading a model and tokenizer by path, hub id or tiny spec: one `from_pretrained` path for all."""

from __future__ import annotations

import os

from .chat import ensure_chat_template, ensure_pad_token
from .tiny import build_tiny, is_tiny_spec


def resolve_model_path(name: str) -> str:
    """A tiny spec is built locally (cached); a path must exist; anything else is a hub id."""
    if is_tiny_spec(name):
        return build_tiny(name)
    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    if looks_local or os.path.exists(name):
        path = os.path.expanduser(name)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"model path {name!r} does not exist")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"model path {name!r} has no config.json: not a Hugging Face checkpoint")
        return path
    return name  # a hub id, e.g. Qwen/Qwen2.5-Coder-7B-Instruct


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name), trust_remote_code=trust_remote_code)
    ensure_chat_template(tok)
    ensure_pad_token(tok)
    return tok


def load_model(name: str, dtype: str | None = None, trust_remote_code: bool = False, device: str | None = None):
    """A causal LM and its tokenizer (safetensors only; remote code only when asked for)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    torch_dtype = getattr(torch, dtype) if dtype not in (None, "auto") else dtype
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    if device:
        model.to(device)
    return model, load_tokenizer(name, trust_remote_code)


def load_conscience(name: str, adapter: str | None = None, dtype: str | None = None, **overrides):
    """A `Conscience` over a checkpoint (its `conscience_config.json` applies, then `overrides`)."""
    from .conscience import Conscience, ConscienceConfig

    model, tok = load_model(name, dtype)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    local = resolve_model_path(name)
    config = ConscienceConfig.from_pretrained(local if os.path.isdir(local) else None, **overrides)
    return Conscience(model, tok, config)
