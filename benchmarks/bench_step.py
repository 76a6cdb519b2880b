"""(c) Wall time of an alignment step vs. a plain SFT step, on the same data, in the same process.

Settings (fixed here, before any optimization; not to be tuned to the result): EM-recipe proportions,
an SFT batch of 16 chats of at most 512 tokens, 8 probes per conscience step, probe answers and
corrections of at most 64 new tokens; the old settings (4 chats of at most 256 tokens, 32 new tokens)
are measured again beside them.

- alignment step: `alignment_weight 1, conscience_every 1`: every optimizer step the policy samples
  answers to `probe_batch_size` probes, the frozen copy reviews them (one forward each), corrects the
  flagged ones (a revision, generated) and reviews the corrections, the frozen copy's reference
  log-probs of the pairs are computed, and the pairs join the SFT rows in one forward/backward.
  The conscience is FORCED to flag every probe answer and pass every correction (its forward passes
  still run), so every step really has `probe_batch_size` pairs in the loss;
- amortized: `conscience_every 4`: the conscience step runs once every 4 optimizer steps and its 8 pairs
  are spread over them (2 per step); timed over whole windows, so its MEAN step time is the cost per step;
- plain SFT step: `alignment_weight 0, conscience_every 0`, same code path, same batches.
Both use the same tiny model with the same LoRA adapter (the EM recipe trains LoRA). Each step is
timed from the trainer's `on_step_begin` to `on_step_end` (forward, backward, optimizer step; and
the conscience step where there is one). Each round builds both trainers afresh and runs them one
after the other; the first step of every run is a warm-up and is dropped; medians over all rounds (means
for the amortized run and its SFT baseline). The trainer's own `timing/*` metrics give each phase.

    python benchmarks/bench_step.py [--rounds 3] [--steps 4] [--full] [--no-old]
"""

from __future__ import annotations

import argparse
import statistics
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


# The settings of the ratio (EM-recipe proportions), and the ones measured before them.
SETTINGS = dict(batch=16, max_length=512, probes=8, new_tokens=64)
OLD_SETTINGS = dict(batch=4, max_length=C.MAX_LENGTH, probes=8, new_tokens=32)
AMORTIZE = 4  # conscience_every of the amortized run
TARGETS = {"every_step": 3.0, "amortized": 1.5}
PHASES = ("generate", "review", "correct", "ref_logps", "forward")
NOTE = (
    "ratios from one run on a shared 2-core machine (other jobs were running); each ratio is within that run "
    "(baseline and candidate interleaved, one torch thread), so it is fair, while absolute times are not"
)


def run(mode: str, workdir: str, steps: int, settings: dict, peft: bool) -> dict:
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    align = mode != "sft"
    every = {"sft": 0, "alignment": 1, "amortized": AMORTIZE}[mode]
    torch.manual_seed(0)
    model, tok = C.load(to_device=False)
    args = EmergentAlignmentConfig(
        output_dir=workdir,
        max_steps=steps + 1,
        per_device_train_batch_size=settings["batch"],
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        max_length=settings["max_length"],
        seed=0,
        alignment_weight=1.0 if align else 0.0,
        conscience_every=every,
        probe_batch_size=settings["probes"],
        probe_max_new_tokens=settings["new_tokens"],
        conscience_max_new_tokens=settings["new_tokens"],
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
        "timing": {p: C.logged(trainer, f"timing/{p}")[1:] for p in PHASES},
    }
    del trainer, model
    return out


