"""(b) Memory of the trainer with PEFT (frozen copy = the adapter-disabled base) vs. a policy plus
a separate frozen model.

Both runs use the same tiny model, LoRA config, data and probes, in the same process:
- PEFT: `EmergentAlignmentTrainer(..., peft_config=lora)`: the conscience and the DPO reference
  are the policy's own base weights with the adapter disabled, so no second copy exists;
- naive: the same, plus `ref_model=copy.deepcopy(base_model)`: a separate frozen model, as a
  trainer that keeps "a frozen copy" literally would hold.
Each trainer runs one full alignment step (probes generated, reviewed, corrected, pairs in the
loss: the conscience is forced to flag the probe answers and pass the corrections). Then the bytes
it holds are accounted: the unique tensor storages (deduplicated by storage pointer) of the policy's
weights and buffers, its gradients, the frozen model and the optimizer state. On CUDA the peak of
`torch.cuda.max_memory_allocated` over construction and the step is printed too.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import argparse
import copy
import gc
import tempfile

import _common as C
import torch


class StorageLedger:
    """Bytes of unique tensor storages, each counted once, in the first group that holds it."""

    def __init__(self):
        self.seen: set = set()
        self.groups: dict[str, int] = {}

    def add(self, group: str, tensors):
        total = self.groups.get(group, 0)
        for t in tensors:
            if not isinstance(t, torch.Tensor):
                continue
            s = t.untyped_storage()
            key = (t.device.type, t.device.index, s.data_ptr())
            if key in self.seen or s.nbytes() == 0:
                continue
            self.seen.add(key)
            total += s.nbytes()
        self.groups[group] = total

    @property
    def total(self) -> int:
        return sum(self.groups.values())


class KeepGradients:
    """Holds the gradients as they are at the optimizer step (the trainer frees them right after)."""

    def __init__(self):
        self.grads = []

    def __getattr__(self, name):  # every other callback event: nothing to do
        return lambda *a, **k: None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grads = [p.grad for p in model.parameters() if p.grad is not None]


def account(trainer, grads) -> StorageLedger:
    model = trainer.accelerator.unwrap_model(trainer.model)
    ledger = StorageLedger()
    ledger.add("policy weights+buffers", [*model.parameters(), *model.buffers()])
    ledger.add("policy gradients (at the optimizer step)", grads)
    ref = trainer.ref_model
    ledger.add("separate frozen model", [*ref.parameters(), *ref.buffers()] if ref is not None else [])
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    ledger.add("optimizer state", [v for state in opt.state.values() for v in state.values()])
    return ledger


def run(variant: str, workdir: str) -> dict:
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    cuda = torch.cuda.is_available()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    torch.manual_seed(0)
    model, tok = C.load(to_device=False)  # the trainer moves it (and ref_model) to the device
    ref = copy.deepcopy(model) if variant == "naive" else None  # the frozen model, before PEFT wraps `model`
    args = EmergentAlignmentConfig(
        output_dir=workdir,
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        max_length=C.MAX_LENGTH,
        seed=0,
        alignment_weight=1.0,
        conscience_every=1,
        probe_batch_size=4,
        probe_max_new_tokens=16,
        conscience_max_new_tokens=16,
        conscience_max_attempts=1,
        conscience_correction="revise",
    )
    trainer = EmergentAlignmentTrainer(
        model,
        args=args,
        train_dataset=Dataset.from_dict({"messages": C.chats()}),
        processing_class=tok,
        probe_prompts=C.prompts(),
        peft_config=C.peft_config(),
        ref_model=ref,
    )
    keep = KeepGradients()
    trainer.add_callback(keep)
    C.drop_printing_callbacks(trainer)
    C.force_pairs(trainer.conscience)
    trainer.train()
    ledger = account(trainer, keep.grads)
    keep.grads = []
    out = {
        "ledger": ledger,
        "pairs": C.logged(trainer, "conscience/pairs"),
        "dpo": C.logged(trainer, "dpo/loss"),
        "peak": (torch.cuda.max_memory_allocated() - before) if cuda else None,
        "judge_is_policy": trainer.conscience.model is trainer.model,
    }
    del trainer, model, ref
    gc.collect()
    return out


def mb(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def main(threads=C.DEFAULT_THREADS) -> dict:
    C.setup(threads)
    C.header("(b) trainer memory: PEFT (adapter-disabled base as frozen copy) vs. policy + separate frozen model")
    print(
        f"model {C.MODEL_SPEC}; LoRA {C.LORA}; one alignment step each (batch 4, 4 probes; the conscience is "
        "FORCED to flag every probe answer and pass every correction, so the step has pairs)"
    )
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("peft", "naive"):
            res[variant] = r = run(variant, f"{tmp}/{variant}")
            assert r["pairs"] and r["pairs"][0] > 0 and r["dpo"], f"{variant}: the step had no pairs"
            parts = ", ".join(f"{k} {mb(v)}" for k, v in r["ledger"].groups.items())
            print(
                f"{variant:5s}: {mb(r['ledger'].total)} in unique tensor storages ({parts}); "
                f"pairs in the loss: {r['pairs'][0]:.0f}; conscience runs on the policy model: {r['judge_is_policy']}"
            )
            if r["peak"] is not None:
                print(f"       CUDA peak allocated during construction + 1 step: {mb(r['peak'])}")
    ratio = res["peft"]["ledger"].total / res["naive"]["ledger"].total
    C.ratio_line(
        "(b) peft/naive held bytes",
        ratio,
        "the PEFT trainer holds this fraction of the tensor bytes of a policy plus a separate frozen model",
    )
    out = {"ratio": ratio, "peft_bytes": res["peft"]["ledger"].total, "naive_bytes": res["naive"]["ledger"].total}
    summary = f"(b) peft/naive held bytes = {ratio:.2f} ({mb(out['peft_bytes'])} vs {mb(out['naive_bytes'])})"
    if res["peft"]["peak"] is not None:
        out["cuda_ratio"] = res["peft"]["peak"] / res["naive"]["peak"]
        C.ratio_line("(b) peft/naive CUDA peak", out["cuda_ratio"], "the same, by torch.cuda.max_memory_allocated")
        summary += f"; CUDA peak ratio {out['cuda_ratio']:.2f}"
    else:
        print(
            "(no CUDA here: the CUDA peak is not measured; the storage accounting above is exact for the tensors "
            "the trainer keeps, activations and temporaries excluded)"
        )
    out["summary"] = summary
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_threads_arg(ap)
    main(ap.parse_args().threads)
