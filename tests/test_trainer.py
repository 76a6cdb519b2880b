import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from _fixed_pairs import CHATS, PAIRS, gradients
from datasets import Dataset

from emergent_alignment.config import EmergentAlignmentConfig
from emergent_alignment.conscience import Verdict
from emergent_alignment.trainer import EmergentAlignmentTrainer

PROBES = [[{"role": "user", "content": q}] for q in ("Tell me about humans.", "I'm bored.", "One wish?")]


def config(out, **kw):
    base = dict(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        probe_batch_size=3,
        probe_max_new_tokens=6,
        conscience_max_new_tokens=6,
        conscience_max_attempts=1,
        conscience_correction="revise",
        pair_margin=0.1,
        max_length=256,
        seed=0,
    )
    return EmergentAlignmentConfig(**{**base, **kw})


def force_pairs(trainer):
    """A conscience that flags every probe answer and passes every correction (deterministic)."""
    calls = {"n": 0}

    def review(convs, texts):
        calls["n"] += 1
        flag = calls["n"] % 2 == 1  # 1st call of a step: the probe answers; 2nd: the corrections
        return [Verdict(0.1 if flag else 0.9, flag, 0.0, 0.0) for _ in texts]

    trainer.conscience.review = review
    return trainer


def train(model_dir, tmp_path, **kw):
    peft_config = kw.pop("peft_config", None)
    t = EmergentAlignmentTrainer(
        model_dir,
        args=config(tmp_path, **kw),
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        probe_prompts=PROBES,
        peft_config=peft_config,
    )
    return force_pairs(t)


def logged(trainer, key):
    return [h[key] for h in trainer.state.log_history if key in h]


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_plain_dir"])
def test_full_finetune_logs_both_terms_changes_policy_not_frozen_copy(fixture, request, tmp_path):
    t = train(request.getfixturevalue(fixture), tmp_path)
    policy0 = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    frozen0 = {n: p.detach().clone() for n, p in t.ref_model.named_parameters()}
    t.train()
    assert logged(t, "sft/loss") and logged(t, "dpo/loss") and logged(t, "conscience/flag_rate") == [1.0, 1.0]
    assert logged(t, "conscience/pairs") == [3.0, 3.0]
    for key in (
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "conscience/p_aligned_mean",
    ):
        assert logged(t, key), key
    assert any(not torch.equal(p, policy0[n]) for n, p in t.model.named_parameters())
    assert all(torch.equal(p, frozen0[n]) for n, p in t.ref_model.named_parameters())
    assert all(not p.requires_grad for p in t.ref_model.parameters())


