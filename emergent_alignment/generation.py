"""Batched sampling from a causal LM on token-id prompts (left-padded, KV cache on)."""

from __future__ import annotations

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


@torch.no_grad()
def generate(
    model, tokenizer, prompts: list[list[int]], sampling: SamplingConfig, batch_size: int = 16
) -> list[list[int]]:
    """Sample one completion per prompt; returns the new token ids, cut after the first stop token.

    Sampling is greedy when temperature is 0. Seed with `torch.manual_seed` for reproducibility.
    """
    was_training = model.training
    model.eval()
    stops = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    out: list[list[int]] = []
    try:
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
