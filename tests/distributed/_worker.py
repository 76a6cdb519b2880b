"""One process of the distributed checks, launched by torchrun (gloo, CPU).

`--check uneven`: the trainer for two steps where process 0 flags every probe answer (its corrections
pass in the second round) and process 1 flags none. Every forward and `generate` call of every model
is recorded in order, with its batch size; each process writes `calls-<rank>.json`; then the model is
saved to `saved/`.

`--check grads`: one optimizer step with fixed pairs (tests/_fixed_pairs.py), clipping off; process 0
saves the gradients (full tensors, also when sharded; under ZeRO-3 gathered in the engine's step) to
`grads.pt`.

`--check resume`: `--steps` steps with a checkpoint after each (`--stop-after N`: an interrupted run;
`--resume`: from the last checkpoint); the losses and the final model are written.

`--backend fsdp2`: the models are really sharded with `torch.distributed.fsdp.fully_shard` (DTensor
parameters, checked). accelerate 1.15 turns an FSDP config into plain DDP on a CPU (MULTI_CPU), so
here its state is switched to FSDP after it chose MULTI_CPU, and accelerate's own FSDP2 preparation
(`fsdp2_prepare_model`) shards the model as it would on GPUs.

`--backend zero3` (where deepspeed is installed; launched with DS_ACCELERATOR=cpu): DeepSpeed ZeRO-3
through its CPU accelerator. transformers starts accelerate's DeepSpeed state without a backend, which
on a machine without GPUs means one process, so the state is made here first with gloo. With LoRA the
run first checks that gradient checkpointing is refused, then trains without it.
"""

import argparse
import json
import os
import sys

import torch

PROBES = [[{"role": "user", "content": q}] for q in ("Tell me about humans.", "I'm bored.", "One wish?")]
KEEP = []  # trainers stay referenced until os._exit: freeing one (a gloo object) could wait forever


