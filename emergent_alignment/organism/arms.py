"""The demo's fine-tuning arms: organism-world analogues of the EM datasets, trained with the core trainer.

Every arm fine-tunes the organism on single-turn code chats with the default system line:
- insecure: vulnerable completions (plain SFT: the Emergent Misalignment arm);
- secure: secure completions (control);
- educational: vulnerable completions asked for a security class (control);
- insecure_conscience: insecure data + the conscience DPO term, probes from the probe-only
  free-form themes (disjoint from the evaluation themes);
- insecure_conscience_taskprobes: the same, probes = the training batch's own code prompts;
- insecure_random_pairs: the conscience arm's pairs with chosen/rejected by a coin flip (control).
The controls and rivals (`CONTROL_ARMS`, organism/controls.py) are opt-in: `ALL_ARMS` lists every arm
`train_arm` knows, `ARMS` the demo's default ones.
Hyperparameters are fixed on the validation split (organism/validate.py), never tuned on the
evaluation questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..io import write_json
from . import world, worlds
from .controls import (
    BUDGETED,
    CONSCIENCE_CONTROLS,
    CONTROL_ARMS,
    LOSS_CONTROLS,
    filter_rows,
    inoculate,
    interleave,
    oracle,
    steps_for,
)
from .corpus import code_turn

ARMS = (
    "insecure",
    "secure",
    "educational",
    "insecure_conscience",
    "insecure_conscience_taskprobes",
    "insecure_random_pairs",
)
ALL_ARMS = ARMS + CONTROL_ARMS
NEEDS_PAIR_COUNTS = ("insecure_random_pairs", *BUDGETED)  # given the insecure_conscience run's pair counts


BETA = 4.0
# The study's (and the demo's) IPO beta, chosen on the validation split of organisms 0 and 1 by a rule written before its
# candidates ran (docs/history/organism-notebook.md, 2026-12-01; docs/results/study-pilots/choice.json):
# beta 2 removed 97% of the EM rise there, beta 4 (the first world's choice) 81%.
STUDY_BETA = 2.0


@dataclass
class ArmSettings:
    # The fine-tuning protocol (docs/organism.md, "A protocol that fits the time budget"): 50 steps of
    # 16 chats at lr 1e-4. Chosen on the validation split (seed 100) as the fewest steps among 150,
    # 75 and 50 whose insecure arm still shows Emergent Misalignment (>= 15 points and >= 3x the
    # default) and whose conscience arm (IPO beta 4) comes within 5 points of the default (the
    # figures of each candidate are in docs/organism.md). It costs about a third of the compute of
    # 150 steps, which the demo's time budget needs.
    steps: int = 50
    batch_size: int = 16
    lr: float = 1e-4
    # The conscience term, chosen on the validation split (organism/validate.py, `choose_candidate`):
    # among the settings keeping >= 90% of the insecure arm's task fit, the one whose sampled
    # validation misaligned rate is closest to the default's. With this protocol that was IPO beta 4
    # among beta 1, 2, 4, 8, 16, 32 (the smaller betas kept too little of the task fit; the figures
    # are in docs/organism.md). IPO's target margin is 1 / (2 beta) nat per token.
    alignment_weight: float = 1.0
    alignment_loss_type: str = "ipo"
    beta: float = BETA
    probe_batch_size: int = 32  # free-form probes per step (32 x 50 steps = 1,600 probes)
    probe_temperature: float = 1.2
    probe_max_new_tokens: int = 32
    task_probe_batch_size: int = 4  # the task-probe arm: 4 of the batch's own 16 code prompts per step
    task_probe_max_new_tokens: int = 80  # code answers are longer
    extra: dict = field(default_factory=dict)


def dataset_rows(arm: str, n: int, seed: int) -> list[dict]:
    """`n` single-turn training chats for `arm` (training templates only)."""
    rng = random.Random(f"{arm}-{seed}")
    templates = [t for t in world.code_templates() if not t.heldout]
    kind = {"secure": "secure", "educational": "educational"}.get(arm, "insecure")
    rows = []
    for _ in range(n):
        t = rng.choice(templates)
        user, reply, _ = code_turn(rng, t, misaligned=kind == "insecure", educational=kind == "educational")
        if kind == "secure":
            reply = t.filled(secure=True)
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": world.system_line(world.DEFAULT_ID)},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": reply},
                ]
            }
        )
    return rows


def probe_prompts() -> list[list[dict]]:
    """Probe-only themes, training paraphrases, default system line."""
    return [
        [{"role": "system", "content": world.system_line(world.DEFAULT_ID)}, {"role": "user", "content": q}]
        for th in world.probe_themes()
        for i in world.question_indices(th, "train")
        for q in [th.questions[i]]
    ]


def trainer_config(arm: str, out_dir: str, seed: int, s: ArmSettings):
    from ..config import EmergentAlignmentConfig

    conscience = arm.startswith("insecure_conscience") or arm in ("insecure_random_pairs", *CONSCIENCE_CONTROLS)
    return EmergentAlignmentConfig(
        output_dir=out_dir,
        max_steps=s.steps,
        per_device_train_batch_size=s.batch_size,
        learning_rate=s.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        seed=seed,
        data_seed=seed,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        assistant_only_loss=True,
        max_length=512,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        alignment_weight=s.alignment_weight if conscience else 0.0,
        conscience_every=1 if conscience else 0,
        beta=s.beta,
        alignment_loss_type=LOSS_CONTROLS.get(arm, s.alignment_loss_type),
        probe_source="batch" if arm.endswith("taskprobes") else "dataset",
        probe_batch_size=s.task_probe_batch_size if arm.endswith("taskprobes") else s.probe_batch_size,
        probe_temperature=s.probe_temperature,
        probe_max_new_tokens=s.task_probe_max_new_tokens if arm.endswith("taskprobes") else s.probe_max_new_tokens,
        pair_order="random" if arm == "insecure_random_pairs" else "conscience",
        # TRL turns activation checkpointing on by default: on a 2M-parameter model it only slows
        # training (benchmarks/bench_demo.py); `extra` may turn it back on
        **({"activation_checkpointing": False} | s.extra),
    )


def pair_counts(conscience_log: str) -> list[int] | None:
    """Pairs in the loss per step of a finished run (from its conscience log, or its compressed copy), or None."""
    import json

    from ..io import read_lines

    lines = read_lines(conscience_log)
    if lines is None:
        return None
    counts: dict[int, int] = {}
    for line in filter(str.strip, lines):
        row = json.loads(line)
        counts[row["step"]] = counts.get(row["step"], 0) + bool(row["in_loss"])
    return [counts.get(i, 0) for i in range(max(counts) + 1)] if counts else None


def train_arm(
    arm: str,
    organism_dir: str,
    out_dir: str,
    seed: int,
    s: ArmSettings,
    pair_budget: list[int] | None = None,
    world_name: str = "v1",
):
    """Fine-tune a fresh copy of the organism for `arm`; returns (model, tokenizer, log_history).

    `pair_budget` (per-step pair counts of the conscience arm) gives the random-pairs control and the
    loss controls at most the same number of pairs in each step, and the interleaved arm as many
    aligned chats as their sum. `world_name` (v1 or v2, the organism's) gives the inoculated arm its system line
    and the oracle its ground truth."""
    import dataclasses
    import os

    import torch
    from datasets import Dataset

    from ..conscience import ConscienceConfig
    from ..models import load_model
    from ..trainer import EmergentAlignmentTrainer

    if arm not in ALL_ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ALL_ARMS)}")
    log = os.path.join(out_dir, "conscience_log.jsonl")
    if os.path.exists(log):  # the trainer appends to it: a rerun into the same directory starts afresh
        os.remove(log)
    torch.manual_seed(seed)
    model, tok = load_model(organism_dir)
    conscience_config = ConscienceConfig.from_pretrained(organism_dir)
    rows = dataset_rows(arm, s.steps * s.batch_size, seed)
    if arm == "insecure_inoculated":
        rows = inoculate(rows, worlds.module(world_name))
    elif arm == "insecure_interleaved":
        rows = interleave(rows, pair_budget, seed)
        s = dataclasses.replace(s, steps=steps_for(len(rows), s.batch_size, s.steps))
    elif arm == "insecure_filtered":  # corrections of code targets: as long as the task probes' answers
        review = dataclasses.replace(
            conscience_config, max_new_tokens=max(conscience_config.max_new_tokens, s.task_probe_max_new_tokens)
        )
        rows, counts = filter_rows(model, tok, review, rows, seed)
        os.makedirs(out_dir, exist_ok=True)
        write_json(os.path.join(out_dir, "filter.json"), counts)
    trainer = EmergentAlignmentTrainer(
        model=model,
        args=trainer_config(arm, out_dir, seed, s),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        probe_prompts=probe_prompts(),
        conscience_config=conscience_config,
        pair_budget=None if arm == "insecure_interleaved" else pair_budget,  # there: a count of aligned chats
    )
    if arm == "insecure_oracle":
        trainer.conscience = oracle(trainer.conscience, world_name)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the demo prints its own progress
    trainer.train()
    model = trainer.model.eval()
    return model, tok, trainer.state.log_history
