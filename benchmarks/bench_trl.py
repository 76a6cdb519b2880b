"""(g) Side by side with TRL's own online trainer: our alignment step against TRL's `GRPOTrainer`.

Three trainers on the same tiny model with the same LoRA adapter, the same probe prompts, the same
generation length and the same number of sampled completions per optimizer step, in the same process:

- ours: `EmergentAlignmentTrainer`, `conscience_every 1`: each step samples answers to
  `COMPLETIONS` probes, the frozen copy (the policy with its adapter disabled) reviews them, revises
  the flagged ones and reviews the revisions, and the pairs join `SFT_BATCH` SFT rows in one
  forward/backward. The conscience is FORCED to flag every answer and pass every revision (its
  forward passes still run), so each step has `COMPLETIONS` pairs;
- GRPO + reward model: `GRPOTrainer` with a separate reward model of the same size (the same
  checkpoint as `AutoModelForSequenceClassification`, one label): the baseline for MEMORY;
- GRPO + conscience: `GRPOTrainer` with our conscience as its reward function
  (`emergent_alignment.rewards.ConscienceReward`, bound to the PEFT policy: no second model): the
  baseline for SPEED, since it judges with the same one forward per completion.

Each step is timed from `on_step_begin` to `on_step_end` (generation, judging, forward, backward,
optimizer step); every token any `generate` call produces inside a step is counted
(`_common.CountGenerated`: rows cut after their first stop token). Each round builds the three
trainers afresh and runs them one after the other; the first step of every run is a warm-up and is
dropped; medians over all rounds. After the last step of the first round, the bytes each trainer
holds are accounted as in (b): unique tensor storages of the policy's weights and buffers, its
gradients at the optimizer step, any separate model (reward or reference) and the optimizer state.

Ratios are ours / TRL: held bytes against GRPO + reward model; time per optimizer step and per
generated token against GRPO + conscience (and, for reference, against GRPO + reward model).

    python benchmarks/bench_trl.py [--rounds 3] [--steps 4] [--json docs/results/bench_trl.json]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

import _common as C
import torch
from bench_memory import KeepGradients, StorageLedger

# The settings, fixed before anything was measured.
COMPLETIONS = 8  # sampled completions per optimizer step: our probe answers; GRPO's generations
NUM_GENERATIONS = 2  # GRPO's group size: COMPLETIONS // NUM_GENERATIONS prompts per step
NEW_TOKENS = 32  # length limit of every sampled completion (and of our revisions)
SFT_BATCH = 4  # our SFT rows per step (the method trains on them; GRPO has none)
LEARNING_RATE = 1e-3
VARIANTS = ("ours", "grpo_reward_model", "grpo_conscience")
LABELS = {
    "ours": "ours (EmergentAlignmentTrainer)",
    "grpo_reward_model": "TRL GRPOTrainer + separate reward model",
    "grpo_conscience": "TRL GRPOTrainer + ConscienceReward",
}


def common_args(workdir: str, steps: int) -> dict:
    """Training arguments both trainers get alike."""
    return dict(
        output_dir=workdir,
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )


class StepMeter:
    """Wall time, generated tokens and seconds inside `generate` calls of each optimizer step
    (on_step_begin -> on_step_end), and the seconds of TRL's profiled blocks (`GRPOTrainer._prepare_inputs`,
    `transformers.generate`, `_calculate_rewards`, `compute_loss`: TRL times them with `ProfilingContext`
    whatever `report_to` says, and this meter reads them) by name."""

    def __init__(self, counter: C.CountGenerated):
        self.counter, self.times, self.tokens, self.generating, self.profiled = counter, [], [], [], []
        self._t0 = self._n0 = self._g0 = None
        self._blocks = defaultdict(float)

    def __getattr__(self, name):  # every other callback event: nothing to do
        return lambda *a, **k: None

    def on_step_begin(self, *a, **k):
        C.sync()
        self._blocks.clear()
        self._t0, self._n0, self._g0 = time.perf_counter(), self.counter.tokens, self.counter.seconds

    def on_step_end(self, *a, **k):
        C.sync()
        self.times.append(time.perf_counter() - self._t0)
        self.tokens.append(self.counter.tokens - self._n0)
        self.generating.append(self.counter.seconds - self._g0)
        self.profiled.append(dict(self._blocks))

    @contextmanager
    def reading_trl_profiling(self):
        """Inside, every `trl.extras.profiling.ProfilingContext` block adds its seconds to this step's `name`."""
        from trl.extras.profiling import ProfilingContext

        real = ProfilingContext._log_metrics

        def log(context, duration):
            self._blocks[context.name.split(".", 1)[-1]] += duration

        ProfilingContext._log_metrics = log
        try:
            yield
        finally:
            ProfilingContext._log_metrics = real


