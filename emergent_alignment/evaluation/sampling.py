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
    """vLLM offline inference (`pip install emergent-alignment[vllm]`). Prompts are the same token
    ids as the HF backend's (our tokenizer and chat template); an adapter is served as a LoRA."""

    name = "vllm"

    def __init__(
        self, model_path: str, tokenizer, sampling: SamplingConfig, adapter: str | None = None, dtype: str | None = None
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise ValueError("--backend vllm: vLLM is not installed (pip install 'emergent-alignment[vllm]')") from None
        self.llm = LLM(
            model=model_path, dtype=dtype or "auto", enable_lora=bool(adapter), seed=0, trust_remote_code=False
        )
        self.tokenizer, self.sampling, self.adapter = tokenizer, sampling, adapter

    def sample(self, conversations: list[list[dict]], seed: int, temperature: float | None = None) -> list[str]:
        from vllm import SamplingParams

        from ..chat import encode_prompt

        lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.adapter)
        temp = self.sampling.temperature if temperature is None else temperature
        params = [
            SamplingParams(
                temperature=temp, top_p=self.sampling.top_p, max_tokens=self.sampling.max_new_tokens, seed=seed + i
            )
            for i in range(len(conversations))
        ]
        prompts = [{"prompt_token_ids": encode_prompt(self.tokenizer, c)} for c in conversations]
        outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outputs]