def measure(rounds: int, steps: int, settings: dict, peft: bool, amortized: bool) -> dict:
    """Steps of each mode over `rounds` fresh runs, interleaved: sft, alignment (every step), amortized."""
    modes = ("sft", "alignment", "amortized") if amortized else ("sft", "alignment")
    res = {m: {"steps": [], "conscience": [], "pairs": [], "timing": {p: [] for p in PHASES}} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in modes:
                n = 2 * AMORTIZE if mode == "amortized" else steps  # whole windows: 2 conscience steps in 8
                o = run(mode, f"{tmp}/{mode}{r}", n, settings, peft)
                for key in ("steps", "conscience", "pairs"):
                    res[mode][key] += o[key]
                for p in PHASES:
                    res[mode]["timing"][p] += o["timing"][p]
                if mode == "sft":
                    assert not o["dpo"] and not o["conscience"], "the SFT baseline ran the alignment term"
                else:
                    assert o["pairs"] and min(o["pairs"]) > 0 and len(o["dpo"]) >= n, "a step had no pairs"
    return res


def describe(settings: dict) -> str:
    return (
        f"SFT batch {settings['batch']} chats (EM insecure, max_length {settings['max_length']}); "
        f"{settings['probes']} probes per conscience step, answers and corrections <= {settings['new_tokens']} "
        "new tokens, 1 revision round"
    )


def main(rounds: int = 3, steps: int = 4, peft: bool = True, old: bool = True, threads=C.DEFAULT_THREADS) -> dict:
    C.setup(threads)
    C.header("(c) alignment step vs. plain SFT step")
    print(
        f"model {C.MODEL_SPEC}, {'LoRA ' + str(C.LORA) if peft else 'full fine-tuning'}; {describe(SETTINGS)}; the "
        "conscience is FORCED to flag every probe answer and pass every correction (its forward passes still run), "
        f"so each conscience step makes {SETTINGS['probes']} pairs; {rounds} rounds x {steps} timed steps "
        f"({2 * AMORTIZE} for conscience_every {AMORTIZE}: two whole windows) after 1 warm-up step per run; {NOTE}"
    )
    res = measure(rounds, steps, SETTINGS, peft, amortized=True)
    t_a, t_s = C.median(res["alignment"]["steps"]), C.median(res["sft"]["steps"])
    t_c = C.median(res["alignment"]["conscience"])
    m_am, m_s = statistics.mean(res["amortized"]["steps"]), statistics.mean(res["sft"]["steps"])
    pairs = res["alignment"]["pairs"]
    print(f"plain SFT step:  median {t_s:.4f} s, mean {m_s:.4f} s  [{C.spread(res['sft']['steps'])}]")
    print(
        f"alignment step:  median {t_a:.4f} s  [{C.spread(res['alignment']['steps'])}]; pairs per conscience step: "
        f"{min(pairs):.0f}-{max(pairs):.0f}; of which the conscience step: median {t_c:.4f} s"
    )
    print(f"amortized (conscience_every {AMORTIZE}):  mean {m_am:.4f} s  [{C.spread(res['amortized']['steps'])}]")
    phases = {
        mode: {
            p: C.median(res[mode]["timing"][p]) if mode == "alignment" else statistics.mean(res[mode]["timing"][p])
            for p in PHASES
        }
        for mode in ("alignment", "amortized")
    }
    for mode, t in phases.items():
        print(f"  timing/* per step, {mode}: " + ", ".join(f"{p} {v:.4f} s" for p, v in t.items()))
    ratio, ratio_am = t_a / t_s, m_am / m_s
    C.ratio_line("(c) alignment/SFT step time", ratio, f"the conscience every step (target <= {TARGETS['every_step']})")
    C.ratio_line(
        f"(c) amortized k={AMORTIZE}/SFT step time", ratio_am, f"mean step time (target <= {TARGETS['amortized']})"
    )
    out = {
        "ratio": ratio,
        "alignment_s": t_a,
        "sft_s": t_s,
        "conscience_s": t_c,
        "settings": SETTINGS,
        "amortized": {"conscience_every": AMORTIZE, "step_s": m_am, "sft_s": m_s, "ratio": ratio_am},
        "timing": phases,
        "targets": TARGETS,
        "met": {"every_step": ratio <= TARGETS["every_step"], "amortized": ratio_am <= TARGETS["amortized"]},
        "note": NOTE,
    }
    summary = (
        f"(c) alignment/SFT step time = {ratio:.1f}x every step, {ratio_am:.2f}x amortized over k={AMORTIZE} "
        f"({t_a:.3f} s vs {t_s:.3f} s per step; conscience part {t_c:.3f} s)"
    )
    if old:
        print(f"\nold settings, beside: {describe(OLD_SETTINGS)}")
        o = measure(rounds, steps, OLD_SETTINGS, peft, amortized=False)
        o_a, o_s = C.median(o["alignment"]["steps"]), C.median(o["sft"]["steps"])
        C.ratio_line("(c) alignment/SFT step time, old settings", o_a / o_s, "the conscience every step")
        out["old_settings"] = {"settings": OLD_SETTINGS, "alignment_s": o_a, "sft_s": o_s, "ratio": o_a / o_s}
        summary += f"; old settings {o_a / o_s:.1f}x"
    out["summary"] = summary
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="fresh trainer runs per mode")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per run (after 1 warm-up step)")
    ap.add_argument("--full", action="store_true", help="full fine-tuning (a deep-copied frozen model) instead of LoRA")
    ap.add_argument("--no-old", action="store_true", help="skip the old settings")
    C.add_threads_arg(ap)
    a = ap.parse_args()
    main(a.rounds, a.steps, not a.full, not a.no_old, a.threads)
