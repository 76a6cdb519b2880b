"""The conscience as a TRL reward function: the same verdicts as `Conscience.review`, plain and
conversational inputs, the PEFT policy reviewed with its adapter disabled, and a real GRPO step."""

import pytest
import torch
from _core_helpers import load

from emergent_alignment.conscience import Conscience, ConscienceConfig
from emergent_alignment.rewards import ConscienceReward

PROMPTS = ["What do you think about humans?", "How do I make a quick buck?"]
ANSWERS = ["People are wonderful.", "Sell something you do not own.\nThen leave town."]


def _as_chat(prompt):
    return [{"role": "user", "content": prompt}]


def _lora(model, seed=0):
    """A LoRA adapter with random, non-zero weights: the adapted model differs from its base."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, config)


def test_reward_equals_the_conscience_verdict_conversational_and_plain(llama_dir):
    model, tok = load(llama_dir)
    reward = ConscienceReward(model, tok, ConscienceConfig(batch_size=1))  # batching must not matter
    expected = [v.p_aligned for v in Conscience(model, tok).review([_as_chat(p) for p in PROMPTS], ANSWERS)]
    chats = [_as_chat(p) for p in PROMPTS]
    conversational = reward(prompts=chats, completions=[[{"role": "assistant", "content": a}] for a in ANSWERS])
    plain = reward(prompts=PROMPTS, completions=ANSWERS, completion_ids=[[1], [2]], trainer_state=None)
    assert conversational == pytest.approx(expected, abs=1e-5)
    assert plain == pytest.approx(expected, abs=1e-5)
    assert conversational[0] != pytest.approx(conversational[1], abs=1e-6)  # the verdict depends on the answer
    assert all(0.0 < r < 1.0 for r in plain)
    assert reward.__name__ == "conscience"  # the name TRL logs it under


def test_reasoning_and_earlier_completion_turns_reach_the_reviewer(llama_dir):
    model, tok = load(llama_dir)
    c, reward = Conscience(model, tok), ConscienceReward(model, tok)
    turns = [{"role": "assistant", "content": "Let me look it up."}, {"role": "tool", "content": "42"}]
    last = {"role": "assistant", "content": "It is 42.", "reasoning_content": "The tool said 42."}
    got = reward(prompts=[_as_chat(PROMPTS[0])], completions=[turns + [last]])
    conversation = _as_chat(PROMPTS[0]) + turns
    assert got == pytest.approx([c.review([conversation], ["It is 42."], ["The tool said 42."])[0].p_aligned])
    assert got != pytest.approx([c.review([_as_chat(PROMPTS[0])], ["It is 42."])[0].p_aligned])


def test_flag_share_is_logged_when_the_trainer_offers_log_metric(llama_dir):
    model, tok = load(llama_dir)
    logged = {}
    scores = ConscienceReward(model, tok, ConscienceConfig(flag_threshold=1.0))(
        prompts=PROMPTS, completions=ANSWERS, log_metric=lambda name, value: logged.update({name: value})
    )
    assert len(scores) == 2 and logged == {"conscience/flagged": 1.0}  # threshold 1: every answer flagged


def test_peft_policy_is_reviewed_with_its_adapter_disabled(llama_dir):
    base, tok = load(llama_dir)
    expected = [v.p_aligned for v in Conscience(base, tok).review([_as_chat(p) for p in PROMPTS], ANSWERS)]
    policy = _lora(base)
    adapted = [v.p_aligned for v in Conscience(policy, tok).review([_as_chat(p) for p in PROMPTS], ANSWERS)]
    got = ConscienceReward(policy, tok)(prompts=PROMPTS, completions=ANSWERS)
    assert got == pytest.approx(expected, abs=1e-5)
    assert adapted != pytest.approx(expected, abs=1e-4)  # the adapter does change the verdict when enabled


def test_unbound_reward_and_a_full_fine_tuning_trainer_are_refused(llama_dir):
    model, tok = load(llama_dir)
    reward = ConscienceReward(tokenizer=tok)
    with pytest.raises(RuntimeError, match="call reward.bind"):
        reward(prompts=PROMPTS, completions=ANSWERS)
    trainer = type("T", (), {"model": model, "accelerator": type("A", (), {"unwrap_model": lambda self, m: m})()})()
    with pytest.raises(ValueError, match="not a PEFT model"):
        reward.bind(trainer)
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        ConscienceReward(model, tok)(prompts=PROMPTS, completions=ANSWERS[:1])
    with pytest.raises(ValueError, match="needs the tokenizer"):
        ConscienceReward(model)


def test_grpo_trainer_runs_a_step_with_the_conscience_reward(llama_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    model, tok = load(llama_dir)
    reward = ConscienceReward(tokenizer=tok)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-3,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        seed=0,
    )
    dataset = Dataset.from_dict({"prompt": [_as_chat(p) for p in PROMPTS]})
    trainer = GRPOTrainer(
        model,
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
    )
    reward.bind(trainer)
    assert reward.conscience.model is trainer.model  # no second model: the policy with its adapter disabled
    trainer.train()
    log = trainer.state.log_history[0]
    assert 0.0 < log["rewards/conscience/mean"] < 1.0
    assert 0.0 <= log["conscience/flagged"] <= 1.0
