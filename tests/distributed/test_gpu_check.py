"""benchmarks/gpu_check.py runs end to end: its CPU smoke run (`--tiny`: tiny shapes, 2 processes, gloo)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_case_in_step(tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--tiny", "--steps", "2"]
    cmd += ["--new-tokens", "8", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [r["case"] for r in results] == ["tiny-ddp", "tiny-lora-ddp"]
    for r in results:
        assert r["ok"] and r["in_step"] and r["processes"] == 2 and r["step_s"] > 0, r
        assert r["calls"][0] == r["calls"][1] > 0 and len(r["flag_rate"]) == 2
    assert "in step: yes" in run.stdout


def test_gpu_check_plans_the_vllm_pair_only_where_vllm_is_installed(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))  # as test_collective_calls imports it
    import gpu_check

    monkeypatch.setattr(gpu_check, "has_vllm", lambda: False)
    assert not any(v[3] for v in gpu_check.cases(False).values())
    monkeypatch.setattr(gpu_check, "has_vllm", lambda: True)
    plan = gpu_check.cases(False)
    assert plan["qwen1.5b-lora-vllm"] == ("qwen1.5b", "ddp", True, True)
    assert plan["qwen1.5b-lora-ddp"] == ("qwen1.5b", "ddp", True, False)  # the same run without vLLM, beside it
