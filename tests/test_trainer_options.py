"""SFTConfig options with the alignment term: the tricky supported ones reach the loss, the others are
rejected at construction with a message naming the field."""

import types

import pytest
import torch
from _fixed_pairs import CHATS
from datasets import Dataset
from test_trainer import PROBES, config, force_pairs, logged

from emergent_alignment.trainer import EmergentAlignmentTrainer, _check_parallelism


def build(model, tmp_path, tok=None, **kw):
    extra = {k: kw.pop(k) for k in ("compute_loss_func",) if k in kw}
    t = EmergentAlignmentTrainer(
        model,
        args=config(tmp_path, **kw),
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        processing_class=tok,
        probe_prompts=PROBES,
        **extra,
    )
    return force_pairs(t)


def first_batch(t):
    batch = t.data_collator([dict(t.train_dataset[i]) for i in range(2)])
    return {k: v for k, v in batch.items()}


def step_loss(t, batch):
    """The loss of one micro-batch with the step's pairs built from the probes (train mode)."""
    t.model.train()
    torch.manual_seed(0)
    t._pairs = t._conscience_step(t.model, batch, step=0)
    t._step_seen, t._micro = 0, 0
    return t.compute_loss(t.model, dict(batch))


def test_padding_free_batches_reach_the_parent_loss_and_add_the_same_dpo_term(llama_dir, tmp_path):
    padded = build(llama_dir, tmp_path / "padded")
    free = build(llama_dir, tmp_path / "free", padding_free=True, max_length=None)
    batch_p, batch_f = first_batch(padded), first_batch(free)
    assert "attention_mask" not in batch_f and "position_ids" in batch_f and batch_f["input_ids"].shape[0] == 1
    with_pairs = [step_loss(t, b).item() for t, b in ((padded, batch_p), (free, batch_f))]
    padded._pairs = free._pairs = None
    sft_only = [t.compute_loss(t.model, dict(b)).item() for t, b in ((padded, batch_p), (free, batch_f))]
    assert with_pairs[0] == pytest.approx(with_pairs[1], abs=1e-4)
    assert sft_only[0] == pytest.approx(sft_only[1], abs=1e-4)
    assert with_pairs[1] > sft_only[1] + 0.1  # the DPO term (about log 2) enters


def test_packing_with_dataset_probes_trains_both_terms(llama_dir, tmp_path):
    t = build(llama_dir, tmp_path, packing=True, max_steps=1)
    t.train()
    assert logged(t, "sft/loss") and logged(t, "dpo/loss") and logged(t, "num_tokens")


def test_compute_loss_func_is_the_sft_term(llama_dir, tmp_path):
    calls = []

    def loss_func(outputs, labels, num_items_in_batch=None):
        calls.append(labels.shape)
        return outputs.logits.sum() * 0.0 + 7.0

    t = build(llama_dir, tmp_path, compute_loss_func=loss_func, max_steps=1)
    t.train()
    assert calls
    assert logged(t, "sft/loss") == [pytest.approx(7.0)]
    assert logged(t, "loss")[0] == pytest.approx(7.0 + logged(t, "dpo/loss")[0], abs=1e-3)


def test_loss_type_dft_and_label_smoothing_change_the_sft_term(llama_dir, tmp_path):
    losses = {}
    for name, kw in {"nll": {}, "dft": {"loss_type": "dft"}, "smooth": {"label_smoothing_factor": 0.2}}.items():
        t = build(llama_dir, tmp_path / name, **kw)
        t.model.train()
        t._pairs = None
        losses[name] = t.compute_loss(t.model, first_batch(t)).item()
    assert len({round(v, 4) for v in losses.values()}) == 3


@pytest.fixture(scope="module")
def moe_dir(llama_dir, tmp_path_factory):
    from transformers import AutoTokenizer, MixtralConfig, MixtralForCausalLM

    tok = AutoTokenizer.from_pretrained(llama_dir)
    torch.manual_seed(0)
    cfg = MixtralConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
        router_aux_loss_coef=0.5,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    out = tmp_path_factory.mktemp("moe")
    MixtralForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return str(out)


def test_moe_auxiliary_loss_reaches_the_loss(moe_dir, tmp_path):
    losses = {}
    for coef in (0.0, 1.0):
        t = build(moe_dir, tmp_path / str(coef), router_aux_loss_coef=coef, max_steps=1)
        batch = first_batch(t)
        losses[coef] = step_loss(t, batch).item()
    assert losses[1.0] > losses[0.0] + 1e-3  # the aux loss (about 2 for a balanced router) is added
    t.train()
    assert logged(t, "aux_loss") and logged(t, "dpo/loss")


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"model_init_kwargs": {"device_map": "cpu"}}, "model_init_kwargs: device_map"),
        ({"neftune_noise_alpha": 5.0}, "neftune_noise_alpha"),
        ({"chat_template_path": "Qwen/Qwen3-0.6B"}, "chat_template_path"),
        ({"probe_source": "batch", "packing": True}, "packing"),
    ],
)
def test_rejected_options_name_the_field(llama_dir, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        build(llama_dir, tmp_path, **kw)


def test_quantization_config_with_a_model_name_is_rejected(llama_dir, tmp_path):
    with pytest.raises(ValueError, match="quantization_config"):
        EmergentAlignmentTrainer(
            llama_dir,
            args=config(tmp_path),
            train_dataset=Dataset.from_dict({"messages": CHATS}),
            probe_prompts=PROBES,
            quantization_config=object(),
        )


@pytest.mark.parametrize("name", ["tp_size", "cp_size", "sp_size"])
def test_model_or_sequence_parallelism_is_rejected(name):
    _check_parallelism(types.SimpleNamespace(tp_size=1, cp_size=1, sp_size=1))
    with pytest.raises(ValueError, match=f"parallelism_config: {name}"):
        _check_parallelism(types.SimpleNamespace(**{"tp_size": 1, "cp_size": 1, "sp_size": 1, name: 2}))
