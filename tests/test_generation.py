import pytest
import torch
from _core_helpers import load

from emergent_alignment.chat import encode_prompt
from emergent_alignment.generation import SamplingConfig, generate, left_pad


def test_left_pad():
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_seeded_sampling_is_reproducible_and_batch_agrees_with_greedy_single(qwen2_dir):
    model, tok = load(qwen2_dir)
    prompts = [encode_prompt(tok, [{"role": "user", "content": q}]) for q in ("Hi", "Write a long poem please")]
    torch.manual_seed(1)
    a = generate(model, tok, prompts, SamplingConfig(8, 1.0, 1.0))
    torch.manual_seed(1)
    b = generate(model, tok, prompts, SamplingConfig(8, 1.0, 1.0))
    assert a == b and all(1 <= len(x) <= 8 for x in a)
    greedy = generate(model, tok, prompts, SamplingConfig(6, 0.0, 1.0))
    single = [generate(model, tok, [p], SamplingConfig(6, 0.0, 1.0))[0] for p in prompts]
    assert greedy == single  # left padding does not change what a prompt produces


def test_generation_restores_training_mode(llama_dir):
    model, tok = load(llama_dir)
    model.train()
    generate(model, tok, [[1, 2]], SamplingConfig(2))
    assert model.training


@pytest.mark.parametrize("kw", [dict(max_new_tokens=0), dict(temperature=-1), dict(top_p=0)])
def test_bad_sampling_config(kw):
    with pytest.raises(ValueError):
        SamplingConfig(**kw)


def test_the_checkpoints_generation_config_does_not_apply_and_is_restored(qwen2_dir):
    model, tok = load(qwen2_dir)
    prompts = [encode_prompt(tok, [{"role": "user", "content": "Say something long"}])]
    plain = generate(model, tok, prompts, SamplingConfig(8, 0.0, 1.0))
    banned = [[t] for t in set(plain[0])]
    model.generation_config.repetition_penalty = 50.0
    model.generation_config.bad_words_ids = banned  # would forbid every token of the plain answer
    assert generate(model, tok, prompts, SamplingConfig(8, 0.0, 1.0)) == plain
    assert model.generation_config.repetition_penalty == 50.0 and model.generation_config.bad_words_ids == banned


def test_unsharded_models_do_not_sync_generation(llama_dir):
    from emergent_alignment.generation import is_sharded, needs_synced_generation

    model, _ = load(llama_dir)
    assert not is_sharded(model) and not needs_synced_generation(model)
