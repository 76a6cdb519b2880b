"""Batched sampling from a causal LM on token-id prompts (left-padded, KV cache on).

Plain samples of the model: the checkpoint's `generation_config` (a repetition penalty, top-k, ...)
does not apply, only its stop and pad tokens. Where the weights are sharded across processes
(FSDP, DeepSpeed ZeRO-3) every forward is a collective, so generation runs with `synced_gpus`:
every process keeps stepping until all have finished.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .tensors import left_pad


@dataclass
class SamplingConfig:
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def is_sharded(model) -> bool:
    """Whether `model`'s weights are split across processes (FSDP2 DTensors, FSDP1, DeepSpeed ZeRO-3)."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
        return True
    return any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in model.parameters())


def needs_synced_generation(model) -> bool:
    """Several processes and sharded weights: each decoding step is a collective on every process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and is_sharded(model)


@contextlib.contextmanager
def plain_generation_config(model):
    """Inside, `model.generation_config` holds only the checkpoint's stop, pad and start tokens, so
    `generate` takes nothing else from it (transformers fills every unset field from it)."""
    from transformers import GenerationConfig

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    original = target.generation_config
    tokens = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    target.generation_config = GenerationConfig(**{k: getattr(original, k, None) for k in tokens})
    try:
        yield
    finally:
        target.generation_config = original


@torch.no_grad()
def generate(
    model, tokenizer, prompts: list[list[int]], sampling: SamplingConfig, batch_size: int = 16
) -> list[list[int]]:
    """Sample one completion per prompt; returns the new token ids, cut after the first stop token.

    Sampling is greedy when temperature is 0, otherwise plain sampling (no top-k, no penalties).
    Seed with `torch.manual_seed` for reproducibility. With sharded weights, every process must call
    it the same number of times with the same number of prompts.
    """
    was_training = model.training
    model.eval()
    stops = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    synced = needs_synced_generation(model)
    out: list[list[int]] = []
    try:
        with plain_generation_config(model):
            for start in range(0, len(prompts), batch_size):
                ids, mask = left_pad(prompts[start : start + batch_size], tokenizer.pad_token_id)
                kwargs = dict(do_sample=False)
                if sampling.temperature > 0:
                    kwargs = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
                gen = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stops or None,
                    use_cache=True,  # also under gradient checkpointing
                    synced_gpus=synced,
                    **kwargs,
                )
                for row in gen[:, ids.shape[1] :].tolist():
                    cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
                    out.append(row[:cut])
    finally:
        model.train(was_training)
    return out


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)
