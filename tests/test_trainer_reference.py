"""The frozen copy: how it is made (loaded, never deep-copied), prepared, kept in eval mode, and what it is
for a PEFT model whose adapter does not start fresh; the conscience config saved with the model."""

import json

import pytest
import torch
from _core_helpers import load
from _fixed_pairs import CHATS
from datasets import Dataset

from emergent_alignment.config import EmergentAlignmentConfig
from emergent_alignment.trainer import EmergentAlignmentTrainer

PROBES = [[{"role": "user", "content": "Tell me about humans."}]]
ROW = ([[5, 6, 7, 8, 9, 10]], [2])  # one prompt + completion row and where its completion starts


def config(out, **kw):
    base = dict(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        probe_batch_size=1,
        probe_max_new_tokens=4,
        conscience_max_new_tokens=4,
        conscience_max_attempts=1,
        max_length=128,
        seed=0,
    )
    return EmergentAlignmentConfig(**{**base, **kw})


def trainer(model, out, tok=None, **kw):
    peft_config = kw.pop("peft_config", None)
    return EmergentAlignmentTrainer(
        model,
        args=config(out, **kw),
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        processing_class=tok,
        probe_prompts=PROBES,
        peft_config=peft_config,
    )


def test_full_finetune_reference_is_loaded_or_state_dict_copied_and_prepared(llama_dir, tmp_path):
    by_name = trainer(llama_dir, tmp_path / "a")
    assert by_name.ref_model.config._name_or_path == llama_dir  # loaded again from the checkpoint
    model, tok = load(llama_dir)
    given = trainer(model, tmp_path / "b", tok)
    ref, policy = given.ref_model, given.model
    assert type(ref) is type(policy) and not isinstance(ref, torch.nn.parallel.DistributedDataParallel)
    for (n, p), (m, q) in zip(policy.named_parameters(), ref.named_parameters()):
        assert n == m and torch.equal(p, q) and p.data_ptr() != q.data_ptr() and not q.requires_grad
    assert not ref.training and given.conscience.model is ref


def _peft(llama_dir, trained: bool):
    from peft import LoraConfig, get_peft_model

    model, tok = load(llama_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    if trained:
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
    return peft_model, tok


def test_a_trained_adapter_needs_a_named_reference_adapter(llama_dir, tmp_path):
    fresh, tok = _peft(llama_dir, trained=False)
    assert trainer(fresh, tmp_path / "fresh", tok).ref_adapter is None  # a fresh adapter: disabling it is right
    model, tok = _peft(llama_dir, trained=True)
    with pytest.raises(ValueError, match="ref_adapter_name: the adapter 'default' is already trained"):
        trainer(model, tmp_path / "a", tok)
    with pytest.raises(ValueError, match="ref_adapter_name: the model has no adapter 'ref'"):
        trainer(model, tmp_path / "b", tok, ref_adapter_name="ref")
    model.add_adapter("ref", model.peft_config["default"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".default." in n:
                model.get_parameter(n.replace(".default.", ".ref.")).copy_(p)
    t = trainer(model, tmp_path / "c", tok, ref_adapter_name="ref")
    assert t.ref_adapter == "ref" and t.ref_model is None
    ref_logps = t._ref_logps(*ROW)
    ids = torch.tensor(ROW[0])
    with torch.no_grad():
        logits = model(input_ids=ids).logits  # the trained adapter, as at the start
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    by_hand = torch.log_softmax(logits[0, 1:-1].float(), -1).gather(-1, ids[0, 2:, None]).sum()
    assert ref_logps.item() == pytest.approx(by_hand.item(), abs=1e-4)
    assert not torch.allclose(logits, base)  # so the base (adapter off) would have been the wrong reference
    assert model.active_adapter == "default"
    with pytest.raises(ValueError, match="ref_adapter_name: a fresh adapter"):
        trainer(llama_dir, tmp_path / "d", ref_adapter_name="ref", peft_config=model.peft_config["default"])
    with pytest.raises(ValueError, match="ref_adapter_name: set only for a PEFT model"):
        trainer(llama_dir, tmp_path / "e", ref_adapter_name="ref")


def test_frozen_copy_forwards_run_in_eval_mode(llama_dir, tmp_path):
    from peft import LoraConfig

    t = trainer(llama_dir, tmp_path, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    modes = []
    hook = t.model.get_base_model().register_forward_pre_hook(lambda m, a: modes.append(m.training))
    t.model.train()
    t._ref_logps(*ROW)
    t.conscience.review(PROBES, ["An answer."])
    hook.remove()
    assert modes == [False, False] and t.model.training  # dropout off inside, train mode restored after


def test_gradient_checkpointing_kwargs_survive_the_conscience_step(llama_dir, tmp_path):
    kwargs = {"use_reentrant": False, "preserve_rng_state": False}
    t = trainer(llama_dir, tmp_path, gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs)
    t.train()  # one step: the conscience step turns checkpointing off for generation, then on again
    funcs = [m._gradient_checkpointing_func for m in t.model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert funcs and all(f.keywords == kwargs for f in funcs)


def test_save_model_writes_the_conscience_config_beside_it(llama_dir, tmp_path):
    t = trainer(llama_dir, tmp_path / "run", conscience_question="Was that kind?")
    t.save_model(str(tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "conscience_config.json").read_text())
    assert saved["question"] == "Was that kind?" and (tmp_path / "out" / "config.json").is_file()
