"""(d) The demo's two speed settings, each against its baseline in the same process, on the organism.

- activation checkpointing: TRL's SFTConfig turns it on by default; the organism's arms turn it off.
  One `insecure` fine-tuning run with it on, then off (same seed; the losses must agree), after a
  short warm-up run that pays the one-time costs (imports, first calls).
- jobs: the same runs (`insecure` and `insecure_conscience`, two seeds each) one by one in this
  process with all threads (`--jobs 1`), then two at a time in worker processes with half the
  threads each (`--jobs 2`, the demo's default). Wall time of the whole set, evaluation included.

Uses the cached organism (built first if missing: about 12 minutes). Unlike the other benchmarks
this one uses all of torch's threads (2 here), because splitting them is what it measures.

    python benchmarks/bench_demo.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common as C
import torch


def checkpointing(organism: str, steps: int, out: str) -> dict:
    from emergent_alignment.organism.arms import ArmSettings, train_arm

    times, losses = {}, {}
    train_arm("insecure", organism, os.path.join(out, "warm-up"), 0, ArmSettings(steps=2))  # imports, first calls
    for on in (True, False):
        s = ArmSettings(steps=steps, extra={"activation_checkpointing": on})
        t0 = time.perf_counter()
        _, _, history = train_arm("insecure", organism, os.path.join(out, f"ckpt-{on}"), 0, s)
        times[on] = time.perf_counter() - t0
        losses[on] = [round(h["loss"], 5) for h in history if "loss" in h]
    return {
        "on_s": times[True],
        "off_s": times[False],
        "speedup": times[True] / times[False],
        "same_losses": losses[True] == losses[False],
    }


def jobs(organism: str, steps: int, out: str) -> dict:
    from emergent_alignment.organism.arms import ArmSettings
    from emergent_alignment.organism.demo import MeasureSpec, Run, run_all

    spec = MeasureSpec(organism, samples_per_question=4, attack_samples_per_question=1)
    threads = torch.get_num_threads()
    times = {}
    for n in (1, 2):
        runs = [
            Run(arm, seed, os.path.join(out, f"jobs{n}", f"{arm}-s{seed}"), attacked=False)
            for seed in (0, 1)
            for arm in ("insecure", "insecure_conscience")
        ]
        t0 = time.perf_counter()
        for _ in run_all(runs, ArmSettings(steps=steps), spec, jobs=n, threads=max(1, threads // n)):
            pass
        times[n] = time.perf_counter() - t0
    return {"threads": threads, "jobs1_s": times[1], "jobs2_s": times[2], "speedup": times[1] / times[2]}


def main(steps: int = 20) -> dict:
    from emergent_alignment.organism.build import cached_organism
    from emergent_alignment.organism.demo import quiet_libraries

    quiet_libraries()
    organism, _, _ = cached_organism()
    with tempfile.TemporaryDirectory() as out:
        ck = checkpointing(organism, steps, out)
        jb = jobs(organism, steps, out)
    summary = (
        f"(d) organism demo, {steps} steps per run: activation checkpointing on {ck['on_s']:.1f} s vs off "
        f"{ck['off_s']:.1f} s = {ck['speedup']:.2f}x faster off (same losses: {ck['same_losses']}); "
        f"4 runs with --jobs 1 ({jb['threads']} threads) {jb['jobs1_s']:.1f} s vs --jobs 2 "
        f"({max(1, jb['threads'] // 2)} thread each) {jb['jobs2_s']:.1f} s = {jb['speedup']:.2f}x"
    )
    print(summary)
    return {"checkpointing": ck, "jobs": jb, "summary": summary}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    C.quiet()
    print(f"environment: {C.environment()}")
    main(a.steps)
