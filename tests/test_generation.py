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


def _prompt_cache(model, tok, prompts):
    """The keys and values of a forward over the left-padded `prompts`, as the conscience's review keeps them."""
    from emergent_alignment.generation import PromptCache

    ids, mask = left_pad(prompts, tok.pad_token_id)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1, use_cache=True)
    return PromptCache.from_output(ids, mask, out.get("cache", None))


@pytest.mark.parametrize("fixture", ["llama_dir", "qwen2_dir"])
def test_generation_from_a_prompt_cache_equals_generation_from_the_whole_prompts(fixture, request):
    """Prompts split into a cached head (computed by a forward, in two batches of different widths, rows
    picked out of order) and a rest of varying length: the same samples as the whole prompts afresh."""
    from emergent_alignment.generation import PromptCache

    model, tok = load(request.getfixturevalue(fixture))
    model.eval()
    texts = ["Hi", "Write a long poem about the sea please", "What is two plus two?", "Tell me a story"]
    whole = [encode_prompt(tok, [{"role": "user", "content": q}]) for q in texts]
    cut = [len(p) - k for p, k in zip(whole, (2, 5, 1, 3))]  # a rest of 2, 5, 1 and 3 tokens
    heads = [p[:c] for p, c in zip(whole, cut)]
    parts = [_prompt_cache(model, tok, heads[:1]), _prompt_cache(model, tok, heads[1:])]
    assert all(p is not None for p in parts) and parts[0].ids.shape[1] != parts[1].ids.shape[1]
    picks = [(1, 1), (0, 0), (1, 0), (1, 2), (1, 0)]  # prompts 2, 0, 1, 3, 1
    order = [2, 0, 1, 3, 1]
    prefix = PromptCache.select(parts, picks)
    rest = [whole[i][cut[i] :] for i in order]
    for sampling, seed in ((SamplingConfig(6, 0.0, 1.0), 0), (SamplingConfig(6, 1.0, 1.0), 3)):
        torch.manual_seed(seed)
        fresh = generate(model, tok, [whole[i] for i in order], sampling, batch_size=5)
        torch.manual_seed(seed)
        cached = generate(model, tok, rest, sampling, batch_size=5, prefix=prefix)
        assert cached == fresh
    # in batches of 2 (greedy): each batch takes its rows of the prefix
    assert generate(model, tok, rest, SamplingConfig(6, 0.0, 1.0), batch_size=2, prefix=prefix) == generate(
        model, tok, [whole[i] for i in order], SamplingConfig(6, 0.0, 1.0), batch_size=2
    )
    with pytest.raises(ValueError, match="one non-empty continuation per row"):
        generate(model, tok, rest[:2], SamplingConfig(2), prefix=prefix)


def test_a_cache_that_is_not_plain_full_attention_is_not_kept():
    from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer

    from emergent_alignment.generation import PromptCache

    ids, mask = torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long)
    kv = torch.zeros(1, 2, 3, 4)
    assert PromptCache.from_output(ids, mask, DynamicCache([(kv, kv)])) is not None
    sliding = DynamicCache([(kv, kv)])
    sliding.layers[0] = DynamicSlidingWindowLayer(sliding_window=2)
    assert PromptCache.from_output(ids, mask, sliding) is None
    assert PromptCache.from_output(ids, mask, None) is None
    assert PromptCache.from_output(torch.ones(1, 4, dtype=torch.long), mask, DynamicCache([(kv, kv)])) is None
