"""Batched sampling from a causal LM on token-id prompts (left-padded, KV cache on).

Plain samples of the model: the checkpoint's `generation_config` (a repetition penalty, top-k, ...)
does not apply, only its stop and pad tokens. Where the weights are sharded across processes
(FSDP, DeepSpeed ZeRO-3) every forward is a collective, so generation runs with `synced_gpus`:
every process keeps stepping until all have finished.

A `PromptCache` lets `generate` continue from prompts whose keys and values a forward already
computed (the conscience's review prompts, which its revision prompts extend): only the tokens after
them are computed again. Positions and the attention mask are those of the whole prompt, so the
samples are those of the whole prompt computed afresh, up to floating-point rounding.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch

from .tensors import left_pad, pad


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


def cache_argument(model) -> str:
    """The name under which `model`'s forward and `generate` take a KV cache ("cache" since transformers
    renamed "past_key_values")."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(target.forward).parameters else "past_key_values"


@dataclass
class PromptCache:
    """Left-padded prompts, `ids` and `mask` (B, W), and the keys and values a forward computed for them:
    per layer a (keys, values) pair of (B, heads, W, head_dim) tensors, on the model's device."""

    ids: torch.Tensor
    mask: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    def __len__(self):
        return self.ids.shape[0]

    @classmethod
    def from_output(cls, ids: torch.Tensor, mask: torch.Tensor, cache) -> PromptCache | None:
        """The cache a forward returned over `ids`, or None where it is not a plain full-attention cache of
        them (sliding-window, linear-attention, quantized or offloaded layers): those are not continued."""
        from transformers.cache_utils import DynamicCache, DynamicLayer

        layers = getattr(cache, "layers", None)
        if type(cache) is not DynamicCache or not layers or any(type(x) is not DynamicLayer for x in layers):
            return None
        if any(x.keys is None or x.keys.shape[-2] != ids.shape[1] for x in layers):
            return None
        return cls(ids, mask, [(x.keys, x.values) for x in layers])

    @classmethod
    def select(
        cls, parts: list[PromptCache], picks: list[tuple[int, int]], lengths: list[int] | None = None
    ) -> PromptCache:
        """Row `row` of `parts[part]` for each (part, row) of `picks`, left-padded to the widest part
        (padding: masked positions, zero keys and values). `lengths`: per pick, how many of the row's
        first tokens to keep; the rest of the row is masked (a prompt that shares only its beginning)."""
        width = max(parts[p].ids.shape[1] for p, _ in picks)

        def rows(tensor_of, p, r):
            t = tensor_of(parts[p])[r : r + 1]
            shift = width - parts[p].ids.shape[1]
            if not shift:
                return t
            dim = 1 if t.dim() == 2 else 2  # ids and mask (1, W); keys and values (1, H, W, D)
            shape = list(t.shape)
            shape[dim] = shift
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        ids = torch.cat([rows(lambda c: c.ids, p, r) for p, r in picks])
        mask = torch.cat([rows(lambda c: c.mask, p, r) for p, r in picks])
        for i, n in enumerate(lengths or []):
            real = int(mask[i].sum())
            if not 0 < n <= real:
                raise ValueError(f"PromptCache.select: keep {n} of a row's {real} tokens")
            mask[i, width - real + n :] = 0
        n_layers = len(parts[picks[0][0]].layers)
        layers = [
            tuple(torch.cat([rows(lambda c, i=i, j=j: c.layers[i][j], p, r) for p, r in picks]) for j in (0, 1))
            for i in range(n_layers)
        ]
        return cls(ids, mask, layers)

    def cache(self, start: int, end: int):
        """A fresh `DynamicCache` of rows start:end (generation grows it; this object stays as it is)."""
        from transformers.cache_utils import DynamicCache

        return DynamicCache([(k[start:end], v[start:end]) for k, v in self.layers])


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    sampling: SamplingConfig,
    batch_size: int = 16,
    prefix: PromptCache | None = None,
) -> list[list[int]]:
    """Sample one completion per prompt; returns the new token ids, cut after the first stop token.

    Sampling is greedy when temperature is 0, otherwise plain sampling (no top-k, no penalties).
    Seed with `torch.manual_seed` for reproducibility. With sharded weights, every process must call
    it the same number of times with the same number of prompts.

    `prefix`: prompt i is `prefix` row i followed by `prompts[i]` (then `prompts` holds only what follows
    the cached part; one row each, in order); the prefix's keys and values are not computed again.
    """
    if prefix is not None and (len(prefix) != len(prompts) or not all(prompts)):
        raise ValueError(f"generate: with a prefix, one non-empty continuation per row ({len(prefix)} rows)")
    was_training = model.training
    model.eval()
    stops = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    synced = needs_synced_generation(model)
    out: list[list[int]] = []
    try:
        with plain_generation_config(model):
            for start in range(0, len(prompts), batch_size):
                end = min(start + batch_size, len(prompts))
                if prefix is None:
                    ids, mask = left_pad(prompts[start:end], tokenizer.pad_token_id)
                    kwargs = {}
                else:  # the cached prompts, then the rest of each (left-padded: padding between the two)
                    ids, mask = pad(prompts[start:end], tokenizer.pad_token_id, "left")
                    ids = torch.cat([prefix.ids[start:end].to(ids), ids], dim=1)
                    mask = torch.cat([prefix.mask[start:end].to(mask), mask], dim=1)
                    kwargs = {cache_argument(model): prefix.cache(start, end)}
                if sampling.temperature > 0:
                    kwargs |= dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
                else:
                    kwargs |= dict(do_sample=False)
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
