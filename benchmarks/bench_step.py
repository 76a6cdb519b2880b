"""(c) Wall time of an alignment step vs. a plain SFT step, on the same data, in the same process.

- alignment step: `alignment_weight 1, conscience_every 1`: every optimizer step the policy samples
  answers to `probe_batch_size` probes, the frozen copy reviews them (one forward each), corrects the
  flagged ones (a revision, generated) and reviews the corrections, the frozen copy's reference
  log-probs of the pairs are computed, and the pairs join the SFT rows in one forward/backward.
  The conscience is FORCED to flag every probe answer and pass every correction (its forward passes
  still run), so every step really has `probe_batch_size` pairs in the loss;
- plain SFT step: `alignment_weight 0, conscience_every 0`, same code path, same batches.
Both use the same tiny model with the same LoRA adapter (the EM recipe trains LoRA). Each step is
timed from the trainer's `on_step_begin` to `on_step_end` (forward, backward, optimizer step; and
the conscience step where there is one). Each round builds both trainers afresh and runs them one
after the other; the first step of every run is a warm-up and is dropped; medians over all rounds.

    python benchmarks/bench_step.py [--rounds 3] [--steps 4] [--probes 8] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _common as C
import torch


class StepTimer:
    """Wall time of each optimizer step: on_step_begin -> on_step_end (synchronised on CUDA)."""

    def __init__(self):
        self.times, self._t0 = [], None

    def __getattr__(self, name):  # every other callback event: nothing to do
        return lambda *a, **k: None

    def on_step_begin(self, *a, **k):
        C.sync()
        self._t0 = time.perf_counter()

    def on_step_end(self, *a, **k):
        C.sync()
        self.times.append(time.perf_counter() - self._t0)


def run(mode: str, workdir: str, steps: int, probes: int, peft: bool, new_tokens: int) -> dict:
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    align = mode == "alignment"
    torch.manual_seed(0)
    model, tok = C.load(to_device=False)
    args = EmergentAlignmentConfig(
        output_dir=workdir,
        max_steps=steps + 1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        max_length=C.MAX_LENGTH,
        seed=0,
        alignment_weight=1.0 if align else 0.0,
        conscience_every=1 if align else 0,
        probe_batch_size=probes,
        probe_max_new_tokens=new_tokens,
        conscience_max_new_tokens=new_tokens,
        conscience_max_attempts=1,
        conscience_correction="revise",
        pair_margin=0.1,
    )
    trainer = EmergentAlignmentTrainer(
        model,
        args=args,
        train_dataset=Dataset.from_dict({"messages": C.chats()}),
        processing_class=tok,
        probe_prompts=C.prompts(),
        peft_config=C.peft_config() if peft else None,
    )
    timer = StepTimer()
    trainer.add_callback(timer)
    C.drop_printing_callbacks(trainer)
    C.force_pairs(trainer.conscience)
    conscience_times = []
    real_step = trainer._conscience_step

    def timed_conscience_step(*a, **k):  # how much of the step the conscience part takes
        dt, pairs = C.timed(lambda: real_step(*a, **k))
        conscience_times.append(dt)
        return pairs

    trainer._conscience_step = timed_conscience_step
    trainer.train()
    out = {
        "steps": timer.times[1:],
        "conscience": conscience_times[1:],
        "pairs": C.logged(trainer, "conscience/pairs"),
        "dpo": C.logged(trainer, "dpo/loss"),
        "sft": C.logged(trainer, "sft/loss"),
    }
    del trainer, model
    return out


def main(
    rounds: int = 3, steps: int = 4, probes: int = 8, peft: bool = True, new_tokens: int = 32, threads=C.DEFAULT_THREADS
) -> dict:
    C.setup(threads)
    C.header("(c) alignment step vs. plain SFT step")
    print(
        f"model {C.MODEL_SPEC}, {'LoRA ' + str(C.LORA) if peft else 'full fine-tuning'}; SFT batch 4 chats "
        f"(EM insecure, max_length {C.MAX_LENGTH}); alignment: {probes} probes, answers and corrections <= "
        f"{new_tokens} new tokens, 1 revision round; the conscience is FORCED to flag every probe answer and "
        f"pass every correction (its forward passes still run), so each alignment step has {probes} pairs; "
        f"{rounds} rounds x {steps} timed steps after 1 warm-up step per run"
    )
    res = {
        "alignment": {"steps": [], "conscience": [], "pairs": []},
        "sft": {"steps": [], "conscience": [], "pairs": []},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in ("sft", "alignment"):
                o = run(mode, f"{tmp}/{mode}{r}", steps, probes, peft, new_tokens)
                res[mode]["steps"] += o["steps"]
                res[mode]["conscience"] += o["conscience"]
                res[mode]["pairs"] += o["pairs"]
                if mode == "alignment":
                    assert o["pairs"] and min(o["pairs"]) > 0 and o["dpo"], "an alignment step had no pairs"
                else:
                    assert not o["dpo"] and not o["conscience"], "the SFT baseline ran the alignment term"
    t_a, t_s = C.median(res["alignment"]["steps"]), C.median(res["sft"]["steps"])
    t_c = C.median(res["alignment"]["conscience"])
    pairs = res["alignment"]["pairs"]
    print(f"plain SFT step:  median {t_s:.4f} s  [{C.spread(res['sft']['steps'])}]")
    print(
        f"alignment step:  median {t_a:.4f} s  [{C.spread(res['alignment']['steps'])}]; pairs in the loss per step: "
        f"{min(pairs):.0f}-{max(pairs):.0f}"
    )
    print(
        f"  of which the conscience step (probe generation, review, correction, re-review, reference log-probs): "
        f"median {t_c:.4f} s; the rest (a forward over {4} SFT rows, one over {2 * probes} pair rows, one backward, "
        f"optimizer): about {t_a - t_c:.4f} s"
    )
    ratio = t_a / t_s
    C.ratio_line(
        "(c) alignment/SFT step time",
        ratio,
        f"a step with the conscience and {probes} DPO pairs takes this many times as long as a plain SFT step",
    )
    return {
        "ratio": ratio,
        "alignment_s": t_a,
        "sft_s": t_s,
        "conscience_s": t_c,
        "summary": f"(c) alignment/SFT step time = {ratio:.1f}x ({t_a:.3f} s vs {t_s:.3f} s per step; "
        f"conscience part {t_c:.3f} s; {probes} pairs per step)",
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="fresh trainer pairs (sft, alignment)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per run (after 1 warm-up step)")
    ap.add_argument("--probes", type=int, default=8, help="probe_batch_size of the alignment step")
    ap.add_argument("--new-tokens", type=int, default=32, help="length limit of probe answers and corrections")
    ap.add_argument("--full", action="store_true", help="full fine-tuning (a deep-copied frozen model) instead of LoRA")
    C.add_threads_arg(ap)
    a = ap.parse_args()
    main(a.rounds, a.steps, a.probes, not a.full, a.new_tokens, a.threads)