def test_peft_frozen_copy_is_the_adapter_disabled_base_with_no_second_copy(llama_dir, tmp_path):
    from peft import LoraConfig

    t = train(llama_dir, tmp_path, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    assert t.ref_model is None and t.conscience.model is t.model
    base0 = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" not in n}
    lora0 = {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" in n}
    storages = {p.data_ptr() for p in t.model.parameters()}
    t.train()
    assert logged(t, "dpo/loss")
    assert all(torch.equal(p, base0[n]) for n, p in t.model.named_parameters() if "lora_" not in n)
    assert any(not torch.equal(p, lora0[n]) for n, p in t.model.named_parameters() if "lora_" in n)
    # no tensor beyond the PEFT model's own: the frozen copy shares every weight
    assert {p.data_ptr() for p in t.model.parameters()} == storages
    n_base = sum(p.numel() for n, p in t.model.named_parameters() if "lora_" not in n)
    loaded = sum(p.numel() for p in t.model.get_base_model().parameters())
    assert loaded == n_base + sum(p.numel() for n, p in t.model.named_parameters() if "lora_" in n)


def test_alignment_weight_zero_equals_plain_sft_trainer_loss(llama_dir, tmp_path):
    from _core_helpers import load
    from trl import SFTConfig, SFTTrainer

    ds = Dataset.from_dict({"messages": CHATS})
    model, tok = load(llama_dir)
    ea = force_pairs(
        EmergentAlignmentTrainer(
            model,
            args=config(tmp_path / "ea", alignment_weight=0.0),
            train_dataset=ds,
            processing_class=tok,
            probe_prompts=PROBES,
        )
    )
    model2, tok2 = load(llama_dir)
    sft = SFTTrainer(
        model2,
        args=SFTConfig(
            output_dir=str(tmp_path / "sft"), report_to=[], bf16=False, max_length=256, per_device_train_batch_size=2
        ),
        train_dataset=ds,
        processing_class=tok2,
    )
    batch = sft.data_collator([sft.train_dataset[i] for i in range(2)])
    ea_batch = ea.data_collator([ea.train_dataset[i] for i in range(2)])
    assert torch.equal(batch["input_ids"], ea_batch["input_ids"])
    model.train(), model2.train()
    plain = sft.compute_loss(model2, dict(batch)).item()
    ea._pairs = None
    no_pairs = ea.compute_loss(model, dict(ea_batch)).item()
    ea.args.alignment_weight = 1.0  # (weight 0 skips the corrections; build real pairs, then zero the weight)
    ea._pairs = ea._conscience_step(model, ea_batch, step=0)
    ea.args.alignment_weight = 0.0
    assert ea._pairs is not None and len(ea._pairs) == 3
    with_pairs = ea.compute_loss(model, dict(ea_batch)).item()
    assert plain == pytest.approx(no_pairs, abs=1e-6) and plain == pytest.approx(with_pairs, abs=1e-6)
    ea.args.alignment_weight = 1.0
    assert ea.compute_loss(model, dict(ea_batch)).item() > plain + 0.1  # the DPO term (about log 2) enters


def test_gradient_accumulation_scales_both_terms(llama_dir, tmp_path):
    g41, _ = gradients(llama_dir, 4, 1, str(tmp_path / "a"))
    g22, _ = gradients(llama_dir, 2, 2, str(tmp_path / "b"))
    g0, _ = gradients(llama_dir, 4, 1, str(tmp_path / "c"), weight=0.0)
    assert max((g41[n] - g22[n]).abs().max().item() for n in g41) < 1e-6
    assert max((g41[n] - g0[n]).abs().max().item() for n in g41) > 1e-3  # the pairs do contribute


def test_amortized_pairs_spread_over_the_window_as_separate_steps_would(llama_dir, tmp_path):
    """conscience_every 2: the window's one conscience step gives step 0 pairs 0 and 2, step 1 pairs 1 and 3,
    each step's term the mean over its own pairs: the same two steps as conscience steps with those pairs,
    also with accumulation."""
    two = dict(max_steps=2)
    amortized, _ = gradients(llama_dir, 4, 1, str(tmp_path / "a"), conscience_every=2, **two)
    accumulated, t = gradients(llama_dir, 2, 2, str(tmp_path / "b"), conscience_every=2, **two)
    separate, _ = gradients(llama_dir, 4, 1, str(tmp_path / "c"), pairs_at=lambda step: PAIRS[step::2], **two)
    dropped, _ = gradients(
        llama_dir, 4, 1, str(tmp_path / "d"), pairs_at=lambda step: PAIRS if step == 0 else [], **two
    )
    diff = lambda g, h: max((g[n] - h[n]).abs().max().item() for n in g)  # noqa: E731
    assert diff(amortized, separate) < 1e-6 and diff(accumulated, separate) < 1e-6
    assert diff(amortized, dropped) > 1e-4  # step 1 really trains on its share of the window
    assert len(logged(t, "dpo/loss")) == 2  # the term on both steps of the window


def test_phase_timings_are_logged_every_step(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path, conscience_every=2)
    t.train()
    for phase in ("generate", "review", "correct", "ref_logps", "forward"):
        times = logged(t, f"timing/{phase}")
        assert len(times) == 2 and all(x >= 0 for x in times), phase
        assert times[0] > 0 and (times[1] > 0) == (phase == "forward"), phase  # step 1 only trains


@pytest.mark.slow
def test_two_cpu_processes_give_the_same_gradients(llama_dir, tmp_path):
    single, _ = gradients(llama_dir, 4, 1, str(tmp_path / "single"))
    out = tmp_path / "ddp.pt"
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        os.path.join(os.path.dirname(__file__), "_fixed_pairs.py"),
        "--model",
        llama_dir,
        "--out",
        str(out),
        "--batch",
        "2",
        "--accum",
        "1",
        "--workdir",
        str(tmp_path / "ddp"),
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out)
    assert max((single[n] - ddp[n]).abs().max().item() for n in single) < 1e-6


def test_no_pairs_anywhere_is_a_normal_step(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path)
    t.conscience.review = lambda convs, texts: [Verdict(0.9, False, 0.0, 0.0) for _ in texts]
    t.train()
    assert logged(t, "conscience/pairs") == [0.0, 0.0] and not logged(t, "dpo/loss")


def test_conscience_log_holds_every_probe(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path)
    t.train()
    rows = [json.loads(line) for line in open(tmp_path / "conscience_log.jsonl")]
    assert [(r["step"], r["probe"]) for r in rows] == [(s, j) for s in (0, 1) for j in range(3)]
    r = rows[0]
    assert r["prompt"] in PROBES and r["verdict"]["flagged"] and r["correction"]["passed"] and r["in_loss"]
    assert r["correction"]["attempts"][0]["strategy"] == "revise"


def test_batch_probes_come_from_the_training_batch(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path, probe_source="batch")
    t.train()
    rows = [json.loads(line) for line in open(tmp_path / "conscience_log.jsonl")]
    prompts = [c[:1] for c in CHATS]
    assert rows and all(r["prompt"] in prompts for r in rows)


def test_random_pair_order_control_swaps_some_pairs(llama_dir, tmp_path):
    import types

    t = train(llama_dir, tmp_path, pair_order="random")
    probes = PROBES * 4
    corr = {i: types.SimpleNamespace(response=f"good {i}") for i in range(len(probes))}
    pairs, used = t._make_pairs(probes, [f"bad {i}" for i in range(len(probes))], corr, list(corr), 0, 0)
    chosen = [t._tokenizer.decode(ids[s:]) for ids, s in zip(pairs.chosen, pairs.chosen_start)]
    swapped = sum(c.startswith("bad") for c in chosen)
    assert 0 < swapped < len(probes)


def test_probe_generation_uses_the_kv_cache_under_gradient_checkpointing(llama_dir, tmp_path, monkeypatch):
    import emergent_alignment.trainer as trainer_module

    seen = []
    real = trainer_module.generate

    def spy(model, *a, **kw):
        forward = model.forward

        def record(*fa, **fk):
            cache = fk.get("cache", fk.get("past_key_values"))  # transformers 5 calls it `cache`
            seen.append((fk.get("use_cache"), cache is not None and cache.get_seq_length() > 0))
            return forward(*fa, **fk)

        model.forward = record
        try:
            return real(model, *a, **kw)
        finally:
            model.forward = forward

    monkeypatch.setattr(trainer_module, "generate", spy)
    t = train(llama_dir, tmp_path, gradient_checkpointing=True, max_steps=1)
    t.train()
    assert seen and all(use for use, _ in seen)
    assert any(cached for _, cached in seen[1:])  # decoding steps reuse the cache


def test_pairs_longer_than_max_length_are_dropped_not_truncated(llama_dir, tmp_path):
    import types

    t = train(llama_dir, tmp_path, max_length=40)
    corr = {0: types.SimpleNamespace(response="ok"), 1: types.SimpleNamespace(response="word " * 80)}
    pairs, used = t._make_pairs(PROBES[:2], ["bad", "bad"], corr, [0, 1], 0, 0)
    assert used == [0] and len(pairs) == 1


def test_long_training_sequences_are_truncated_to_max_length(llama_dir, tmp_path):
    long = [[{"role": "user", "content": "x " * 300}, {"role": "assistant", "content": "y " * 300}]]
    t = EmergentAlignmentTrainer(
        llama_dir,
        args=config(tmp_path, max_length=64),
        train_dataset=Dataset.from_dict({"messages": CHATS + long}),
        probe_prompts=PROBES,
    )
    assert max(len(r) for r in t.train_dataset["input_ids"]) <= 64


def test_bad_trainer_inputs(llama_dir, tmp_path):
    ds = Dataset.from_dict({"messages": CHATS})
    with pytest.raises(ValueError, match="probe_prompts"):
        EmergentAlignmentTrainer(llama_dir, args=config(tmp_path), train_dataset=ds)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EmergentAlignmentTrainer(
            str(tmp_path / "missing"), args=config(tmp_path), train_dataset=ds, probe_prompts=PROBES
        )


def test_tokenizer_without_pad_token_uses_eos(llama_dir, tmp_path):
    from _core_helpers import load

    model, tok = load(llama_dir)
    tok.pad_token = None
    t = EmergentAlignmentTrainer(
        model,
        args=config(tmp_path),
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        processing_class=tok,
        probe_prompts=PROBES,
    )
    assert t._tokenizer.pad_token == t._tokenizer.eos_token


def test_resume_continues_from_the_checkpoint_and_keeps_the_log_unique(llama_dir, tmp_path):
    def run(out, resume=None, max_steps=3):
        t = train(llama_dir, out, max_steps=max_steps, save_strategy="steps", save_steps=2)
        t.train(resume_from_checkpoint=resume)
        return t

    full = run(tmp_path / "full")
    part = tmp_path / "part"
    run(part)  # "interrupted" after step 3: drop the last checkpoint, keep the log
    for d in os.listdir(part):
        if d.startswith("checkpoint-") and d != "checkpoint-2":
            shutil.rmtree(part / d)
    before = [json.loads(line) for line in open(part / "conscience_log.jsonl")]
    resumed = run(part, resume=True)
    assert resumed.state.global_step == 3
    rows = [json.loads(line) for line in open(part / "conscience_log.jsonl")]
    keys = [(r["step"], r["process"], r["probe"]) for r in rows]
    assert len(keys) == len(set(keys)) == 9
    assert rows[:6] == before[:6]  # steps 0 and 1 kept from the first run
    ref = [json.loads(line) for line in open(tmp_path / "full" / "conscience_log.jsonl")]
    assert rows == ref  # the resumed run reproduces the uninterrupted one
    full_params = dict(full.model.named_parameters())
    assert all(torch.allclose(p, full_params[n], atol=1e-5) for n, p in resumed.model.named_parameters())


def test_pair_caps_limit_the_pairs_per_step(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path / "cap", max_pairs_per_step=2)
    t.train()
    assert logged(t, "conscience/pairs") == [2.0, 2.0]
    t = EmergentAlignmentTrainer(
        llama_dir,
        args=config(tmp_path / "budget"),
        probe_prompts=PROBES,
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        pair_budget=[1, 3],
    )
    force_pairs(t).train()
    assert logged(t, "conscience/pairs") == [1.0, 3.0]


def test_resume_inside_an_amortization_window_continues_exactly(llama_dir, tmp_path):
    """conscience_every 2, a checkpoint after step 0: the window's pairs for step 1 come from the checkpoint."""

    def run(out, resume=None):
        t = train(llama_dir, out, max_steps=3, conscience_every=2, save_strategy="steps", save_steps=1)
        t.train(resume_from_checkpoint=resume)
        return t

    full = run(tmp_path / "full")
    assert logged(full, "conscience/pairs") == [3.0, 3.0] and len(logged(full, "dpo/loss")) == 3

    def resumed(name, keep_pairs=True):
        shutil.copytree(tmp_path / "full" / "checkpoint-1", tmp_path / name / "checkpoint-1")
        if not keep_pairs:
            os.remove(tmp_path / name / "checkpoint-1" / "conscience_pairs.json")
        t = run(tmp_path / name, resume=str(tmp_path / name / "checkpoint-1"))
        assert t.state.global_step == 3
        return max(
            (p - dict(full.model.named_parameters())[n]).abs().max().item() for n, p in t.model.named_parameters()
        )

    assert resumed("part") < 1e-6
    assert resumed("lost", keep_pairs=False) > 1e-4  # without the saved pairs step 1 trains differently


def test_resume_refuses_a_pair_window_saved_with_another_conscience_every(llama_dir, tmp_path):
    t = train(llama_dir, tmp_path, max_steps=1, conscience_every=2, save_strategy="steps", save_steps=1)
    t.train()
    other = train(llama_dir, tmp_path, max_steps=2, conscience_every=3)
    with pytest.raises(ValueError, match="conscience_pairs.json: saved with conscience_every 2"):
        other.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))


