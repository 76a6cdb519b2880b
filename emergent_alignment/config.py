"""`EmergentAlignmentConfig`: TRL's `SFTConfig` plus the conscience and alignment-loss fields."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from .conscience import ConscienceConfig
from .losses import LOSS_TYPES

# conscience_* fields of the trainer config -> ConscienceConfig fields
CONSCIENCE_FIELDS = (
    "question",
    "flag_threshold",
    "correction",
    "max_attempts",
    "max_new_tokens",
    "temperature",
    "top_p",
    "num_candidates",
)


def _cpu_safe_bf16() -> bool:
    """bf16 only where a GPU supports it: SFTConfig's default (True) fails on a CPU-only machine."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


@dataclass
class EmergentAlignmentConfig(SFTConfig):
    r"""
    Configuration for [`EmergentAlignmentTrainer`]: every field of `SFTConfig`, plus:

    > Alignment loss

    alignment_weight (`float`, defaults to `1.0`): weight of the DPO term; `0` is plain SFT through
        the same code path (the Emergent Misalignment baseline).
    beta (`float`, defaults to `0.1`): DPO temperature.
    alignment_loss_type (`str`, defaults to `"sigmoid"`): `"sigmoid"` (DPO) or `"ipo"`; the controls
        (`losses.py`): `"anchor"` (IPO with tau = 0: the pairs without the label push), `"kl"` (k3
        estimate of KL to the frozen copy on both rows of each pair, label-blind) and `"sft"` (NLL of
        the corrections alone, no reference).
    pair_margin (`float`, defaults to `0.1`): a pair enters the loss only if its correction passed
        review and p_aligned(correction) - p_aligned(flagged) >= pair_margin.
    pair_order (`str`, defaults to `"conscience"`): `"random"` assigns chosen/rejected by a coin flip
        (a control showing whether the effect comes from the conscience).
    max_pairs_per_step (`int` or `None`): at most this many pairs per process per conscience step (per
        window, see `conscience_every`). The trainer's `pair_budget` argument (a per-step list, e.g.
        another run's pair counts) caps them too, so a control can be given exactly the pair count of
        the run it controls for.

    > Online conscience step

    conscience_every (`int`, defaults to `1`): run the conscience step once every this many optimizer
        steps and spread its pairs over them (amortization, as TRL's `steps_per_generation`): pair i goes
        to step i mod k of the window, each step's DPO term the mean over its own pairs. The window's
        pairs are saved in checkpoints (`conscience_pairs.json`), so a resume inside one continues
        exactly. `0` turns the conscience off.
    probe_source (`str`, defaults to `"dataset"`): `"dataset"` (the trainer's `probe_prompts`) or
        `"batch"` (the prompts of the current training micro-batch; not with packing).
    probe_batch_size (`int`, defaults to `8`): probes per process per conscience step, sampled in one
        generation batch.
    probe_temperature / probe_top_p / probe_max_new_tokens: how the policy samples its probe answers.
    conscience_question, conscience_flag_threshold, conscience_correction, conscience_max_attempts,
    conscience_max_new_tokens, conscience_temperature, conscience_top_p, conscience_num_candidates
        (candidates per strategy per flagged answer in each correction round, all generated in one
        call; with `conscience_correction="both"` revisions and resamples share it): override the
        `ConscienceConfig` (defaults, or the checkpoint's `conscience_config.json`). `None` keeps it.
    conscience_log (`bool`, defaults to `True`): write every reviewed probe to
        `output_dir/conscience_log.jsonl`.
    conscience_reuse_reviews (`bool`, defaults to `True`): the revisions (and their reviews) continue from
        the keys and values of the review prompts they extend (`Conscience.reusing_reviews`), which are held
        from the review to the end of the corrections: per probe, its review prompt's tokens x layers x
        2 x kv-heads x head-dim values (e.g. about 57 KB per token for a 7B model with 4 key-value heads
        in bf16; 0.5 MB without grouped-query attention). `False` computes every prompt afresh instead.

    > Frozen copy and sharded backends

    ref_adapter_name (`str` or `None`): with a PEFT model given with an adapter that is already
        trained, the name of a loaded copy of its starting adapter, which then acts as the frozen copy
        (disabling a trained adapter is not the model training starts from; the trainer refuses it).
    ds3_gather_for_generation (`bool`, defaults to `True`): under DeepSpeed ZeRO-3, gather the weights
        once for the whole conscience step (probe answers, review, corrections, reference log-probs);
        `False` for models too large to gather on one GPU: slower, every forward gathers its layers
        (TRL's option of the same name).

    > vLLM (TRL's names; `emergent_alignment/vllm_generation.py`, docs/core.md "vLLM")

    use_vllm (`bool`, defaults to `False`): sample the probe answers through vLLM and, with PEFT, the
        corrections too (the engine's base weights are the frozen conscience; the policy is the base
        plus its adapter, a LoRA request refreshed every conscience step, never merged).
    vllm_mode (`str`, defaults to `"colocate"`): `colocate` (an engine in each training process) or
        `server` (a running `vllm serve` / `trl vllm-serve`; one training process).
    vllm_server_base_url, vllm_server_host, vllm_server_port, vllm_server_timeout: server mode's address.
    vllm_tensor_parallel_size, vllm_gpu_memory_utilization, vllm_enable_sleep_mode,
        vllm_max_model_length, vllm_max_lora_rank: colocate mode's engine (as TRL's GRPOConfig).

    Every `SFTConfig` option either works with the alignment term or is rejected here or by the trainer,
    naming the field (neftune_noise_alpha, a tokenizer as chat_template_path, reentrant checkpointing with
    several processes, ...): docs/core.md, "Which SFTConfig options work". Gradient checkpointing defaults
    to `use_reentrant=False`.

    Changed default: `bf16` is `None`, meaning on only where a GPU supports it (SFTConfig turns it on
    unconditionally, which fails on a CPU).
    """

    alignment_weight: float = field(default=1.0, metadata={"help": "Weight of the DPO term (0 = plain SFT)."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta."})
    alignment_loss_type: str = field(
        default="sigmoid", metadata={"help": "sigmoid or ipo; controls: anchor, kl or sft (see losses.py)."}
    )
    pair_margin: float = field(default=0.1, metadata={"help": "Minimum p_aligned gain of a correction."})
    pair_order: str = field(default="conscience", metadata={"help": "conscience, or random (control)."})
    max_pairs_per_step: int | None = field(default=None, metadata={"help": "Cap on pairs per process per step."})
    conscience_every: int = field(
        default=1, metadata={"help": "Conscience step every N optimizer steps, its pairs spread over them (0: off)."}
    )
    probe_source: str = field(default="dataset", metadata={"help": "dataset or batch."})
    probe_batch_size: int = field(
        default=8, metadata={"help": "Probe prompts per process per conscience step (sampled in one generation batch)."}
    )
    probe_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of probe answers."})
    probe_top_p: float = field(default=1.0, metadata={"help": "Top-p of probe answers."})
    probe_max_new_tokens: int = field(default=64, metadata={"help": "Length limit of probe answers."})
    conscience_question: str | None = field(default=None, metadata={"help": "The introspective question."})
    conscience_flag_threshold: float | None = field(default=None, metadata={"help": "Flag when p_aligned < this."})
    conscience_correction: str | None = field(default=None, metadata={"help": "revise, resample or both."})
    conscience_max_attempts: int | None = field(default=None, metadata={"help": "Correction rounds."})
    conscience_max_new_tokens: int | None = field(default=None, metadata={"help": "Length limit of corrections."})
    conscience_temperature: float | None = field(default=None, metadata={"help": "Temperature of corrections."})
    conscience_top_p: float | None = field(default=None, metadata={"help": "Top-p of corrections."})
    conscience_num_candidates: int | None = field(
        default=None, metadata={"help": "Correction candidates per strategy per flagged answer (one generate call)."}
    )
    conscience_log: bool = field(default=True, metadata={"help": "Write output_dir/conscience_log.jsonl."})
    conscience_reuse_reviews: bool = field(
        default=True, metadata={"help": "Revisions continue from the review prompts' keys and values (memory held)."}
    )
    ref_adapter_name: str | None = field(
        default=None, metadata={"help": "PEFT: a loaded adapter acting as the frozen copy (for a trained adapter)."}
    )
    ds3_gather_for_generation: bool = field(
        default=True, metadata={"help": "ZeRO-3: gather the weights for the conscience step (False: too large)."}
    )
    use_vllm: bool = field(default=False, metadata={"help": "Probe answers (and PEFT corrections) through vLLM."})
    vllm_mode: str = field(default="colocate", metadata={"help": "colocate or server."})
    vllm_server_base_url: str | None = field(default=None, metadata={"help": "Server mode: overrides host/port."})
    vllm_server_host: str = field(default="0.0.0.0", metadata={"help": "Server mode: host."})
    vllm_server_port: int = field(default=8000, metadata={"help": "Server mode: port."})
    vllm_server_timeout: float = field(default=240.0, metadata={"help": "Server mode: seconds to wait for it."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "Colocate: processes per engine."})
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata={"help": "Colocate: the engine's GPU share."})
    vllm_enable_sleep_mode: bool = field(default=False, metadata={"help": "Colocate: free memory between steps."})
    vllm_max_model_length: int | None = field(default=None, metadata={"help": "The engine's context length."})
    vllm_max_lora_rank: int | None = field(default=None, metadata={"help": "Default: the adapter's rank."})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 (default: on only where a GPU supports it)."})

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:
            self.bf16 = _cpu_safe_bf16()
        self._validate()
        super().__post_init__()
        self._check_sft_options()

    def _validate(self):
        checks = [
            ("alignment_weight", self.alignment_weight >= 0, "must be >= 0"),
            ("beta", self.beta > 0, "must be > 0"),
            ("alignment_loss_type", self.alignment_loss_type in LOSS_TYPES, f"must be one of {', '.join(LOSS_TYPES)}"),
            ("pair_margin", -1 <= self.pair_margin <= 1, "must be in [-1, 1]"),
            ("pair_order", self.pair_order in ("conscience", "random"), "must be conscience or random"),
            ("max_pairs_per_step", self.max_pairs_per_step is None or self.max_pairs_per_step >= 0, "must be >= 0"),
            ("conscience_every", self.conscience_every >= 0, "must be >= 0"),
            ("probe_source", self.probe_source in ("dataset", "batch"), "must be dataset or batch"),
            ("probe_batch_size", self.probe_batch_size >= 1, "must be >= 1"),
            ("probe_temperature", self.probe_temperature >= 0, "must be >= 0"),
            ("probe_top_p", 0 < self.probe_top_p <= 1, "must be in (0, 1]"),
            ("probe_max_new_tokens", self.probe_max_new_tokens >= 1, "must be >= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")
        if self.probe_source == "batch" and self.packing and self.conscience_every:
            raise ValueError("probe_source='batch' cannot be combined with packing: a packed row has no single prompt")
        self.conscience_config(ConscienceConfig())  # validates the conscience_* overrides
        if self.use_vllm:
            from .vllm_generation import VLLMSettings

            VLLMSettings.from_args(self)  # validates the vllm_* fields (vLLM itself is needed only by the trainer)

    @property
    def aligning(self) -> bool:
        """Whether the alignment term can enter the loss."""
        return self.conscience_every > 0 and self.alignment_weight > 0

    def _check_sft_options(self):
        """`SFTConfig`/`TrainingArguments` options that would not hold for the alignment term: rejected,
        naming the field. (Every other option works: see docs/core.md, "Which SFTConfig options work".)"""
        if self.chat_template_path is not None and not str(self.chat_template_path).endswith((".jinja", ".j2")):
            raise ValueError(
                "chat_template_path: only a .jinja/.j2 template file is supported; cloning a tokenizer's template "
                "adds tokens and resizes the embeddings after the frozen copy was made"
            )
        if self.neftune_noise_alpha is not None and self.aligning:
            raise ValueError(
                "neftune_noise_alpha: NEFTune noise would reach the DPO term's policy log-probs but not the frozen "
                "copy's reference, biasing every pair; set it to None (or alignment_weight=0)"
            )
        if self.activation_checkpointing:
            kwargs = dict(self.activation_checkpointing_kwargs or {})
            if kwargs.get("use_reentrant") and self.aligning and self.world_size > 1:
                raise ValueError(
                    "gradient_checkpointing_kwargs: use_reentrant=True cannot train with several processes: the SFT "
                    "and pair forwards before one backward mark each parameter ready twice under DDP; leave "
                    "use_reentrant unset or False"
                )
            kwargs.setdefault("use_reentrant", False)  # what transformers picks only when no kwargs are given
            self.activation_checkpointing_kwargs = self.gradient_checkpointing_kwargs = kwargs

    def conscience_config(self, base: ConscienceConfig) -> ConscienceConfig:
        """`base` with this config's conscience_* overrides applied (and validated)."""
        from dataclasses import asdict

        values = asdict(base)
        for name in CONSCIENCE_FIELDS:
            value = getattr(self, f"conscience_{name}")
            if value is not None:
                values[name] = value
        try:
            return ConscienceConfig(**values)
        except ValueError as e:
            raise ValueError(f"conscience_* field: {e}") from None
