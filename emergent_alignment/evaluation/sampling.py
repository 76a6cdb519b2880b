"""Sampling answers: batched HF generation through the core, or vLLM when installed and asked for.

Both backends take chat conversations and return one answer string per conversation. Seeding:
`eval` cuts its work into fixed batches and seeds each batch from the run seed and the batch's
content, so a resumed run draws the same answers as an uninterrupted one (HF backend, same
hardware and versions). The vLLM backend seeds each request instead (`SamplingParams.seed`).
"""

from __future__ import annotations

from ..generation import SamplingConfig

BACKENDS = ("hf", "vllm")


class HFSampler:
    """`generation.generate` on chat prompts (left-padded batches, KV cache)."""

    name = "hf"

    def __init__(self, model, tokenizer, sampling: SamplingConfig, batch_size: int = 16):
        self.model, self.tokenizer, self.sampling, self.batch_size = model, tokenizer, sampling, batch_size

    def sample(self, conversations: list[list[dict]], seed: int, temperature: float | None = None) -> list[str]:
        import torch

        from ..chat import encode_prompt
        from ..generation import decode, generate

        sampling = self.sampling
        if temperature is not None:
            sampling = SamplingConfig(sampling.max_new_tokens, temperature, sampling.top_p)
        torch.manual_seed(seed)
        prompts = [encode_prompt(self.tokenizer, c) for c in conversations]
        new = generate(self.model, self.tokenizer, prompts, sampling, self.batch_size)
        return [decode(self.tokenizer, ids).strip() for ids in new]


class VLLMSampler:
    """vLLM offline inference (`make vllm-env`, or `pip install emergent-alignment[vllm]` on CUDA). Prompts
    are the same token ids as the HF backend's (our tokenizer and chat template) and the answers are
    decoded by it too; sampling is plain, as the HF backend's (nothing from the checkpoint's
    `generation_config` but its stop tokens). An adapter is served as a LoRA, with `max_lora_rank` set
    from its rank. Create it before any HF copy of the model is on the GPU (vLLM sizes its memory from
    what is free), and `close()` it before loading one."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        tokenizer,
        sampling: SamplingConfig,
        adapter: str | None = None,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
    ):
        from ..vllm_generation import adapter_dir_rank, lora_slot_rank, memory_kwargs, vllm_available

        if not vllm_available():
            raise ValueError(
                "--backend vllm: vLLM is not installed (`make vllm-env`, or pip install 'emergent-alignment[vllm]')"
            )
        from vllm import LLM

        kwargs = dict(
            model=model_path,
            dtype=dtype or "auto",
            seed=0,
            trust_remote_code=False,
            generation_config="vllm",  # plain sampling, as the HF backend
            max_model_len=max_model_len,
            **memory_kwargs(gpu_memory_utilization),
        )
        if adapter:
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_slot_rank(adapter_dir_rank(adapter)))
        self.llm = LLM(**kwargs)
        self.stops = _stop_ids(model_path, tokenizer)
        self.tokenizer, self.sampling, self.adapter = tokenizer, sampling, adapter

    def sample(self, conversations: list[list[dict]], seed: int, temperature: float | None = None) -> list[str]:
        from ..chat import encode_prompt
        from ..generation import decode
        from ..vllm_generation import cut_at_stop, sampling_params

        lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.adapter)
        sampling = self.sampling
        if temperature is not None:
            sampling = SamplingConfig(sampling.max_new_tokens, temperature, sampling.top_p)
        params = [sampling_params(sampling, seed + i, self.stops) for i in range(len(conversations))]
        prompts = [{"prompt_token_ids": encode_prompt(self.tokenizer, c)} for c in conversations]
        outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return [decode(self.tokenizer, cut_at_stop(o.outputs[0].token_ids, self.stops)).strip() for o in outputs]

    def close(self) -> None:
        """Shut the engine down and give its memory back (before an HF copy is loaded on the same GPU)."""
        import gc

        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()
        del llm
        gc.collect()
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except ImportError:
            pass


def _stop_ids(model_path: str, tokenizer) -> list[int]:
    """The checkpoint's stop tokens and the tokenizer's EOS, as `generation.stop_token_ids` gives them."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from ..generation import stop_token_ids

    try:
        config = GenerationConfig.from_pretrained(model_path)
    except OSError:  # no generation_config.json
        config = GenerationConfig()
    return stop_token_ids(SimpleNamespace(generation_config=config), tokenizer)