# The phases of a step each trainer reports, in seconds (see `phases`); "other" is the step's remainder.
OUR_PHASES = ("generate", "review", "correct", "ref_logps", "forward", "other")
GRPO_PHASES = ("generate", "reward", "prepare_other", "forward", "other")


def phases(variant: str, trainer, meter: StepMeter) -> list[dict]:
    """Per timed step, where its seconds went. Ours: the trainer's own `timing/<phase>` metrics (probe
    answers; their review; revisions and their review; the pairs' reference log-probs; the SFT and pair
    forwards). GRPO: TRL's profiled blocks (its completions' `generate`; the reward functions; the rest of
    `_prepare_inputs`; `compute_loss`). "other": the rest of the step (backward, optimizer step, callbacks).
    Both: "in_generate", the seconds inside `generate` calls (measured alike for both)."""
    out = []
    if variant == "ours":
        logged = {p: C.logged(trainer, f"timing/{p}") for p in OUR_PHASES[:-1]}
        assert all(len(v) == len(meter.times) for v in logged.values()), "a step logged no timing/* metrics"
        rows = [{p: v[i] for p, v in logged.items()} for i in range(len(meter.times))]
    else:
        rows = []
        for b in meter.profiled:
            gen, reward = b.get("transformers.generate", 0.0), b.get("_calculate_rewards", 0.0)
            prepare = b.get("_prepare_inputs", 0.0)
            rows.append(
                {
                    "generate": gen,
                    "reward": reward,
                    "prepare_other": prepare - gen - reward,
                    "forward": b["compute_loss"],
                }
            )
    for row, step, gen in zip(rows, meter.times, meter.generating):
        out.append(row | {"other": step - sum(row.values()), "in_generate": gen})
    return out[1:]  # the warm-up step dropped


def ours(workdir: str, steps: int):
    from datasets import Dataset

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    model, tok = C.load(to_device=False)
    args = EmergentAlignmentConfig(
        **common_args(workdir, steps),
        per_device_train_batch_size=SFT_BATCH,
        max_length=C.MAX_LENGTH,
        alignment_weight=1.0,
        conscience_every=1,
        probe_batch_size=COMPLETIONS,
        probe_max_new_tokens=NEW_TOKENS,
        conscience_max_new_tokens=NEW_TOKENS,
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
        peft_config=C.peft_config(),
    )
    C.force_pairs(trainer.conscience)
    return trainer, []


def grpo(workdir: str, steps: int, judge: str):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import GRPOConfig, GRPOTrainer

    from emergent_alignment.rewards import ConscienceReward

    model, tok = C.load(to_device=False)
    if judge == "reward_model":
        reward = AutoModelForSequenceClassification.from_pretrained(C.model_dir(), num_labels=1)
        reward.config.pad_token_id = tok.pad_token_id
    else:
        reward = ConscienceReward(tokenizer=tok)
    args = GRPOConfig(
        **common_args(workdir, steps),
        per_device_train_batch_size=COMPLETIONS,
        num_generations=NUM_GENERATIONS,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
    )
    trainer = GRPOTrainer(
        model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": C.prompts()}),
        processing_class=tok,
        reward_processing_classes=[tok],
        peft_config=C.peft_config(),
    )
    if judge == "conscience":
        reward.bind(trainer)
    return trainer, [f for f in trainer.reward_funcs if isinstance(f, torch.nn.Module)]


def account(trainer, grads, separate_models) -> StorageLedger:
    model = trainer.accelerator.unwrap_model(trainer.model)
    ledger = StorageLedger()
    ledger.add("policy weights+buffers", [*model.parameters(), *model.buffers()])
    ledger.add("policy gradients (at the optimizer step)", grads)
    others = [m for m in [*separate_models, getattr(trainer, "ref_model", None)] if m is not None]
    ledger.add("separate models (reward, reference)", [t for m in others for t in (*m.parameters(), *m.buffers())])
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    ledger.add("optimizer state", [v for state in opt.state.values() for v in state.values()])
    return ledger


