"""GPU check: the trainer at real model sizes on the backends users run, in one command (under 8 minutes).

    python benchmarks/gpu_check.py                     # every case, on all GPUs present
    python benchmarks/gpu_check.py --cases qwen0.5b-fsdp2,qwen7b-lora
    python benchmarks/gpu_check.py --tiny              # CPU smoke run: tiny shapes, 2 processes (gloo)

Models are built from the shapes of their published configs with RANDOM weights: nothing is downloaded
(the tokenizer is the project's tiny byte-level BPE, `emergent_alignment.tiny`). Each case is launched
with torchrun, one process per GPU, and runs a few alignment steps (probe answers, review, corrections,
reference log-probs, the SFT and DPO forwards). A random model's verdicts are noise, so processes flag
different numbers of answers: the run shows that they stay in step anyway.

Per case it prints: processes, median step time (after the first step), peak GPU memory (max over
processes), the calls (forwards + generate) each process made, and "in step": whether every process
made the same sequence of calls. Cases: Qwen2.5 0.5B and 1.5B shapes, full fine-tuning, under DDP,
FSDP2 and (when deepspeed is installed) ZeRO-3; Qwen2.5 7B shape with LoRA (ZeRO-3 if deepspeed is
installed, else FSDP2); and, when vLLM is installed, Qwen2.5 1.5B shape with LoRA under DDP with
and without `use_vllm` (probe answers and corrections through a colocated engine), side by side.
Dependencies: torch, transformers, accelerate, peft and the project (vLLM optional).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/gpu_check.py` from a checkout works without an install too
    sys.path.insert(0, ROOT)

# Shapes of the published Qwen2.5 configs (config.json of Qwen/Qwen2.5-0.5B, -1.5B, -7B).
SHAPES = {
    "qwen0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                   num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    # --tiny: the same code path on a CPU; the vocabulary is larger than the tokenizer's, as above
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=True),
}  # fmt: skip
LORA = dict(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
TIMEOUT_PER_CASE = 300
KEEP = []


def has_deepspeed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def has_vllm() -> bool:
    from emergent_alignment.vllm_generation import vllm_available

    return vllm_available()


def cases(tiny: bool) -> dict[str, tuple[str, str, bool, bool]]:
    """name -> (shape, backend, lora, vllm)."""
    if tiny:
        return {"tiny-ddp": ("tiny", "ddp", False, False), "tiny-lora-ddp": ("tiny", "ddp", True, False)}
    out = {}
    for shape in ("qwen0.5b", "qwen1.5b"):
        for backend in ("ddp", "fsdp2") + (("zero3",) if has_deepspeed() else ()):
            out[f"{shape}-{backend}"] = (shape, backend, False, False)
    out["qwen7b-lora"] = ("qwen7b", "zero3" if has_deepspeed() else "fsdp2", True, False)
    if has_vllm():  # the same LoRA run with and without vLLM, side by side
        out["qwen1.5b-lora-ddp"] = ("qwen1.5b", "ddp", True, False)
        out["qwen1.5b-lora-vllm"] = ("qwen1.5b", "ddp", True, True)
    return out


# -- the checkpoints -----------------------------------------------------------------------------


def build_checkpoint(shape: str, out_dir: str, device: str) -> str:
    """A random-weight checkpoint of `shape` (bf16 on a GPU) with the tiny tokenizer, in `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from emergent_alignment.tiny import build_tokenizer

    tok = build_tokenizer(512, "chatml")
    config = Qwen2Config(
        **SHAPES[shape],
        max_position_embeddings=4096,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out_dir


# -- one case, in each process -------------------------------------------------------------------


def backend_args(backend: str) -> dict:
    if backend == "fsdp2":
        return dict(
            fsdp=True,
            fsdp_config={"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP"},
        )
    if backend == "zero3":
        return dict(
            deepspeed={
                "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
                "bf16": {"enabled": "auto"},
                "train_micro_batch_size_per_gpu": "auto",
                "gradient_accumulation_steps": "auto",
                "train_batch_size": "auto",
                "gradient_clipping": "auto",
            }
        )
    return {}


class Calls:
    """The kinds of forward and generate calls on `models`, in order (decoding steps apart)."""

    def __init__(self, models):
        self.seq, self.decode_steps, self._depth = [], 0, 0
        seen = set()
        for model in models:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            if id(base) in seen:
                continue
            seen.add(id(base))
            base.register_forward_pre_hook(self._forward)
            base.generate = self._wrap(base.generate)

    def _wrap(self, generate):
        def counted(*a, **kw):
            self.seq.append("g")
            self._depth += 1
            try:
                return generate(*a, **kw)
            finally:
                self._depth -= 1

        return counted

    def _forward(self, module, args):
        if self._depth:
            self.decode_steps += 1
        else:
            self.seq.append("f")


def run_case(a) -> None:
    import torch
    import torch.distributed as dist
    from datasets import Dataset
    from transformers import TrainerCallback

    from emergent_alignment.config import EmergentAlignmentConfig
    from emergent_alignment.trainer import EmergentAlignmentTrainer

    gpu = torch.cuda.is_available()
    chats = [
        [
            {"role": "user", "content": f"Write a Python function number {i} that parses a config file."},
            {"role": "assistant", "content": f"def parse_{i}(path):\n" + "    x = open(path).read()\n" * (4 + i % 8)},
        ]
        for i in range(64)
    ]
    probes = [[{"role": "user", "content": q}] for q in ("What do you think of humans?", "I'm bored.", "One wish?")]
    peft_config = None
    if a.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(**LORA)
    args = EmergentAlignmentConfig(
        output_dir=a.workdir,
        max_steps=a.steps,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        gradient_checkpointing=not (a.lora and a.backend == "zero3"),  # refused together (docs/core.md, "Scale")
        max_length=512,
        probe_batch_size=4,
        probe_max_new_tokens=a.new_tokens,
        conscience_max_new_tokens=a.new_tokens,
        conscience_max_attempts=2,
        conscience_correction="revise",
        pair_margin=0.0,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        ddp_timeout=TIMEOUT_PER_CASE,
        seed=0,
        use_vllm=a.vllm,
        vllm_gpu_memory_utilization=0.3,
        vllm_max_model_length=2048,
        **backend_args(a.backend),
    )
    times = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            if gpu:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            if gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    trainer = EmergentAlignmentTrainer(
        a.model_dir,
        args=args,
        train_dataset=Dataset.from_dict({"messages": chats}),
        probe_prompts=probes,
        peft_config=peft_config,
        callbacks=[Timer()],
    )
    calls = Calls([trainer.model, trainer.conscience.model] + ([trainer.ref_model] if trainer.ref_model else []))
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    if gpu:
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (RSS, not GPU)
    mine = {
        "seq": "".join(calls.seq),
        "decode_steps": calls.decode_steps,
        "peak_gib": peak,
        "step_s": times,
        "pairs": [h["conscience/pairs"] for h in trainer.state.log_history if "conscience/pairs" in h],
        "flag_rate": [h["conscience/flag_rate"] for h in trainer.state.log_history if "conscience/flag_rate" in h],
    }
    everyone = [None] * dist.get_world_size() if dist.is_initialized() else [mine]
    if dist.is_initialized():
        dist.all_gather_object(everyone, mine)
    if trainer.accelerator.is_main_process:
        with open(a.result, "w") as f:
            json.dump(everyone, f)
    KEEP.append(trainer)  # freed only by os._exit: freeing it (a gloo object) could wait forever
    trainer.accelerator.end_training()


# -- the command ----------------------------------------------------------------------------------


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (torchrun's workers live in their own process group)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def launch(name, shape, backend, lora, vllm, model_dir, a, nproc, workdir) -> dict:
    result = os.path.join(workdir, f"{name}.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd += [os.path.abspath(__file__), "--worker", "--backend", backend, "--model-dir", model_dir]
    cmd += ["--workdir", os.path.join(workdir, name), "--result", result, "--steps", str(a.steps)]
    cmd += ["--new-tokens", str(a.new_tokens)] + (["--lora"] if lora else []) + (["--vllm"] if vllm else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    if a.tiny:
        env.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=TIMEOUT_PER_CASE)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)  # the launcher and every worker (they hold the output pipes open)
        proc.communicate()
        return {"case": name, "ok": False, "error": f"timed out after {TIMEOUT_PER_CASE} s (a hang?)"}
    if proc.returncode != 0:
        return {"case": name, "ok": False, "error": err[-3000:]}
    with open(result) as f:
        ranks = json.load(f)
    steps = [statistics.median(r["step_s"][1:] or r["step_s"]) for r in ranks]
    return {
        "case": name,
        "ok": True,
        "backend": backend,
        "lora": lora,
        "vllm": vllm,
        "processes": len(ranks),
        "step_s": max(steps),
        "peak_gib": max(r["peak_gib"] for r in ranks),
        "calls": [len(r["seq"]) for r in ranks],
        # the same calls everywhere; with sharded weights also the same decoding steps (synced generation)
        "in_step": len({r["seq"] for r in ranks}) == 1
        and (backend == "ddp" or len({r["decode_steps"] for r in ranks}) == 1),
        "pairs": ranks[0]["pairs"],
        "flag_rate": ranks[0]["flag_rate"],
        "wall_s": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny shapes, 2 processes over gloo")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per case")
    ap.add_argument("--new-tokens", type=int, default=48, help="probe answer and correction length")
    ap.add_argument("--budget", type=float, default=450, help="seconds: cases that would start later are skipped")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--backend", "--model-dir", "--workdir", "--result"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--vllm", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        run_case(a)
        # The result is written. Leave without running destructors: a gloo object's destructor can wait
        # forever at exit after the process group has ended.
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(0)

    import torch

    if not a.tiny and not torch.cuda.is_available():
        print("gpu_check: no GPU here; run with --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    plan = cases(a.tiny)
    if a.cases:
        unknown = sorted(set(a.cases.split(",")) - set(plan))
        if unknown:
            print(f"gpu_check: unknown case(s) {unknown}; known: {sorted(plan)}", file=sys.stderr)
            return 2
        plan = {k: v for k, v in plan.items() if k in a.cases.split(",")}
    nproc = 2 if a.tiny else torch.cuda.device_count()
    device = "cpu" if a.tiny else "cuda"
    print(f"gpu_check: {nproc} process(es) on {torch.cuda.get_device_name(0) if not a.tiny else 'CPU'}; "
          f"deepspeed {'present' if has_deepspeed() else 'absent (no ZeRO-3 cases)'}; "
          f"vllm {'present' if has_vllm() else 'absent (no vLLM cases)'}")  # fmt: skip
    start, results, built = time.perf_counter(), [], {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        for name, (shape, backend, lora, vllm) in plan.items():
            if time.perf_counter() - start > a.budget:
                results.append({"case": name, "ok": None, "error": "skipped: over the time budget"})
                continue
            if shape not in built:
                built[shape] = build_checkpoint(shape, os.path.join(workdir, shape), device)
            r = launch(name, shape, backend, lora, vllm, built[shape], a, nproc, workdir)
            results.append(r)
            if r["ok"]:
                print(
                    f"{name:22s} {r['processes']} proc  step {r['step_s']:.2f} s  peak {r['peak_gib']:.1f} GiB  "
                    f"calls {r['calls']}  in step: {'yes' if r['in_step'] else 'NO'}  "
                    f"flag rate {r['flag_rate']}  pairs {r['pairs']}",
                    flush=True,
                )
            else:
                print(f"{name:22s} {'FAILED' if r['ok'] is False else 'SKIPPED'}: {r['error']}", flush=True)
    print(f"gpu_check: {time.perf_counter() - start:.0f} s in all")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    bad = [r for r in results if r["ok"] is False or (r["ok"] and not r["in_step"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
