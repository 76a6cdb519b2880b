"""The trainer with `use_vllm`: probe answers and (PEFT) corrections come from the vLLM engine.

Runs in the vLLM environment (`make test-vllm`); skipped elsewhere.
"""

import pytest
import torch

from emergent_alignment.vllm_generation import vllm_available

pytestmark = pytest.mark.skipif(
    not vllm_available(),
    reason="vLLM is not installed here (`make vllm-env` builds an environment with it; `make test-vllm` runs these)",
)

SPEC = "tiny:llama?hidden=128&heads=2&layers=2"  # head size 64: one vLLM's CPU attention supports


def test_probe_answers_and_corrections_come_from_the_engine(_cache, tmp_path, monkeypatch):
    from _fixed_pairs import CHATS
    from datasets import Dataset
    from peft import LoraConfig
    from test_trainer import PROBES, config

    from emergent_alignment import trainer as trainer_module
    from emergent_alignment.conscience import Verdict
    from emergent_alignment.tiny import build_tiny

    base = build_tiny(SPEC)
    # the trainer tests' settings (tests/test_trainer.py), with the engine on
    args = config(tmp_path, max_length=128, use_vllm=True, vllm_max_model_length=1024)
    t = trainer_module.EmergentAlignmentTrainer(
        base,
        args=args,
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        probe_prompts=PROBES,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    assert t.vllm is not None and t.vllm.serves_conscience
    calls = {"sync": 0, "policy": 0, "conscience": 0}
    for name, attr in (("sync", "sync"), ("policy", "generate_policy"), ("conscience", "generate_conscience")):
        real = getattr(t.vllm, attr)

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(t.vllm, attr, counted)
    t.conscience.generate_fn = t.vllm.generate_fn("conscience")  # rebound to the counted method

    def no_hf_generation(*a, **k):
        raise AssertionError("HF generate was called with use_vllm")

    monkeypatch.setattr(trainer_module, "generate", no_hf_generation)
    review_calls = {"n": 0}

    def review(convs, texts):  # flags every probe answer, passes every correction
        review_calls["n"] += 1
        flag = review_calls["n"] % 2 == 1
        return [Verdict(0.1 if flag else 0.9, flag, 0.0, 0.0) for _ in texts]

    t.conscience.review = review
    lora0 = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" in n}
    t.train()
    assert calls == {"sync": 2, "policy": 2, "conscience": 2}, calls
    assert any(h.get("dpo/loss") is not None for h in t.state.log_history)
    assert any(not torch.equal(p, lora0[n]) for n, p in t.model.named_parameters() if "lora_" in n)
    t.vllm.close()
