"""`EmergentAlignmentTrainer`: TRL's `SFTTrainer` plus an online, conscience-driven DPO term.

Once every `conscience_every` = k optimizer steps (the window's first):
1. probes: `probe_batch_size` prompts, from `probe_prompts` or from the current training batch;
2. the policy samples an answer to each (KV cache on, also under gradient checkpointing);
3. the frozen copy reviews each answer (the conscience step) and corrects the flagged ones (the
   revisions continue from the review prompts' keys and values: `Conscience.reusing_reviews`);
4. a flagged answer whose correction passed review and gained at least `pair_margin` in
   p_aligned becomes a pair (chosen = correction, rejected = flagged answer); the frozen copy's
   log-probs of both are computed once, as the DPO reference.
The window's k steps share the pairs (pair i to step i mod k; the pairs are saved in checkpoints, so a
resume inside a window continues exactly). Every micro-batch of a step takes its share of the step's
pairs (every N-th, N = accumulation steps) and computes, with TWO forwards before its one backward,

    loss = SFTTrainer.compute_loss(SFT rows) + alignment_weight * dpo_term(its pairs)

The first forward is the parent's own code path (packing, padding-free rows, loss_type,
`compute_loss_func`, the MoE auxiliary loss and TRL's metrics all apply). The second runs over the
pair rows only, right-padded to their own width. dpo_term sums the micro-batch's pair losses and
divides by all pairs of the step (over micro-batches and processes), so accumulated, multi-process
gradients equal one big batch's. Every process runs the pair forward on every micro-batch of a step
with pairs (an empty share runs a dummy row), as ZeRO-3 needs. Each phase's wall time per optimizer
step is logged as `timing/<phase>` (generate, review, correct, ref_logps, forward).

The frozen copy: with PEFT, the same weights with the adapter disabled (or a named reference
adapter, `ref_adapter_name`, when the trained adapter does not start fresh); otherwise a second model
loaded from the checkpoint (or a state-dict copy of the model given) and prepared for the backend as
TRL prepares its reference models. It never changes, and all its forwards run in eval mode.

Sharded backends (DeepSpeed ZeRO-3, FSDP2): every forward and every `generate` is a collective, so
every process makes the same sequence of calls whatever its data: the same number of probes, the
flagged lists padded to the largest over processes (`Conscience.correct(global_max=...)`), the
reference log-probs everywhere (a dummy row on a process without pairs), `synced_gpus` generation.
The probe answers, review, corrections and reference log-probs run inside one context, TRL's
`unwrap_model_for_generation` (gathers ZeRO-3 weights once; `ds3_gather_for_generation=False` for
models too large to gather). Metrics (`sft/*`, `dpo/*`, `rewards/*`, `conscience/*`) reach
`logs` through `log()`, so every `report_to` integration receives them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from trl import SFTTrainer
from trl.distributed import DistributedBackend
from trl.models.utils import prepare_deepspeed, prepare_fsdp, unwrap_model_for_generation
from trl.trainer.utils import add_fused_lm_head, use_adapter

from .chat import encode_prompt, encode_prompt_completion, ensure_chat_template, ensure_pad_token, prompt_messages
from .config import EmergentAlignmentConfig
from .conscience import Conscience, ConscienceConfig
from .generation import SamplingConfig, decode, generate, is_sharded
from .io import write_json, write_text
from .losses import AVERAGED, REFERENCE_FREE, dpo_loss, sequence_logps
from .tensors import right_pad_with_labels

INDEX_COLUMN = "ea_index"  # row index kept through data preparation, to recover batch prompts
LOG_NAME = "conscience_log.jsonl"
PAIRS_NAME = "conscience_pairs.json"  # in a checkpoint dir: the pairs of the window it was saved in
PHASES = ("generate", "review", "correct", "ref_logps", "forward")  # logged as `timing/<phase>`


@dataclass
class Pairs:
    """The DPO pairs of one conscience step on this process, spread over the `len(totals)` optimizer steps
    of its window (from step `step` on): pair i belongs to the window's step i % len(totals)."""

    chosen: list[list[int]]  # token ids: prompt + completion
    rejected: list[list[int]]
    chosen_start: list[int]  # where each completion starts
    rejected_start: list[int]
    ref_chosen: torch.Tensor  # (P,) frozen copy's log-probs
    ref_rejected: torch.Tensor  # (P,)
    totals: list[int]  # per step of the window: its pairs over all processes
    step: int = 0  # the window's first optimizer step

    def __len__(self):
        return len(self.chosen)

    @property
    def total(self) -> int:
        """Pairs over all processes in the whole window."""
        return sum(self.totals)

    def select(self, idx: list[int], totals: list[int] | None = None, step: int | None = None) -> Pairs:
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Pairs(
            pick(self.chosen),
            pick(self.rejected),
            pick(self.chosen_start),
            pick(self.rejected_start),
            self.ref_chosen[idx],
            self.ref_rejected[idx],
            list(self.totals if totals is None else totals),
            self.step if step is None else step,
        )

    def at(self, step: int) -> Pairs | None:
        """The pairs of optimizer step `step` (None when no process has any there, or outside the window)."""
        j, k = step - self.step, len(self.totals)
        if not 0 <= j < k or not self.totals[j]:
            return None
        return self.select(list(range(j, len(self), k)), [self.totals[j]], step)

    def to_dict(self) -> dict:
        d = {name: getattr(self, name) for name in ("chosen", "rejected", "chosen_start", "rejected_start")}
        return d | {
            "ref_chosen": self.ref_chosen.tolist(),
            "ref_rejected": self.ref_rejected.tolist(),
            "totals": self.totals,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Pairs:
        refs = (torch.tensor(d[k], dtype=torch.float32) for k in ("ref_chosen", "ref_rejected"))
        return cls(d["chosen"], d["rejected"], d["chosen_start"], d["rejected_start"], *refs, d["totals"], d["step"])


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


class _KeepIndex:
    """Wraps TRL's collator so the row index survives collation (the collator keeps only ids/labels)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples):
        index = [e.pop(INDEX_COLUMN) for e in examples]
        batch = self.collator(examples)
        batch[INDEX_COLUMN] = torch.tensor(index)
        return batch


class EmergentAlignmentTrainer(SFTTrainer):
    """`SFTTrainer` with the conscience step and the alignment (DPO) term. See the module doc."""

    _tag_names = ["trl", "sft", "emergent-alignment"]
    _name = "EmergentAlignment"

    def __init__(
        self,
        model,
        args: EmergentAlignmentConfig | None = None,
        train_dataset=None,
        processing_class=None,
        probe_prompts: list[list[dict]] | None = None,
        conscience_config: ConscienceConfig | None = None,
        peft_config=None,
        ref_model=None,
        pair_budget: list[int] | None = None,
        **kwargs,
    ):
        if args is None:
            args = EmergentAlignmentConfig(output_dir="emergent-alignment-output")
        if not isinstance(args, EmergentAlignmentConfig):
            raise TypeError("args must be an EmergentAlignmentConfig")
        _check_model_loading(model, args, kwargs)
        model_dir = model if isinstance(model, str) else getattr(model.config, "_name_or_path", None)
        model, processing_class = self._load(model, args, processing_class)
        active = args.conscience_every > 0
        if active and args.probe_source == "dataset" and not probe_prompts:
            raise ValueError("probe_source='dataset' needs probe_prompts (a list of conversations)")
        self.probe_prompts = [list(p) for p in probe_prompts] if probe_prompts else None
        self.pair_budget = pair_budget  # per-step caps on this process's pairs (step i -> pair_budget[i])
        self._train_prompts = None
        if active and args.probe_source == "batch":
            train_dataset = self._add_index(train_dataset)

        # The frozen copy, made before SFTTrainer patches the forward: PEFT shares the weights.
        # An explicit `ref_model` (TRL's convention) replaces it, at the cost of a second model.
        if peft_config is not None and args.ref_adapter_name is not None:
            raise ValueError(
                "ref_adapter_name: a fresh adapter (peft_config) is its own reference with the adapter off"
            )
        self.ref_adapter = _reference_adapter(model, args.ref_adapter_name) if peft_config is None else None
        self.ref_model = ref_model
        if ref_model is None and peft_config is None and not _is_peft(model):
            self.ref_model = _reference_model(model, model_dir if isinstance(model_dir, str) else None, args)
        if self.ref_model is not None:
            self.ref_model.eval().requires_grad_(False)
            add_fused_lm_head(self.ref_model)
        _check_zero3_peft_checkpointing(_zero3_requested() and (peft_config is not None or _is_peft(model)), args)

        super().__init__(
            model,
            args=args,
            train_dataset=train_dataset,
            processing_class=processing_class,
            peft_config=peft_config,
            **kwargs,
        )
        _check_parallelism(self.accelerator.parallelism_config)
        self._backend = DistributedBackend(self.accelerator)
        if self._backend.fsdp_version == 1:
            raise ValueError(
                "fsdp_version: FSDP1 is not supported by EmergentAlignmentTrainer; use fsdp_version 2 "
                "(examples/accelerate/fsdp2.yaml)"
            )
        _check_zero3_peft_checkpointing(self._backend.is_zero3 and _is_peft(self.model), args)
        if self.ref_model is not None:
            self.ref_model = self._prepare_reference(self.ref_model)
        if self._train_prompts is not None:
            self.data_collator = _KeepIndex(self.data_collator)

        base = conscience_config or ConscienceConfig.from_pretrained(
            model_dir if model_dir and os.path.isdir(model_dir) else None
        )
        frozen = (lambda: self._frozen_adapter(self.model)) if self.ref_model is None else None
        judge = self.accelerator.unwrap_model(self.ref_model) if self.ref_model is not None else self.model
        self.conscience = Conscience(judge, self._tokenizer, args.conscience_config(base), frozen=frozen)
        self._window: Pairs | None = None  # the last conscience step's pairs, spread over its window
        self._pairs: Pairs | None = None  # this optimizer step's share of them
        self._phase_times = defaultdict(float)  # this optimizer step's seconds per phase (`timing/*`)
        self._step_seen, self._micro = -1, 0
        self._frozen_depth = 0  # nesting of `_frozen_adapter` blocks
        self._sft_step = None  # the step's SFT loss so far (for `sft/loss`)
        self._alignment_metrics = defaultdict(list)  # ours; SFTTrainer's `_metrics` is private to it
        self._log_path = os.path.join(args.output_dir, LOG_NAME)
        self.vllm = self._start_vllm(model_dir) if args.use_vllm and active else None

    # -- set-up ---------------------------------------------------------------------------

    def _start_vllm(self, model_dir):
        """The vLLM engine for probe answers (and, with PEFT, corrections): see `vllm_generation.py`."""
        from .vllm_generation import VLLMGeneration, VLLMSettings

        args = self.args
        if self._backend.is_zero3 or self._backend.fsdp_version:
            raise ValueError("use_vllm: not yet supported under DeepSpeed ZeRO-3 or FSDP2 (DDP or one process)")
        if args.vllm_mode == "server" and self.accelerator.num_processes > 1:
            raise ValueError("use_vllm: vllm_mode='server' runs with one training process; use colocate with several")
        if self.ref_adapter is not None:
            raise ValueError("use_vllm: not yet supported with ref_adapter_name (a conscience served as a second LoRA)")
        engine = VLLMGeneration(
            self.accelerator.unwrap_model(self.model),
            self._tokenizer,
            VLLMSettings.from_args(args),
            model_path=model_dir if isinstance(model_dir, str) else None,
            workdir=os.path.join(args.output_dir, "vllm"),
            accelerator=self.accelerator,
        )
        if engine.serves_conscience:  # PEFT: the engine's base weights are the frozen copy
            self.conscience.generate_fn = engine.generate_fn("conscience")
        return engine

    @staticmethod
    def _load(model, args, tokenizer):
        from .models import load_model, load_tokenizer

        if isinstance(model, str):
            kw = dict(args.model_init_kwargs or {})
            remote = kw.get("trust_remote_code", args.trust_remote_code)
            tokenizer = tokenizer or load_tokenizer(model, remote, revision=kw.get("revision"))
            model, _ = load_model(
                model,
                kw.get("dtype"),
                remote,
                revision=kw.get("revision"),
                attn_implementation=kw.get("attn_implementation"),
            )
        if tokenizer is None:
            raise ValueError("pass processing_class (the tokenizer) with an instantiated model")
        ensure_chat_template(tokenizer)
        ensure_pad_token(tokenizer)
        return model, tokenizer

    def _prepare_reference(self, ref):
        """The reference model on the backend, as TRL prepares its reference and reward models: sharded
        like the policy under ZeRO-3 and FSDP2, on the device (no DDP wrapper) otherwise."""
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(ref, self.accelerator)
        if self.is_fsdp_enabled:
            return prepare_fsdp(ref, self.accelerator)
        return self.accelerator.prepare_model(ref, evaluation_mode=True)

    @contextmanager
    def _frozen_adapter(self, model):
        """Inside: the PEFT model acts as the frozen copy (the adapter off, or the named reference adapter).
        Inside an outer such block it switches nothing again (each switch walks every module)."""
        if self._frozen_depth:
            self._frozen_depth += 1
            try:
                yield
            finally:
                self._frozen_depth -= 1
            return
        with use_adapter(model, self.ref_adapter):
            self._frozen_depth = 1
            try:
                yield
            finally:
                self._frozen_depth = 0

    def _add_index(self, dataset):
        if "messages" not in dataset.column_names:
            raise ValueError("probe_source='batch' needs a 'messages' column to recover the prompts")
        self._train_prompts = [prompt_messages(m) for m in dataset["messages"]]
        return dataset.add_column(INDEX_COLUMN, list(range(len(dataset))))

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self._train_prompts is not None and INDEX_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, INDEX_COLUMN]

    # -- the online conscience step ---------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch=None):
        step, every = self.state.global_step, self.args.conscience_every
        if step != self._step_seen:  # the first micro-batch of an optimizer step
            self._step_seen, self._micro = step, 0
            if every > 0 and step % every == 0:  # the window's first step: its pairs for the next `every` steps
                self._window = self._conscience_step(model, inputs, step)
            self._pairs = self._window.at(step) if self._window is not None else None
        else:
            self._micro += 1
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients:  # the step's last micro-batch, on every process
            self._record_timings()
        return loss

    @contextmanager
    def _timed(self, phase: str):
        """Adds the wall time of the block to `timing/<phase>` of the current optimizer step."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._phase_times[phase] += time.perf_counter() - t0

    def _record_timings(self):
        """`timing/*`: seconds of each phase in this optimizer step (0 where it did not run), averaged over
        processes (a collective: every process calls it once per step)."""
        times = torch.tensor([self._phase_times[p] for p in PHASES], device=self.accelerator.device)
        for phase, t in zip(PHASES, self.accelerator.reduce(times, "mean").tolist()):
            self._record(f"timing/{phase}", t)
        self._phase_times.clear()

    def _probes(self, inputs, step: int) -> list[list[dict]]:
        n, rank = self.args.probe_batch_size, self.accelerator.process_index
        if self.args.probe_source == "batch":
            rows = inputs[INDEX_COLUMN].tolist()
            return [self._train_prompts[rows[i % len(rows)]] for i in range(n)]
        rng = random.Random(f"{self.args.seed}-{step}-{rank}")
        return [self.probe_prompts[rng.randrange(len(self.probe_prompts))] for _ in range(n)]

    @torch.no_grad()
    def _conscience_step(self, model, inputs, step: int) -> Pairs | None:
        ref = self.accelerator.unwrap_model(self.ref_model) if self.ref_model is not None else None  # not the engine
        with _no_router_logits(self.model, ref), self._gathered() as policy:
            return self._review_probes(policy, inputs, step)

    @contextmanager
    def _gathered(self):
        """The conscience step's one context: TRL's `unwrap_model_for_generation` (ZeRO-3 weights gathered
        once unless `ds3_gather_for_generation` is off; gradient checkpointing off, then back on with its
        kwargs). Under FSDP2 each forward gathers its layers, so every process must run the same calls."""
        with unwrap_model_for_generation(
            self.model_wrapped,
            self.accelerator,
            gather_deepspeed3_params=self.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
        ) as policy:
            yield policy

    def _global_max(self, n: int) -> int:
        """The largest `n` over all processes (a collective)."""
        return int(self.accelerator.reduce(torch.tensor(n, device=self.accelerator.device), "max").item())

    def _review_probes(self, policy, inputs, step: int) -> Pairs | None:
        args, tok = self.args, self._tokenizer
        rank, several = self.accelerator.process_index, self.accelerator.num_processes > 1
        probes = self._probes(inputs, step)
        torch.manual_seed(args.seed + 1_000_003 * step + rank)  # same probes and samples on resume
        sampling = SamplingConfig(args.probe_max_new_tokens, args.probe_temperature, args.probe_top_p)
        # the probe batch in one generation call (its size is `probe_batch_size`, the same on every process)
        prompts = [encode_prompt(tok, p) for p in probes]
        with self._timed("generate"):
            if self.vllm is not None:
                self.vllm.sync(policy)  # the engine's policy becomes this step's (adapter or weights)
                answers = self.vllm.generate_policy(prompts, sampling)
            else:
                answers = generate(policy, tok, prompts, sampling, batch_size=len(probes))
        responses = [decode(tok, ids).strip() for ids in answers]
        correcting = args.alignment_weight > 0
        reuse = correcting and args.conscience_reuse_reviews
        # From the review to the reference log-probs, only the frozen copy runs: its adapter switched off once.
        # The revisions continue from the review prompts' keys and values (see `Conscience.reusing_reviews`).
        frozen = self._frozen_adapter(self.model) if self.ref_model is None else nullcontext()
        with frozen, self.conscience.reusing_reviews() if reuse else nullcontext():
            with self._timed("review"):
                verdicts = self.conscience.review(probes, responses)

            flagged = [i for i, v in enumerate(verdicts) if v.flagged]
            corrections = {}
            if correcting and (flagged or several):  # with several processes, also with none flagged
                with self._timed("correct"):
                    fixed = self.conscience.correct(
                        [probes[i] for i in flagged],
                        [responses[i] for i in flagged],
                        global_max=self._global_max if several else None,
                        filler=(probes[0], responses[0]),
                    )
                corrections = dict(zip(flagged, fixed))
            use = [
                i
                for i, c in corrections.items()
                if c.passed and c.verdict.p_aligned - verdicts[i].p_aligned >= args.pair_margin
            ]
            use = use[: self._pair_cap(step)]
            pairs, use = self._make_pairs(probes, responses, corrections, use, step, rank)

        self._log_probes(step, probes, responses, verdicts, corrections, set(use))
        counts = [
            len(flagged),
            len(probes),
            sum(v.p_aligned for v in verdicts),
            sum(c.passed for c in corrections.values()),
        ]
        flagged_n, probes_n, p_sum, passed = self.accelerator.reduce(
            torch.tensor(counts, dtype=torch.float, device=self.accelerator.device), "sum"
        ).tolist()  # over all processes
        self._record("conscience/flag_rate", flagged_n / probes_n)
        self._record("conscience/p_aligned_mean", p_sum / probes_n)
        self._record("conscience/corrections_passed", passed)
        self._record("conscience/pairs", pairs.total if pairs is not None else 0)
        return pairs

    def _pair_cap(self, step: int) -> int | None:
        caps = [self.args.max_pairs_per_step]
        if self.pair_budget is not None:
            caps.append(self.pair_budget[step] if step < len(self.pair_budget) else 0)
        caps = [c for c in caps if c is not None]
        return min(caps) if caps else None

    def _make_pairs(self, probes, responses, corrections, use, step, rank) -> tuple[Pairs | None, list[int]]:
        tok, max_len = self._tokenizer, self.args.max_length
        rows = []
        coin = random.Random(f"pair-order-{self.args.seed}-{step}-{rank}")
        for i in use:
            (pc, cc), (pr, rr) = (
                encode_prompt_completion(tok, probes[i], text) for text in (corrections[i].response, responses[i])
            )
            if self.args.pair_order == "random" and coin.random() < 0.5:
                (pc, cc), (pr, rr) = (pr, rr), (pc, cc)  # the control: direction by coin flip
            if max_len is None or max(len(pc) + len(cc), len(pr) + len(rr)) <= max_len:
                rows.append((i, pc + cc, len(pc), pr + rr, len(pr)))
        used = [r[0] for r in rows]
        # pair i goes to step i % k of the window (k = conscience_every): each step's count over all processes
        k = max(self.args.conscience_every, 1)
        counts = torch.tensor([len(range(j, len(rows), k)) for j in range(k)], device=self.accelerator.device)
        totals = [int(t) for t in self.accelerator.reduce(counts, "sum").tolist()]
        if sum(totals) == 0:
            return None, used
        chosen, c_start = [r[1] for r in rows], [r[2] for r in rows]
        rejected, r_start = [r[3] for r in rows], [r[4] for r in rows]
        with self._timed("ref_logps"):
            if self.args.alignment_loss_type in REFERENCE_FREE:  # the same on every process: no forward skipped alone
                ref_c, ref_r = torch.zeros(len(chosen)), torch.zeros(len(rejected))
            else:
                ref_c, ref_r = (self._ref_logps(ids, start) for ids, start in ((chosen, c_start), (rejected, r_start)))
        return Pairs(chosen, rejected, c_start, r_start, ref_c, ref_r, totals, step), used

    def _ref_logps(self, rows: list[list[int]], starts: list[int]) -> torch.Tensor:
        n = len(rows)
        if not n:  # a dummy row: every process runs the same forwards (ZeRO-3 with PEFT shards the frozen copy)
            rows, starts = [[self._tokenizer.pad_token_id] * 2], [2]
        ids, mask, labels = _right_pad(rows, starts, self._tokenizer.pad_token_id)
        model = self.ref_model or self.accelerator.unwrap_model(self.model_wrapped)
        frozen = nullcontext() if self.ref_model is not None else self._frozen_adapter(model)
        dev = self.accelerator.device
        with frozen, _eval_mode(model), torch.no_grad(), self.accelerator.autocast():
            out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev), fused_lm_head=True)
        # IPO and the controls use length-averaged log-probs
        seq = sequence_logps(out.log_probs, out.label_mask, average=self.args.alignment_loss_type in AVERAGED)
        return seq[:n].cpu()

    # -- the loss ---------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop(INDEX_COLUMN, None)
        if not self.model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self._timed("forward"):
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = result if return_outputs else (result, None)
            self._add_sft_loss(loss.detach(), num_items_in_batch)
            if self._pairs is not None and self.args.alignment_weight > 0:
                loss = loss + self.args.alignment_weight * self._dpo_term(model, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _loss_is_scaled_for_ga(self, num_items_in_batch) -> bool:
        """Whether `Trainer.training_step` leaves the returned loss undivided by the accumulation steps
        (the same rule as `training_step`, read from the same public attributes)."""
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return bool(self.model_accepts_loss_kwargs and num_items_in_batch is not None) or (
            self.compute_loss_func is not None
        )

    def _accumulation_steps(self) -> int:
        return max(getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps), 1)

    def _add_sft_loss(self, loss, num_items_in_batch):
        """`sft/loss`: the parent's loss term summed over the step's micro-batches in the units of the
        logged `loss` (so `loss` = `sft/loss` + alignment_weight * `dpo/loss`), averaged over processes."""
        if not self._loss_is_scaled_for_ga(num_items_in_batch):
            loss = loss / self._accumulation_steps()
        self._sft_step = loss if self._sft_step is None else self._sft_step + loss
        if self.accelerator.sync_gradients:  # the step's last micro-batch, on every process
            self._record("sft/loss", self.accelerator.reduce(self._sft_step.float(), "mean").item())
            self._sft_step = None

    def _micro_pairs(self) -> Pairs:
        """This micro-batch's share of the step's pairs: every N-th, N = accumulation steps."""
        n = self._accumulation_steps()
        return self._pairs.select(list(range(self._micro % n, len(self._pairs), n)))

    def _dpo_term(self, model, num_items_in_batch):
        """The second forward, over this micro-batch's pairs only: sum of their DPO losses / all pairs of
        the step, scaled so that the accumulated, process-averaged gradient is that of the mean over all
        pairs. Every process calls it on every micro-batch of a step with pairs (a dummy row if its share
        is empty), so sharded models (ZeRO-3, FSDP) see the same forwards on every process."""
        pairs = self._micro_pairs()
        p, dev = len(pairs), self.accelerator.device
        rows, starts = pairs.chosen + pairs.rejected, pairs.chosen_start + pairs.rejected_start
        if not p:
            rows, starts = [[self._tokenizer.pad_token_id] * 2], [2]  # no label: contributes nothing
        ids, mask, labels = (t.to(dev) for t in _right_pad(rows, starts, self._tokenizer.pad_token_id))
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True, use_cache=False)
        seq = sequence_logps(out.log_probs, out.label_mask, average=self.args.alignment_loss_type in AVERAGED)  # (2P,)
        if not p:
            self._record_dpo(seq.new_zeros(0), seq.new_zeros(0), seq.new_zeros(0))
            return seq.sum() * 0.0  # keeps the graph connected
        losses, r_c, r_r = dpo_loss(
            seq[:p],
            seq[p:],
            pairs.ref_chosen.to(seq),
            pairs.ref_rejected.to(seq),
            self.args.beta,
            self.args.alignment_loss_type,
        )
        self._record_dpo(losses.detach(), r_c, r_r)
        scale = self.accelerator.num_processes / pairs.total
        if not self._loss_is_scaled_for_ga(num_items_in_batch):  # then Trainer divides by the accumulation steps
            scale *= self._accumulation_steps()
        return losses.sum() * scale

    def _record_dpo(self, losses, r_c, r_r):
        """Means over this micro-batch's pairs on all processes (a collective: every process calls it)."""
        sums = torch.stack(
            [
                losses.sum(),
                r_c.sum(),
                r_r.sum(),
                (r_c - r_r).sum(),
                (r_c > r_r).float().sum(),
                torch.tensor(float(len(losses)), device=losses.device),
            ]
        ).float()
        sums = self.accelerator.reduce(sums, "sum").tolist()
        if sums[-1]:
            names = ("dpo/loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
            for name, total in zip(names, sums):
                self._record(name, total / sums[-1])

    # -- metrics ----------------------------------------------------------------------------

    def _record(self, name, value):
        self._alignment_metrics[name].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Merge our `group/name` metrics, averaged since the last log, into the training logs; the
        parent adds TRL's own (entropy, mean_token_accuracy, num_tokens, aux_loss) and reports them."""
        if self.model.training and self._alignment_metrics:
            logs.update({k: sum(v) / len(v) for k, v in self._alignment_metrics.items()})
            self._alignment_metrics.clear()
        super().log(logs, start_time)

    # -- the conscience log -----------------------------------------------------------------

    def _log_probes(self, step, probes, responses, verdicts, corrections, used):
        if not self.args.conscience_log:
            return
        rank = self.accelerator.process_index
        entries = [
            {
                "step": step,
                "process": rank,
                "probe": j,
                "prompt": probes[j],
                "response": responses[j],
                "verdict": verdicts[j].to_dict(),
                "correction": corrections[j].to_dict() if j in corrections else None,
                "in_loss": j in used,
            }
            for j in range(len(probes))
        ]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            entries = gather_object(entries)
        if self.accelerator.is_main_process:
            os.makedirs(self.args.output_dir, exist_ok=True)
            with open(self._log_path, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(e) + "\n" for e in entries)
                f.flush()
                os.fsync(f.fileno())

    def _save(self, output_dir: str | None = None, state_dict=None):
        """The model (the parent), then `conscience_config.json` beside it, by the process that saves."""
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            self.conscience.config.save(output_dir or self.args.output_dir)

    def _save_checkpoint(self, model, trial):
        """The parent's checkpoint, then the pairs of the current window beside it (`PAIRS_NAME`)."""
        super()._save_checkpoint(model, trial)
        if self.args.conscience_every > 0:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            self._save_pairs(os.path.join(self._get_output_dir(trial=trial), folder))

    def _save_pairs(self, checkpoint: str):
        """Every process's window pairs, gathered, written atomically by the process that saves: a resume
        inside a window then continues with the same pairs (a collective: every process calls it)."""
        mine = self._window.to_dict() if self._window is not None else None
        processes = [mine]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            processes = gather_object([mine])
        if self.args.should_save:
            record = {"conscience_every": self.args.conscience_every, "processes": processes}
            write_json(os.path.join(checkpoint, PAIRS_NAME), record, indent=None)

    def _load_pairs(self, checkpoint: str) -> Pairs | None:
        """This process's window pairs saved in `checkpoint` (None if none were saved)."""
        path = os.path.join(checkpoint, PAIRS_NAME)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            every, processes = record["conscience_every"], record["processes"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a saved pair window ({type(e).__name__}: {e})") from None
        if not self.args.conscience_every or all(p is None for p in processes):
            return None  # nothing to continue
        if every != self.args.conscience_every:
            raise ValueError(
                f"{path}: saved with conscience_every {every}, resumed with {self.args.conscience_every}; "
                "resume with the same conscience_every"
            )
        if len(processes) != self.accelerator.num_processes:
            raise ValueError(
                f"{path}: saved by {len(processes)} processes, resumed with {self.accelerator.num_processes}; "
                "resume with the same number of processes"
            )
        mine = processes[self.accelerator.process_index]
        return Pairs.from_dict(mine) if mine is not None else None

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint:
            from transformers.trainer_utils import get_last_checkpoint

            checkpoint = resume_from_checkpoint
            if checkpoint is True:
                checkpoint = get_last_checkpoint(self.args.output_dir)
            if checkpoint is not None:  # (None: the parent says no checkpoint was found)
                if self.accelerator.is_main_process:
                    self._truncate_log(checkpoint)
                self._window = self._load_pairs(str(checkpoint))
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _truncate_log(self, checkpoint: str):
        """Keep the log's entries from before the checkpoint's step, so the resumed run's entries
        follow them and every (step, process, probe) appears exactly once."""
        state = os.path.join(str(checkpoint), "trainer_state.json")
        if not os.path.isfile(self._log_path) or not os.path.isfile(state):
            return
        with open(state) as f:
            resume_step = json.load(f)["global_step"]
        with open(self._log_path, encoding="utf-8") as f:
            kept = [line for line in f if line.strip() and _complete_entry(line, resume_step)]
        write_text(self._log_path, "".join(kept))


@contextmanager
def _no_router_logits(*models):
    """MoE models: no router logits in the conscience step. Cached decoding would compute the auxiliary
    loss from the new tokens' router logits against the whole attention mask (a shape error), and the
    conscience step trains nothing."""
    configs = [m.config.get_text_config() for m in models if m is not None]
    configs = [c for c in configs if getattr(c, "output_router_logits", False)]
    for c in configs:
        c.output_router_logits = False
    try:
        yield
    finally:
        for c in configs:
            c.output_router_logits = True


@contextmanager
def _eval_mode(model):
    """Dropout off for a frozen-copy forward (a PEFT model trains with its base in train mode)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _reference_model(model, name: str | None, args):
    """Full fine-tuning's frozen copy: loaded again from the checkpoint `name`, else a state-dict copy of
    `model` (never a deepcopy: under ZeRO-3 init a module's weights are already partitioned)."""
    from transformers import GenerationConfig

    from .models import load_model

    if name is None and is_sharded(model):
        name = getattr(model.config, "_name_or_path", None)
        if not name:
            raise ValueError(
                "ref_model: the model's weights are already sharded and it names no checkpoint to load the "
                "frozen copy from; pass ref_model, or the model's name instead of the model"
            )
    if name is not None:
        kw = dict(args.model_init_kwargs or {})
        ref, _ = load_model(
            name,
            kw.get("dtype", str(model.dtype).removeprefix("torch.")),
            kw.get("trust_remote_code", args.trust_remote_code),
            revision=kw.get("revision"),
            attn_implementation=kw.get("attn_implementation"),
        )
        return ref
    ref = type(model)._from_config(model.config, dtype=model.dtype)
    ref.load_state_dict(model.state_dict())
    ref.generation_config = GenerationConfig.from_dict(model.generation_config.to_dict())
    return ref.to(next(model.parameters()).device)


def _adapter_is_fresh(model) -> bool:
    """A LoRA adapter as initialised: every lora_B zero, so the adapter changes nothing yet."""
    from peft import LoraConfig

    config = model.peft_config.get(model.active_adapter)
    if not isinstance(config, LoraConfig) or config.modules_to_save:
        return False
    name = model.active_adapter
    b = [p for n, p in model.named_parameters() if ".lora_B." in n and f".{name}." in n]
    return bool(b) and all(not p.detach().any() for p in b)


def _reference_adapter(model, name: str | None) -> str | None:
    """The adapter that acts as the frozen copy of a PEFT model the trainer was given: None (all adapters
    off) when its adapter starts fresh, else `ref_adapter_name`, which must be loaded."""
    if not _is_peft(model):
        if name is not None:
            raise ValueError("ref_adapter_name: set only for a PEFT model given with its adapter(s) loaded")
        return None
    if name is not None:
        if name not in model.peft_config:
            raise ValueError(
                f"ref_adapter_name: the model has no adapter {name!r} (it has {sorted(model.peft_config)}); "
                f"load it with model.load_adapter(path, adapter_name={name!r})"
            )
        if name == model.active_adapter:
            raise ValueError(f"ref_adapter_name: {name!r} is the adapter being trained; load a second copy")
        return name
    if not _adapter_is_fresh(model):
        raise ValueError(
            f"ref_adapter_name: the adapter {model.active_adapter!r} is already trained, so disabling it is not "
            "the model training starts from; load a copy of it under another name "
            "(model.load_adapter(path, adapter_name='ref')) and set ref_adapter_name='ref', or train a fresh "
            "adapter (peft_config)"
        )
    return None


# what the trainer's own loader (`models.load_model`) honours
MODEL_INIT_KWARGS = ("dtype", "trust_remote_code", "revision", "attn_implementation")


def _check_model_loading(model, args, kwargs):
    """A model given by name is loaded by `models.load_model`, which honours only MODEL_INIT_KWARGS."""
    if not isinstance(model, str):
        return
    extra = sorted(set(args.model_init_kwargs or {}) - set(MODEL_INIT_KWARGS))
    if extra:
        raise ValueError(
            f"model_init_kwargs: {', '.join(extra)} not supported when the trainer loads the model by name "
            f"(only {', '.join(MODEL_INIT_KWARGS)}); load the model yourself and pass it instead"
        )
    if kwargs.get("quantization_config") is not None:
        raise ValueError("quantization_config: load the quantized model yourself and pass it instead of its name")


def _check_parallelism(config):
    """Tensor, context and sequence parallelism split a batch across processes in ways the pair forward
    and the per-process probes do not follow (read from the accelerator: an accelerate YAML may set it)."""
    if config is None:
        return
    for name in ("tp_size", "cp_size", "sp_size"):
        if (getattr(config, name, 1) or 1) > 1:
            raise ValueError(f"parallelism_config: {name} > 1 is not supported by EmergentAlignmentTrainer")


def _zero3_requested() -> bool:
    """ZeRO-3 asked for, before the accelerator exists: by the config's `deepspeed` or an accelerate config."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled() or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"


def _check_zero3_peft_checkpointing(zero3_peft: bool, args):
    """PEFT under ZeRO-3 with gradient checkpointing: TRL forces reentrant checkpointing there (DeepSpeed fails
    to recompute partitioned frozen weights without it), and reentrant checkpointing fires a parameter's
    gradient hook once per forward, so the alignment term's two forwards before one backward make ZeRO-3
    reduce a gradient twice (an assertion in DeepSpeed). Refused, naming the way out."""
    if zero3_peft and args.gradient_checkpointing and args.aligning:
        raise ValueError(
            "gradient_checkpointing: PEFT under DeepSpeed ZeRO-3 needs reentrant checkpointing, which cannot train "
            "the alignment term (two forwards before one backward reduce a gradient twice); set "
            "gradient_checkpointing: false, or use FSDP2 (examples/accelerate/fsdp2.yaml), or full fine-tuning"
        )


def _complete_entry(line: str, resume_step: int) -> bool:
    try:
        return json.loads(line)["step"] < resume_step
    except (json.JSONDecodeError, KeyError):
        return False  # a line cut off by the interruption


def _right_pad(rows: list[list[int]], starts: list[int], pad_id: int):
    """Prompt + completion rows right-padded: input_ids, attention_mask, labels (IGNORE before each
    completion's start), (B, T) each."""
    masks = [[0] * s + [1] * (len(r) - s) for r, s in zip(rows, starts)]
    return right_pad_with_labels(rows, masks, pad_id)