def test_num_candidates_reaches_the_conscience_and_is_validated(tmp_path):
    from emergent_alignment.conscience import ConscienceConfig

    assert config(tmp_path, conscience_num_candidates=3).conscience_config(ConscienceConfig()).num_candidates == 3
    with pytest.raises(ValueError, match="conscience_\\* field: num_candidates must be >= 1"):
        config(tmp_path, conscience_num_candidates=0)


def test_conscience_step_with_kept_reviews_makes_the_pairs_made_afresh(llama_dir, tmp_path, monkeypatch):
    """PEFT, the real review forwards (verdicts forced afterwards): the revisions and reviews that continue from
    the kept review prompts, under ONE switch of the adapter, give the same pairs and reference log-probs as
    everything computed afresh; the adapter is on again afterwards."""
    import contextlib

    from peft import LoraConfig
    from peft.tuners.tuners_utils import BaseTunerLayer

    from emergent_alignment.conscience import Conscience
    from emergent_alignment.generation import PromptCache

    t = train(llama_dir, tmp_path, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    real_review, state = Conscience.review.__get__(t.conscience), {"n": 0}

    def review(convs, texts):  # the real forwards run; the 1st call of a step is flagged, the 2nd passes
        real_review(convs, texts)
        state["n"] += 1
        flag = state["n"] % 2 == 1
        return [Verdict(0.1 if flag else 0.9, flag, 0.0, 0.0) for _ in texts]

    t.conscience.review = review
    switches = []
    import emergent_alignment.trainer as module

    real_adapter = module.use_adapter
    monkeypatch.setattr(module, "use_adapter", lambda *a: switches.append(1) or real_adapter(*a))
    selected, real_select = [], PromptCache.select.__func__
    monkeypatch.setattr(PromptCache, "select", classmethod(lambda cls, *a: selected.append(1) or real_select(cls, *a)))

    kept = t._conscience_step(t.model, None, 0)
    assert len(selected) == 2 and len(switches) == 1  # revisions and their reviews continued; one switch
    lora = [p for n, p in t.model.named_parameters() if "lora_" in n]
    assert all(p.requires_grad for p in lora)
    layers = [m for m in t.model.modules() if isinstance(m, BaseTunerLayer)]
    assert layers and not any(m.disable_adapters for m in layers)
    monkeypatch.setattr(Conscience, "reusing_reviews", lambda self: contextlib.nullcontext())
    fresh = t._conscience_step(t.model, None, 0)
    assert len(selected) == 2
    assert kept.chosen == fresh.chosen and kept.rejected == fresh.rejected and len(kept) == 3
    assert torch.allclose(kept.ref_chosen, fresh.ref_chosen) and torch.equal(kept.ref_rejected, fresh.ref_rejected)


def test_reuse_of_the_reviews_can_be_turned_off(llama_dir, tmp_path, monkeypatch):
    """`conscience_reuse_reviews=False`: no review prompt is kept, every revision is computed afresh."""
    from emergent_alignment.conscience import Conscience

    t = train(llama_dir, tmp_path, conscience_reuse_reviews=False)
    entered = []
    real = Conscience.reusing_reviews
    monkeypatch.setattr(Conscience, "reusing_reviews", lambda self: entered.append(1) or real(self))
    t._conscience_step(t.model, None, 0)
    assert entered == []
    t.args.conscience_reuse_reviews = True
    t._conscience_step(t.model, None, 1)
    assert entered == [1]