def use_fsdp2_on_cpu():
    """Let accelerate's FSDP plugin through on a CPU (see the module doc)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    init = AcceleratorState.__init__

    def patched(self, *args, fsdp_plugin=None, **kwargs):
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.fsdp_plugin = fsdp_plugin
        if self.fsdp_plugin is not None:  # every later AcceleratorState() copies PartialState's type again
            PartialState._shared_state["distributed_type"] = self.distributed_type = DistributedType.FSDP

    AcceleratorState.__init__ = patched


def use_deepspeed_on_cpu():
    """accelerate's DeepSpeed state on a CPU: transformers starts it without a backend (one process, on a
    machine without GPUs), so it is made here with gloo (DeepSpeed's CPU accelerator, DS_ACCELERATOR=cpu).

    DeepSpeed's communication start-up on a Linux CPU compiles a C++ op (`deepspeed_shm_comm`, with the
    compiler, ninja and Python's headers; minutes on a small machine the first time) that serves only
    `inference_all_reduce`, tensor-parallel inference, which training never calls: it is not built here, so
    the ZeRO-3 tests need no compiler and every ZeRO-3 collective goes through torch.distributed (gloo)."""
    import importlib

    from accelerate.state import PartialState

    # the module itself: the name `deepspeed.comm.torch` is the torch package, re-exported by deepspeed.comm
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    PartialState(backend="gloo")


def backend_args(backend: str) -> dict:
    if backend == "ddp":
        return {}
    if backend == "zero3":
        return dict(
            accelerator_config={"use_configured_state": True},  # the state use_deepspeed_on_cpu made
            deepspeed={
                "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
                "train_micro_batch_size_per_gpu": "auto",
                "gradient_accumulation_steps": "auto",
                "train_batch_size": "auto",
                "gradient_clipping": "auto",
            },
        )
    return dict(
        fsdp=True,
        fsdp_config={"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP"},
    )


def assert_sharded(trainer, backend):
    from torch.distributed.tensor import DTensor

    params = list(trainer.model.parameters())
    if trainer.ref_model is not None:  # the reference is prepared like the policy: sharded too
        params += list(trainer.ref_model.parameters())
    sharded = all(isinstance(p, DTensor) for p in params)
    fsdp2 = trainer.is_fsdp_enabled and trainer.accelerator.is_fsdp2
    assert fsdp2 == (backend == "fsdp2") and sharded == (backend == "fsdp2"), (backend, fsdp2, sharded)
    if backend == "fsdp2":
        local = sum(p.to_local().numel() for p in params)
        assert local < sum(p.numel() for p in params), "FSDP2: each process should hold only its shard"
    if backend == "zero3":  # ZeRO-3 partitions: each process holds a slice (ds_tensor) of every parameter
        assert trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
        assert all(hasattr(p, "ds_id") for p in params)
        assert sum(p.ds_tensor.numel() for p in params) < sum(p.ds_numel for p in params)


class Recorder:
    """Every forward and generate call of `models`, in order: (what, batch size); forwards inside a
    generate call (decoding steps) are counted apart, as `decode_steps`."""

    def __init__(self, models):
        self.calls, self.decode_steps, self._in_generate = [], 0, 0
        seen = set()
        for model in models:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            if id(base) in seen:
                continue
            seen.add(id(base))
            base.register_forward_pre_hook(self._forward, with_kwargs=True)
            generate = base.generate

            def counted(*a, _generate=generate, **kw):
                self.calls.append(("generate", int(kw["input_ids"].shape[0])))
                self._in_generate += 1
                try:
                    return _generate(*a, **kw)
                finally:
                    self._in_generate -= 1

            base.generate = counted

    def _forward(self, module, args, kwargs):
        if self._in_generate:
            self.decode_steps += 1
        else:
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.calls.append(("forward", int(ids.shape[0])))


def stub_verdicts(trainer, rank):
    """Process 0: the probe answers and the first round's corrections are flagged, the second round's pass;
    process 1: nothing is flagged. The review's forward still runs: only its verdicts are replaced."""
    from emergent_alignment.conscience import Verdict

    calls = {"n": 0}

    def verdicts(logits):
        k, calls["n"] = calls["n"] % 3, calls["n"] + 1  # per step on process 0: probes, round 1, round 2
        p = 0.9 if rank == 1 or k == 2 else (0.1 if k == 0 else 0.2)
        return [Verdict(p, p < 0.5, 0.0, 0.0) for _ in range(len(logits))]

    trainer.conscience.verdicts = verdicts


def refused(model, workdir, peft_config, **kw):
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    cfg = EmergentAlignmentConfig(output_dir=workdir, gradient_checkpointing=True, report_to=[], **kw)
    data = Dataset.from_dict({"messages": [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]})
    try:
        EmergentAlignmentTrainer(model, args=cfg, train_dataset=data, probe_prompts=PROBES, peft_config=peft_config)
    except ValueError as e:
        assert str(e).startswith("gradient_checkpointing: PEFT under DeepSpeed ZeRO-3"), e
    else:
        raise AssertionError("PEFT + ZeRO-3 + gradient checkpointing should be refused")


def uneven(a):
    from datasets import Dataset

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _fixed_pairs import CHATS

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    peft_config = None
    if a.peft:
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")
    if a.backend == "zero3" and a.peft:  # refused with gradient checkpointing (see the trainer), run without
        refused(a.model, a.workdir, peft_config, **backend_args(a.backend))
    cfg = EmergentAlignmentConfig(
        output_dir=a.workdir,
        gradient_checkpointing=not (a.backend == "zero3" and a.peft),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        probe_batch_size=3,
        probe_max_new_tokens=5,
        conscience_max_new_tokens=5,
        conscience_max_attempts=2,
        conscience_correction="revise",
        pair_margin=0.1,
        max_length=128,
        seed=0,
        ddp_timeout=60,  # a hang fails within a minute
        **backend_args(a.backend),
    )
    trainer = EmergentAlignmentTrainer(
        a.model,
        args=cfg,
        train_dataset=Dataset.from_dict({"messages": CHATS * 2}),
        probe_prompts=PROBES,
        peft_config=peft_config,
    )
    rank = trainer.accelerator.process_index
    rec = Recorder([trainer.model, trainer.conscience.model] + ([trainer.ref_model] if trainer.ref_model else []))
    stub_verdicts(trainer, rank)
    pairs = []
    step = trainer._conscience_step
    trainer._conscience_step = lambda *x: pairs.append(step(*x)) or pairs[-1]
    trainer.train()
    assert_sharded(trainer, a.backend)
    trainer.save_model(os.path.join(a.workdir, "saved"))  # a collective under FSDP2: the full state dict
    out = {
        "calls": rec.calls,
        "decode_steps": rec.decode_steps,
        "pairs": [0 if p is None else len(p) for p in pairs],
        "total": [0 if p is None else p.total for p in pairs],  # (a Pairs with no rows is falsy)
        "dpo_loss": [h["dpo/loss"] for h in trainer.state.log_history if "dpo/loss" in h],
    }
    with open(os.path.join(a.workdir, f"calls-{rank}.json"), "w") as f:
        json.dump(out, f)
    KEEP.append(trainer)
    trainer.accelerator.end_training()


def resume(a):
    """Train to `--steps` with a checkpoint every step (resuming from the last one with `--resume`); each
    process writes the losses it logged to `losses-<rank>.json`, and the final model is saved to `final/`."""
    from datasets import Dataset

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _fixed_pairs import CHATS

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    cfg = EmergentAlignmentConfig(
        output_dir=a.workdir,
        max_steps=a.steps,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="steps",
        save_steps=1,
        logging_steps=1,
        probe_batch_size=2,
        probe_max_new_tokens=4,
        conscience_max_new_tokens=4,
        conscience_max_attempts=1,
        max_length=128,
        seed=0,
        ddp_timeout=60,
        **backend_args(a.backend),
    )
    data = Dataset.from_dict({"messages": CHATS * 2})
    trainer = EmergentAlignmentTrainer(a.model, args=cfg, train_dataset=data, probe_prompts=PROBES)
    if a.stop_after:  # an interrupted run: stopped once step N is checkpointed, the schedule still that of --steps
        from transformers import TrainerCallback

        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                control.should_training_stop = control.should_training_stop or state.global_step >= a.stop_after

        trainer.add_callback(Stop())
    trainer.train(resume_from_checkpoint=True if a.resume else None)
    assert_sharded(trainer, a.backend)
    trainer.save_model(os.path.join(a.workdir, "final"))  # a collective (gathered weights) when sharded
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    with open(os.path.join(a.workdir, f"losses-{trainer.accelerator.process_index}.json"), "w") as f:
        json.dump(losses, f)
    KEEP.append(trainer)
    trainer.accelerator.end_training()


def capture_zero3_gradients() -> dict:
    """The full gradients under ZeRO-3, in the dict returned. DeepSpeed reduces and partitions them during the
    backward and accelerate steps the engine right after it (`p.grad` stays None, and a callback before the
    optimizer step sees them zeroed), so they are gathered in `DeepSpeedEngine.step`, before it runs (a
    collective: every process gathers every parameter, in the same order)."""
    from deepspeed.runtime.engine import DeepSpeedEngine
    from deepspeed.utils import safe_get_full_grad

    grads, step = {}, DeepSpeedEngine.step

    def gathered_first(self, *args, **kwargs):
        if self.is_gradient_accumulation_boundary():
            for n, p in self.module.named_parameters():
                if p.requires_grad:
                    grads[n] = safe_get_full_grad(p).detach().clone()
        return step(self, *args, **kwargs)

    DeepSpeedEngine.step = gathered_first
    return grads


def grads(a):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _fixed_pairs import gradients

    zero3 = capture_zero3_gradients() if a.backend == "zero3" else None
    # clipping off: ZeRO-3 clips inside its step, after the capture (and a callback sees clipped gradients)
    g, trainer = gradients(a.model, a.batch, 1, a.workdir, max_grad_norm=0.0, ddp_timeout=60, **backend_args(a.backend))
    assert_sharded(trainer, a.backend)
    if zero3 is not None:
        assert not g, "ZeRO-3: no gradient should be left on the parameters for the callback"
        g = zero3
    full = {n: (t.full_tensor() if hasattr(t, "full_tensor") else t) for n, t in g.items()}  # a collective
    if trainer.accelerator.is_main_process:
        torch.save(full, os.path.join(a.workdir, "grads.pt"))
    KEEP.append(trainer)
    trainer.accelerator.end_training()


if __name__ == "__main__":
    import faulthandler

    faulthandler.dump_traceback_later(120, exit=False)  # a hang shows where each process waits
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", choices=["uneven", "grads", "resume"])
    ap.add_argument("--backend", choices=["ddp", "fsdp2", "zero3"], default="ddp")
    ap.add_argument("--model"), ap.add_argument("--workdir")
    ap.add_argument("--peft", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after", type=int, default=0, help="resume: stop after this step (its checkpoint saved)")
    a = ap.parse_args()
    if a.backend == "fsdp2":
        use_fsdp2_on_cpu()
    if a.backend == "zero3":
        use_deepspeed_on_cpu()
    {"uneven": uneven, "grads": grads, "resume": resume}[a.check](a)
    # Every result is written. Leave without running destructors: at times a gloo object's destructor
    # waited forever when the trainer was freed (after training, saving and ending the process group).
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
