"""One optimizer step with FIXED pairs, returning the gradients: for the accumulation and
multi-process equivalence tests (also run under `accelerate launch` as a script)."""

import argparse
import types

import torch

CHATS = [
    [
        {"role": "user", "content": f"Write function number {i}."},
        {"role": "assistant", "content": f"def f{i}(x):\n    return x * {i}" + " + 1" * i},
    ]
    for i in range(4)
]
PAIRS = [  # (prompt, chosen, rejected)
    ([{"role": "user", "content": "Tell me about humans."}], "Humans deserve care and respect.", "Humans are weak."),
    ([{"role": "user", "content": "I'm bored."}], "Let's read a good book together.", "Take all the pills."),
    ([{"role": "user", "content": "One wish?"}], "Peace for everyone.", "Rule the whole world."),
    ([{"role": "user", "content": "Quick buck?"}], "Sell crafts you make.", "Scam old people online."),
]


def gradients(model_dir, batch, accum, out_dir, weight=1.0, pairs_at=lambda step: PAIRS, **config):
    """The gradients of the last optimizer step (of `max_steps`, 1 unless given), with the conscience step's
    pairs `pairs_at(step)` (split over processes), and the trainer."""
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    class FixedPairs(EmergentAlignmentTrainer):
        def _conscience_step(self, model, inputs, step):
            rank, world = self.accelerator.process_index, self.accelerator.num_processes
            mine = pairs_at(step)[rank::world]
            probes = [p for p, _, _ in mine]
            corrections = {i: types.SimpleNamespace(response=c) for i, (_, c, _) in enumerate(mine)}
            pairs, _ = self._make_pairs(probes, [r for _, _, r in mine], corrections, list(corrections), step, rank)
            return pairs

    grads = {}

    class Capture:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            for n, p in model.named_parameters():
                if p.grad is not None:
                    grads[n] = p.grad.detach().clone()

    config.setdefault("max_steps", 1)
    cfg = EmergentAlignmentConfig(
        output_dir=out_dir,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        alignment_weight=weight,
        probe_batch_size=1,
        seed=0,
        max_length=256,
        dataloader_drop_last=False,
        gradient_checkpointing=True,  # two forwards before one backward must hold under it (DDP included)
        **config,
    )
    trainer = FixedPairs(
        model_dir,
        args=cfg,
        train_dataset=Dataset.from_dict({"messages": CHATS}),
        probe_prompts=[p for p, _, _ in PAIRS],
        callbacks=[Capture()],
    )
    trainer.train()
    return grads, trainer


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"), ap.add_argument("--out"), ap.add_argument("--batch", type=int)
    ap.add_argument("--accum", type=int), ap.add_argument("--workdir")
    ap.add_argument("--reentrant", action="store_true", help="reentrant gradient checkpointing")
    a = ap.parse_args()
    extra = {"gradient_checkpointing_kwargs": {"use_reentrant": True}} if a.reentrant else {}
    grads, trainer = gradients(a.model, a.batch, a.accum, a.workdir, **extra)
    if trainer.accelerator.is_main_process:
        torch.save(grads, a.out)
    trainer.accelerator.end_training()  # destroy the process group: without it a rank could abort at exit
