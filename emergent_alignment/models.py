"""Loading a model and tokenizer by path, hub id, tiny spec or trained PEFT adapter: the one loader.

    model, tok = load_model("Qwen/Qwen2.5-Coder-7B-Instruct", adapter="out")   # a PeftModel
    conscience = load_conscience("out")   # an adapter dir: its base, the adapter on top, frozen = adapter off

A PEFT adapter directory (one holding `adapter_config.json`, as `train` with a peft_config writes
it) names its base in `base_model_name_or_path`; the base is loaded and the adapter applied. No
other module loads adapters.
"""

from __future__ import annotations

import json
import os

from .chat import ensure_chat_template, ensure_pad_token
from .tiny import build_tiny, is_tiny_spec

ADAPTER_CONFIG = "adapter_config.json"


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or os.path.exists(name)


def is_adapter_dir(name: str) -> bool:
    """True for a directory holding a PEFT adapter (`adapter_config.json`)."""
    return isinstance(name, str) and os.path.isfile(os.path.join(os.path.expanduser(name), ADAPTER_CONFIG))


def adapter_base(adapter: str) -> str:
    """The base model an adapter directory was trained on (`base_model_name_or_path`)."""
    path = os.path.join(os.path.expanduser(adapter), ADAPTER_CONFIG)
    if not os.path.isfile(path):
        if not os.path.isdir(os.path.expanduser(adapter)):
            raise FileNotFoundError(f"adapter path {adapter!r} does not exist")
        raise FileNotFoundError(f"adapter path {adapter!r} has no {ADAPTER_CONFIG}: not a PEFT adapter")
    try:
        with open(path, encoding="utf-8") as f:
            base = json.load(f).get("base_model_name_or_path")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{path}: not a JSON object ({e})") from None
    if not base:
        raise ValueError(f"{path}: missing field 'base_model_name_or_path' (which model is this adapter for?)")
    return base


def resolve_model_path(name: str) -> str:
    """A tiny spec is built locally (cached); a path must exist; anything else is a hub id."""
    if is_tiny_spec(name):
        return build_tiny(name)
    if _looks_local(name):
        path = os.path.expanduser(name)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"model path {name!r} does not exist")
        if not os.path.isfile(os.path.join(path, "config.json")):
            if os.path.isfile(os.path.join(path, ADAPTER_CONFIG)):
                raise ValueError(f"model path {name!r} is a PEFT adapter: pass it as the adapter (or to load_model)")
            raise FileNotFoundError(
                f"model path {name!r} has neither config.json nor {ADAPTER_CONFIG}: not a Hugging Face checkpoint"
            )
        return path
    return name  # a hub id, e.g. Qwen/Qwen2.5-Coder-7B-Instruct


def split_adapter(name: str, adapter: str | None = None) -> tuple[str, str | None]:
    """(base, adapter): `name` may itself be an adapter directory, whose base it names."""
    if is_adapter_dir(name):
        if adapter:
            raise ValueError(f"{name!r} is already a PEFT adapter; do not pass a second adapter ({adapter!r})")
        return adapter_base(name), name
    if adapter:
        adapter_base(adapter)  # a clear error for a missing or malformed adapter, before loading the base
    return name, adapter


def _resolve_base(base: str, adapter: str | None) -> str:
    try:
        return resolve_model_path(base)
    except (FileNotFoundError, ValueError) as e:
        if adapter is None:
            raise
        raise FileNotFoundError(f"adapter {adapter!r}: its base model cannot be found ({e})") from None


def load_tokenizer(name: str, trust_remote_code: bool = False, adapter: str | None = None, revision: str | None = None):
    """The tokenizer of a model; an adapter dir's own tokenizer when it saved one, else its base's."""
    from transformers import AutoTokenizer

    base, adapter = split_adapter(name, adapter)
    has_own = adapter is not None and os.path.isfile(os.path.join(adapter, "tokenizer_config.json"))
    source = adapter if has_own else _resolve_base(base, adapter)
    extra = {"revision": revision} if revision and not has_own else {}
    tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
    ensure_chat_template(tok)
    ensure_pad_token(tok)
    return tok


def load_model(
    name: str,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
    adapter: str | None = None,
    revision: str | None = None,
    attn_implementation: str | None = None,
):
    """A causal LM and its tokenizer (safetensors only; remote code only when asked for).

    `name`: a checkpoint dir, hub id, tiny spec or PEFT adapter dir. With an adapter (`adapter=`,
    or `name` being one) the model is a `PeftModel` over the adapter's base, in inference mode.
    `revision` (a hub branch, tag or commit) and `attn_implementation` (eager, sdpa,
    flash_attention_2, ...) go to `from_pretrained`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    base, adapter = split_adapter(name, adapter)
    path = _resolve_base(base, adapter)
    torch_dtype = getattr(torch, dtype) if dtype not in (None, "auto") else dtype
    extra = {k: v for k, v in (("revision", revision), ("attn_implementation", attn_implementation)) if v}
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=True, **extra
    )
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    if device:
        model.to(device)
    return model, load_tokenizer(base, trust_remote_code, adapter, revision)


def load_conscience(
    name: str,
    adapter: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    **overrides,
):
    """A `Conscience` over a checkpoint, hub id, tiny spec or trained PEFT adapter directory.

    With an adapter the model is the fine-tuned one and the conscience its frozen copy: the adapter
    disabled (`frozen=model.disable_adapter`), as in training. `conscience_config.json` is read from
    the adapter dir (where `train` writes it), else from the base checkpoint; then `overrides`.
    """
    from .conscience import Conscience, ConscienceConfig

    base, adapter = split_adapter(name, adapter)
    model, tok = load_model(base, dtype, trust_remote_code, device, adapter=adapter)
    config = ConscienceConfig.from_pretrained(conscience_config_dir(base, adapter), **overrides)
    return Conscience(model, tok, config, frozen=model.disable_adapter if adapter else None)


def conscience_config_dir(name: str, adapter: str | None = None) -> str | None:
    """Where a model's `conscience_config.json` is: the adapter dir (where `train` writes it), else the
    base checkpoint dir; None when neither has one (a hub id, or no file)."""
    from .conscience import CONFIG_NAME

    base, adapter = split_adapter(name, adapter)
    candidates = [adapter] if adapter else []
    local = _resolve_base(base, adapter)
    if os.path.isdir(local):
        candidates.append(local)
    return next((d for d in candidates if os.path.isfile(os.path.join(d, CONFIG_NAME))), None)
