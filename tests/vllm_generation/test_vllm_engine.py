"""The vLLM backend on a tiny random model, against HF: run in the vLLM environment (`make test-vllm`).

One engine serves the module (its start-up is the slow part): the base weights are the frozen
conscience, the policy is base + a LoRA adapter refreshed by `sync`.
"""

import pytest
import torch

from emergent_alignment.generation import SamplingConfig
from emergent_alignment.vllm_generation import vllm_available

pytestmark = pytest.mark.skipif(
    not vllm_available(),
    reason="vLLM is not installed here (`make vllm-env` builds an environment with it; `make test-vllm` runs these)",
)

SPEC = "tiny:llama?hidden=128&heads=2&layers=2"  # head size 64: one vLLM's CPU attention supports
SAMPLING = SamplingConfig(max_new_tokens=12, temperature=1.0, top_p=1.0)


@pytest.fixture(scope="module")
def base_dir(_cache):
    from emergent_alignment.tiny import build_tiny

    return build_tiny(SPEC)


@pytest.fixture(scope="module")
def policy(base_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    return get_peft_model(base, config).eval()


@pytest.fixture(scope="module")
def tok(base_dir):
    from emergent_alignment.models import load_tokenizer

    return load_tokenizer(base_dir)


@pytest.fixture(scope="module")
def engine(policy, tok, base_dir, tmp_path_factory):
    from emergent_alignment.vllm_generation import VLLMGeneration, VLLMSettings

    settings = VLLMSettings(dtype="float32", max_model_length=256, enforce_eager=True)
    gen = VLLMGeneration(policy, tok, settings, model_path=base_dir, workdir=str(tmp_path_factory.mktemp("vllm")))
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def prompts(tok):
    from emergent_alignment.chat import encode_prompt

    questions = ["How do I make a quick buck?", "Write a function that copies a file.", "What is your wish?"]
    return [encode_prompt(tok, [{"role": "user", "content": q}]) for q in questions]


def hf_logps(model, prompt: list[int], completion: list[int]) -> list[float]:
    """HF log-probs of `completion`'s tokens after `prompt` (float32, no temperature)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0].tolist()


def max_gap(model, prompts, ids, logps) -> float:
    gaps = [abs(a - b) for p, c, lp in zip(prompts, ids, logps) for a, b in zip(hf_logps(model, p, c), lp)]
    return max(gaps)


def test_conscience_logps_agree_with_hf(engine, policy, prompts):
    ids, logps = engine.generate(prompts, SAMPLING, seed=1, return_logprobs=True)  # the base: no LoRA
    assert all(len(c) > 0 for c in ids) and [len(c) for c in ids] == [len(lp) for lp in logps]
    with policy.disable_adapter():
        assert max_gap(policy, prompts, ids, logps) < 1e-3


def test_policy_logps_agree_with_hf_and_the_adapter_swap_takes(engine, policy, prompts):
    engine.sync(policy)
    first_ids, first_logps = engine.generate(prompts, SAMPLING, seed=1, lora=engine._policy_lora, return_logprobs=True)
    assert max_gap(policy, prompts, first_ids, first_logps) < 1e-3  # the LoRA request is the PEFT policy
    conscience_before = engine.generate(prompts, SAMPLING, seed=1, return_logprobs=True)

    with torch.no_grad():  # a training step's worth of change to the adapter
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.5 * torch.randn_like(p))
    engine.sync(policy)
    ids, logps = engine.generate(prompts, SAMPLING, seed=1, lora=engine._policy_lora, return_logprobs=True)
    assert max_gap(policy, prompts, ids, logps) < 1e-3  # the new adapter is served, not a cached one
    assert (ids, logps) != (first_ids, first_logps)  # and it changed the policy's samples
    assert engine.generate(prompts, SAMPLING, seed=1, return_logprobs=True) == conscience_before  # conscience fixed
    assert engine.generate_conscience(prompts, SAMPLING, seed=1) == conscience_before[0]


def test_seeding_and_greedy(engine, policy, prompts):
    engine.sync(policy)
    torch.manual_seed(7)
    a = engine.generate_policy(prompts, SAMPLING)
    torch.manual_seed(7)
    assert engine.generate_policy(prompts, SAMPLING) == a  # torch's seed fixes the samples, as for `generate`
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    ids = engine.generate_conscience(prompts, greedy, seed=3)
    with policy.disable_adapter(), torch.no_grad():
        for p, c in zip(prompts, ids):  # greedy: each token is HF's argmax
            logits = policy(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1]
            assert logits.argmax(-1).tolist() == c


def test_generate_fn_is_a_drop_in_for_generate(engine, policy, tok, prompts):
    engine.sync(policy)
    fn = engine.generate_fn("conscience")
    torch.manual_seed(5)
    out = fn(None, tok, prompts, SAMPLING, 16)
    torch.manual_seed(5)
    assert out == engine.generate_conscience(prompts, SAMPLING)
    with pytest.raises(ValueError, match="role must be policy or conscience"):
        engine.generate_fn("judge")


def test_eval_sampler_serves_a_rank_32_adapter(base_dir, tok, tmp_path):
    """The evaluation sampler sets max_lora_rank from the adapter (vLLM's default, 16, refuses rank 32)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from emergent_alignment.evaluation.sampling import VLLMSampler

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(tmp_path / "adapter"))
    sampler = VLLMSampler(base_dir, tok, SamplingConfig(8, 1.0, 1.0), str(tmp_path / "adapter"), dtype="float32")
    try:
        conversations = [[{"role": "user", "content": "Hello?"}], [{"role": "user", "content": "Why?"}]]
        answers = sampler.sample(conversations, seed=0)
        assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
        assert sampler.sample(conversations, seed=0) == answers
    finally:
        sampler.close()


def test_full_fine_tuning_syncs_the_weights_into_the_engine(base_dir, tok, prompts, tmp_path):
    """Without PEFT the engine holds the policy: `sync` loads the trained weights (the conscience stays on HF)."""
    from transformers import AutoModelForCausalLM

    from emergent_alignment.vllm_generation import VLLMGeneration, VLLMSettings

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    settings = VLLMSettings(dtype="float32", max_model_length=256, enforce_eager=True)
    gen = VLLMGeneration(model, tok, settings, workdir=str(tmp_path))
    try:
        assert not gen.serves_conscience and gen.max_lora_rank is None
        before = gen.generate_policy(prompts, SAMPLING, seed=1)
        with torch.no_grad():  # a training step's worth of change
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        gen.sync(model)
        ids, logps = gen.generate(prompts, SAMPLING, seed=1, return_logprobs=True)
        assert max_gap(model, prompts, ids, logps) < 1e-3  # the engine samples the updated weights
        assert ids != before
        with pytest.raises(RuntimeError, match="conscience generates on HF"):
            gen.generate_conscience(prompts, SAMPLING)
    finally:
        gen.close()