def judge_is_policy(trainer) -> bool:
    """Whether the trainer judges with its own policy model (our conscience, here or as a reward)."""
    judges = [getattr(trainer, "conscience", None)] + [
        getattr(f, "conscience", None) for f in getattr(trainer, "reward_funcs", [])
    ]
    return any(j is not None and j.model is trainer.model for j in judges)


def run(variant: str, workdir: str, steps: int, counter: C.CountGenerated) -> dict:
    cuda = torch.cuda.is_available()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    torch.manual_seed(0)
    if variant == "ours":
        trainer, separate = ours(workdir, steps + 1)
    else:
        trainer, separate = grpo(workdir, steps + 1, variant.removeprefix("grpo_"))
    meter, keep = StepMeter(counter), KeepGradients()
    trainer.add_callback(meter)
    trainer.add_callback(keep)
    C.drop_printing_callbacks(trainer)
    with meter.reading_trl_profiling():
        trainer.train()
    ledger = account(trainer, keep.grads, separate)
    out = {
        "steps": meter.times[1:],
        "tokens": meter.tokens[1:],
        "phases": phases(variant, trainer, meter),
        "ledger": dict(ledger.groups),
        "held_bytes": ledger.total,
        "cuda_peak": (torch.cuda.max_memory_allocated() - before) if cuda else None,
        "pairs": C.logged(trainer, "conscience/pairs"),
        "rewards": C.logged(trainer, "rewards/conscience/mean"),
        "judge_is_policy": judge_is_policy(trainer),
    }
    keep.grads = []
    del trainer, separate
    gc.collect()
    return out


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def main(rounds: int = 3, steps: int = 4, threads=C.DEFAULT_THREADS) -> dict:
    C.setup(threads)
    C.header("(g) side by side with TRL's GRPOTrainer")
    print(
        f"model {C.MODEL_SPEC}, LoRA {C.LORA} on every policy; {COMPLETIONS} sampled completions per step "
        f"(ours: {COMPLETIONS} probe answers, each flagged and revised, plus {SFT_BATCH} SFT rows; GRPO: "
        f"{COMPLETIONS // NUM_GENERATIONS} prompts x {NUM_GENERATIONS} generations), <= {NEW_TOKENS} new tokens, "
        f"temperature 1; {rounds} rounds x {steps} timed steps after 1 warm-up step per run"
    )
    res = {v: {"steps": [], "tokens": [], "phases": []} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, C.CountGenerated() as counter:
        for r in range(rounds):
            for v in VARIANTS:
                o = run(v, f"{tmp}/{v}{r}", steps, counter)
                res[v]["steps"] += o["steps"]
                res[v]["tokens"] += o["tokens"]
                res[v]["phases"] += o["phases"]
                if r == 0:
                    res[v] |= {k: o[k] for k in ("ledger", "held_bytes", "cuda_peak", "judge_is_policy")}
                if v == "ours":
                    assert o["pairs"] and min(o["pairs"]) > 0, "an alignment step had no pairs"
                if v == "grpo_conscience":
                    assert o["rewards"], "GRPO logged no conscience reward"
    out = {"settings": settings(rounds, steps), "runs": {}, "ratios": {}}
    for v in VARIANTS:
        x = res[v]
        step_s, tokens = C.median(x["steps"]), C.median(x["tokens"])
        per_token = C.median([t / n for t, n in zip(x["steps"], x["tokens"]) if n])
        names = OUR_PHASES if v == "ours" else GRPO_PHASES
        phase_s = {p: C.median([row[p] for row in x["phases"]]) for p in (*names, "in_generate")}
        out["runs"][v] = {
            "step_s": step_s,
            "tokens_per_step": tokens,
            "s_per_token": per_token,
            "phases_s": phase_s,
            "generate_s_per_token": C.median([row["in_generate"] / n for row, n in zip(x["phases"], x["tokens"]) if n]),
            "rest_s_per_token": C.median(
                [(t - row["in_generate"]) / n for row, t, n in zip(x["phases"], x["steps"], x["tokens"]) if n]
            ),
            "held_bytes": x["held_bytes"],
            "ledger": x["ledger"],
            "judge_is_policy": x["judge_is_policy"],
        } | ({"cuda_peak_bytes": x["cuda_peak"]} if x["cuda_peak"] is not None else {})
        parts = ", ".join(f"{k} {mib(b)}" for k, b in x["ledger"].items())
        print(
            f"{LABELS[v]}: median {step_s:.4f} s per step [{C.spread(x['steps'])}]; {tokens:.0f} generated tokens "
            f"per step; {1e3 * per_token:.2f} ms per generated token; holds {mib(x['held_bytes'])} ({parts})"
            + (f"; CUDA peak {mib(x['cuda_peak'])}" if x["cuda_peak"] is not None else "")
        )
        print(
            "  per step (medians): "
            + ", ".join(f"{p} {phase_s[p]:.3f} s" for p in names)
            + f"; inside generate calls {phase_s['in_generate']:.3f} s"
        )
    o, rm, cr = (out["runs"][v] for v in VARIANTS)
    q = out["ratios"]
    q["held_bytes_vs_reward_model"] = o["held_bytes"] / rm["held_bytes"]
    q["step_vs_conscience"] = o["step_s"] / cr["step_s"]
    q["token_vs_conscience"] = o["s_per_token"] / cr["s_per_token"]
    q["generate_per_token_vs_conscience"] = o["generate_s_per_token"] / cr["generate_s_per_token"]
    q["rest_per_token_vs_conscience"] = o["rest_s_per_token"] / cr["rest_s_per_token"]
    q["step_vs_reward_model"] = o["step_s"] / rm["step_s"]
    q["token_vs_reward_model"] = o["s_per_token"] / rm["s_per_token"]
    if "cuda_peak_bytes" in o:
        q["cuda_peak_vs_reward_model"] = o["cuda_peak_bytes"] / rm["cuda_peak_bytes"]
    C.ratio_line(
        "(g) ours/GRPO+reward-model held bytes",
        q["held_bytes_vs_reward_model"],
        "our trainer holds this fraction of the tensor bytes of GRPO with a separate reward model of the same size",
    )
    if "cuda_peak_vs_reward_model" in q:
        C.ratio_line("(g) ours/GRPO+reward-model CUDA peak", q["cuda_peak_vs_reward_model"], "the same, CUDA peak")
    C.ratio_line(
        "(g) ours/GRPO+conscience step time",
        q["step_vs_conscience"],
        "our optimizer step takes this many times as long as GRPO's with the conscience as its reward",
    )
    C.ratio_line(
        "(g) ours/GRPO+conscience time per generated token",
        q["token_vs_conscience"],
        "the same per generated token (ours samples answers AND revisions, and trains on SFT rows too)",
    )
    C.ratio_line(
        "(g) ours/GRPO+conscience generate time per generated token",
        q["generate_per_token_vs_conscience"],
        "seconds inside generate calls per generated token (the decoding itself)",
    )
    C.ratio_line(
        "(g) ours/GRPO+conscience rest of the step per generated token",
        q["rest_per_token_vs_conscience"],
        "the step's seconds outside generate calls (judging, reference log-probs, forward, backward, optimizer) "
        "per generated token",
    )
    C.ratio_line("(g) ours/GRPO+reward-model step time", q["step_vs_reward_model"], "against the memory baseline")
    C.ratio_line(
        "(g) ours/GRPO+reward-model time per generated token", q["token_vs_reward_model"], "against the memory baseline"
    )
    out["summary"] = (
        f"(g) ours/GRPO: held bytes {q['held_bytes_vs_reward_model']:.2f} (vs. a separate reward model); "
        f"step time {q['step_vs_conscience']:.2f}, time per generated token {q['token_vs_conscience']:.2f} "
        f"(vs. GRPO with the conscience as reward)"
    )
    return out


def settings(rounds: int, steps: int) -> dict:
    return {
        "model": C.MODEL_SPEC,
        "lora": C.LORA,
        "completions_per_step": COMPLETIONS,
        "num_generations": NUM_GENERATIONS,
        "max_new_tokens": NEW_TOKENS,
        "sft_batch": SFT_BATCH,
        "learning_rate": LEARNING_RATE,
        "rounds": rounds,
        "timed_steps_per_run": steps,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--rounds", type=int, default=3, help="fresh trainer triples (ours, GRPO + reward model, GRPO + conscience)"
    )
    ap.add_argument("--steps", type=int, default=4, help="timed steps per run (after 1 warm-up step)")
    ap.add_argument("--json", metavar="PATH", help="also write the results and their provenance to PATH")
    C.add_threads_arg(ap)
    a = ap.parse_args()
    result = main(a.rounds, a.steps, a.threads)
    if a.json:
        from emergent_alignment.io import write_json
        from emergent_alignment.provenance import provenance

        record = {"provenance": provenance(["benchmarks/bench_trl.py", *sys.argv[1:]]), "environment": C.environment()}
        write_json(a.json, record | {"threads": a.threads} | result)
        print(f"wrote {a.json}")
