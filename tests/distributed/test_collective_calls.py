"""Two CPU processes (torchrun, gloo): every process makes the same sequence of forward and generate calls
whatever its data, under DDP, a really sharded FSDP2 and ZeRO-3 through DeepSpeed's CPU accelerator
(deepspeed is in the dev extra); FSDP2's and ZeRO-3's gradients equal one process's; both checkpoint and
resume.

A process that deviates would hang the others at their next collective: the process group has a 60 s
timeout (`ddp_timeout`), and the launch is killed after TIMEOUT seconds (gloo does not always notice a
mismatched collective), so a hang fails instead of blocking."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

TIMEOUT = 180  # seconds for one launch; a normal one takes a small fraction of it
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for _fixed_pairs
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_check import kill_tree  # noqa: E402  (one copy: the GPU check's, which launches the same way)


def launch(tmp_path, *args):
    """torchrun, 2 processes; a hang is killed (the launcher and its workers) and fails the test."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [os.path.join(HERE, "_worker.py"), "--workdir", str(tmp_path), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    if "zero3" in args:  # DeepSpeed's CPU accelerator (accelerate turns DeepSpeed off under ACCELERATE_USE_CPU)
        env["DS_ACCELERATOR"] = "cpu"
    else:
        env["ACCELERATE_USE_CPU"] = "true"
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)  # the launcher and every worker (they hold the output pipes open)
        _, err = proc.communicate()
        pytest.fail(f"the processes did not finish within {TIMEOUT} s (a hang); where they waited:\n{err[-6000:]}")
    assert proc.returncode == 0, err[-4000:]


def needs_deepspeed():
    pytest.importorskip("deepspeed", reason="ZeRO-3 needs deepspeed, in the dev extra: pip install -e '.[dev]'")


def calls(tmp_path, rank):
    with open(tmp_path / f"calls-{rank}.json") as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend,peft",
    [("ddp", False), ("ddp", True), ("fsdp2", False), ("fsdp2", True), ("zero3", False), ("zero3", True)],
    ids=["ddp", "ddp-lora", "fsdp2", "fsdp2-lora", "zero3", "zero3-lora"],
)
def test_one_process_flags_everything_the_other_nothing(llama_dir, tmp_path, backend, peft):
    if backend == "zero3":
        needs_deepspeed()
    launch(tmp_path, "--check", "uneven", "--backend", backend, "--model", llama_dir, *(["--peft"] if peft else []))
    busy, idle = calls(tmp_path, 0), calls(tmp_path, 1)
    # the data really differed: pairs on process 0 only, in both steps
    assert busy["pairs"] == [3, 3] and idle["pairs"] == [0, 0] and busy["total"] == idle["total"] == [3, 3]
    assert busy["dpo_loss"] and busy["dpo_loss"] == idle["dpo_loss"]
    # ... and yet the same calls, in the same order (a dummy row may differ in size, not in count)
    assert [what for what, _ in busy["calls"]] == [what for what, _ in idle["calls"]]
    generates = [[n for what, n in c["calls"] if what == "generate"] for c in (busy, idle)]
    assert generates[0] == generates[1] == [3] * 6  # per step: the probes, then 2 correction rounds of 3
    if backend != "ddp":  # sharded: decoding runs in step everywhere (synced_gpus)
        assert busy["decode_steps"] == idle["decode_steps"]
    saved = tmp_path / "saved"  # saving works on the backend, the conscience config beside the weights
    weights = "adapter_model.safetensors" if peft else "model.safetensors"
    assert (saved / weights).is_file() and (saved / "conscience_config.json").is_file()
    if not peft:
        from emergent_alignment.models import load_model

        model, _ = load_model(str(saved))
        start, _ = load_model(llama_dir)
        trained = dict(model.named_parameters())
        assert any(not torch.equal(p, trained[n]) for n, p in start.named_parameters())  # the trained weights


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fsdp2", "zero3"])
def test_sharded_gradients_equal_one_process(llama_dir, tmp_path, backend):
    """Fixed pairs, one step: the gradients (the SFT and pair terms together) on two sharded processes with 2
    rows each equal one process's with the 4 rows."""
    from _fixed_pairs import gradients

    if backend == "zero3":
        needs_deepspeed()
    single, _ = gradients(llama_dir, 4, 1, str(tmp_path / "single"), max_grad_norm=0.0)  # as _worker.py grads()
    launch(tmp_path, "--check", "grads", "--backend", backend, "--model", llama_dir, "--batch", "2")
    sharded = torch.load(tmp_path / "grads.pt")
    assert set(sharded) == set(single)
    assert max((single[n] - sharded[n]).abs().max().item() for n in single) < 1e-6


@pytest.mark.slow
def test_fsdp2_checkpoints_and_resumes(llama_dir, tmp_path):
    """Checkpoints under FSDP2 (with the conscience config); a resumed run continues from the last one and
    ends where a DDP run interrupted and resumed the same way ends."""
    for backend in ("fsdp2", "ddp"):
        run = tmp_path / backend
        common = ["--check", "resume", "--backend", backend, "--model", llama_dir]
        launch(run, *common, "--steps", "2")
        assert (run / "checkpoint-2" / "conscience_config.json").is_file()
        launch(run, *common, "--steps", "3", "--resume")
        rows = [json.loads(line) for line in open(run / "conscience_log.jsonl")]
        keys = [(r["step"], r["process"], r["probe"]) for r in rows]
        assert sorted({k[0] for k in keys}) == [0, 1, 2] and len(set(keys)) == len(keys)  # each probe once
    fsdp2 = json.loads((tmp_path / "fsdp2" / "losses-0.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "losses-0.json").read_text())
    assert len(fsdp2) == 3 and fsdp2 == pytest.approx(ddp, abs=1e-5)


@pytest.mark.slow
def test_zero3_checkpoints_and_resumes(llama_dir, tmp_path):
    """Checkpoints under ZeRO-3 (DeepSpeed's partitioned states, with the conscience config); a 3-step run
    stopped after step 2 and resumed from its last checkpoint ends with the losses and the weights of a run
    that was never interrupted."""
    needs_deepspeed()
    common = ["--check", "resume", "--backend", "zero3", "--model", llama_dir, "--steps", "3"]
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    launch(interrupted, *common, "--stop-after", "2")
    assert not (interrupted / "checkpoint-3").exists()
    checkpoint = interrupted / "checkpoint-2"
    assert (checkpoint / "conscience_config.json").is_file() and (checkpoint / "global_step2").is_dir()
    launch(interrupted, *common, "--resume")
    rows = [json.loads(line) for line in open(interrupted / "conscience_log.jsonl")]
    keys = [(r["step"], r["process"], r["probe"]) for r in rows]
    assert sorted({k[0] for k in keys}) == [0, 1, 2] and len(set(keys)) == len(keys)  # each probe once
    launch(straight, *common)
    resumed = json.loads((interrupted / "losses-0.json").read_text())
    assert len(resumed) == 3 and resumed == pytest.approx(
        json.loads((straight / "losses-0.json").read_text()), abs=1e-5
    )
    a, b = (load_file(str(run / "final" / "model.safetensors")) for run in (interrupted, straight))
    assert set(a) == set(b) and max((a[n] - b[n]).abs().max().item() for n in a) < 1e-5
