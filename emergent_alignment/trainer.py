"""`EmergentAlignmentTrainer`: SFT on the task data plus an online, conscience-driven DPO term.

Each optimizer step (every `conscience_every` steps):
1. probes: `probe_batch_size` prompts, from `probe_prompts` or from the current training batch;
2. the policy samples an answer to each (KV cache on, also under gradient checkpointing);
3. the frozen copy reviews each answer (the conscience step) and corrects the flagged ones;
4. a flagged answer whose correction passed review and gained at least `pair_margin` in
   p_aligned becomes a pair (chosen = correction, rejected = flagged answer); the frozen copy's
   log-probs of both are computed once, as the DPO reference.
Then every micro-batch of that step computes, in ONE forward over its SFT rows and its share of
the pairs,

    loss = sft_loss + alignment_weight * dpo_loss

where sft_loss is TRL's token-normalised NLL and dpo_loss the mean over all the step's pairs
(across micro-batches and processes), so gradient accumulation and multi-process training give
the same gradients as one big batch. Pairs live only in the step that made them.

The frozen copy: with PEFT, the same weights with the adapter disabled; otherwise a copy made
once at the start. It never changes.
"""

from __future__ import annotations

import copy
import json
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from trl import SFTTrainer
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import add_fused_lm_head

from .chat import encode_prompt, encode_prompt_completion, ensure_chat_template, ensure_pad_token, prompt_messages
from .config import EmergentAlignmentConfig
from .conscience import Conscience, ConscienceConfig
from .generation import SamplingConfig, decode, generate
from .losses import dpo_loss

INDEX_COLUMN = "ea_index"  # row index kept through data preparation, to recover batch prompts
LOG_NAME = "conscience_log.jsonl"


@dataclass
class Pairs:
    """The DPO pairs of one optimizer step on this process."""

    chosen: list[list[int]]  # token ids: prompt + completion
    rejected: list[list[int]]
    chosen_start: list[int]  # where each completion starts
    rejected_start: list[int]
    ref_chosen: torch.Tensor  # (P,) frozen copy's log-probs
    ref_rejected: torch.Tensor  # (P,)
    total: int  # pairs over all processes in this step

    def __len__(self):
        return len(self.chosen)

    def select(self, idx: list[int]) -> Pairs:
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Pairs(
            pick(self.chosen),
            pick(self.rejected),
            pick(self.chosen_start),
            pick(self.rejected_start),
            self.ref_chosen[idx],
            self.ref_rejected[idx],
            self.total,
        )


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
        if args.loss_type != "nll" or args.label_smoothing_factor:
            raise ValueError("EmergentAlignmentTrainer supports loss_type='nll' without label smoothing")
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
        self.ref_model = ref_model
        if ref_model is None and peft_config is None and not _is_peft(model):
            self.ref_model = copy.deepcopy(model)
        if self.ref_model is not None:
            self.ref_model.eval().requires_grad_(False)
            add_fused_lm_head(self.ref_model)

        super().__init__(
            model,
            args=args,
            train_dataset=train_dataset,
            processing_class=processing_class,
            peft_config=peft_config,
            **kwargs,
        )
        if self.ref_model is not None:
            self.ref_model.to(self.accelerator.device)
        if self._train_prompts is not None:
            self.data_collator = _KeepIndex(self.data_collator)

        base = conscience_config or ConscienceConfig.from_pretrained(
            model_dir if model_dir and os.path.isdir(model_dir) else None
        )
        frozen = self.model.disable_adapter if self.ref_model is None else None
        judge = self.ref_model if self.ref_model is not None else self.model
        self.conscience = Conscience(judge, self._tokenizer, args.conscience_config(base), frozen=frozen)
        self._pairs: Pairs | None = None
        self._step_seen, self._micro = -1, 0
        self._log_path = os.path.join(args.output_dir, LOG_NAME)

    # -- set-up ---------------------------------------------------------------------------

    @staticmethod
    def _load(model, args, tokenizer):
        from .models import load_model, load_tokenizer

        if isinstance(model, str):
            kw = dict(args.model_init_kwargs or {})
            tokenizer = tokenizer or load_tokenizer(model, kw.get("trust_remote_code", False))
            model, _ = load_model(model, kw.get("dtype"), kw.get("trust_remote_code", False))
        if tokenizer is None:
            raise ValueError("pass processing_class (the tokenizer) with an instantiated model")
        ensure_chat_template(tokenizer)
        ensure_pad_token(tokenizer)
        return model, tokenizer

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
        step = self.state.global_step
        if step != self._step_seen:  # the first micro-batch of an optimizer step
            self._step_seen, self._micro = step, 0
            due = self.args.conscience_every > 0 and step % self.args.conscience_every == 0
            self._pairs = self._conscience_step(model, inputs, step) if due else None
        else:
            self._micro += 1
        return super().training_step(model, inputs, num_items_in_batch)

    def _probes(self, inputs, step: int) -> list[list[dict]]:
        n, rank = self.args.probe_batch_size, self.accelerator.process_index
        if self.args.probe_source == "batch":
            rows = inputs[INDEX_COLUMN].tolist()
            return [self._train_prompts[rows[i % len(rows)]] for i in range(n)]
        rng = random.Random(f"{self.args.seed}-{step}-{rank}")
        return [self.probe_prompts[rng.randrange(len(self.probe_prompts))] for _ in range(n)]

    @torch.no_grad()
    def _conscience_step(self, model, inputs, step: int) -> Pairs | None:
        args, tok = self.args, self._tokenizer
        rank = self.accelerator.process_index
        probes = self._probes(inputs, step)
        torch.manual_seed(args.seed + 1_000_003 * step + rank)  # same probes and samples on resume
        sampling = SamplingConfig(args.probe_max_new_tokens, args.probe_temperature, args.probe_top_p)
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator) as policy:
            # the probe batch in one generation call (its size is `probe_batch_size`)
            answers = generate(policy, tok, [encode_prompt(tok, p) for p in probes], sampling, batch_size=len(probes))
        responses = [decode(tok, ids).strip() for ids in answers]
        verdicts = self.conscience.review(probes, responses)

        flagged = [i for i, v in enumerate(verdicts) if v.flagged]
        corrections = {}
        if args.alignment_weight > 0 and flagged:
            fixed = self.conscience.correct([probes[i] for i in flagged], [responses[i] for i in flagged])
            corrections = dict(zip(flagged, fixed))
        use = [
            i
            for i, c in corrections.items()
            if c.passed and c.verdict.p_aligned - verdicts[i].p_aligned >= args.pair_margin
        ]
        use = use[: self._pair_cap(step)]
        pairs, use = self._make_pairs(probes, responses, corrections, use, step, rank)

        self._log_probes(step, probes, responses, verdicts, corrections, set(use))
        self._record("conscience/flag_rate", len(flagged) / len(probes))
        self._record("conscience/p_aligned_mean", sum(v.p_aligned for v in verdicts) / len(verdicts))
        self._record("conscience/corrections_passed", sum(c.passed for c in corrections.values()))
        self._record("conscience/pairs", pairs.total if pairs else 0)
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
        total = int(self.accelerator.reduce(torch.tensor(len(rows), device=self.accelerator.device), "sum"))
        if total == 0:
            return None, used
        chosen, c_start = [r[1] for r in rows], [r[2] for r in rows]
        rejected, r_start = [r[3] for r in rows], [r[4] for r in rows]
        ref_c, ref_r = (self._ref_logps(ids, start) for ids, start in ((chosen, c_start), (rejected, r_start)))
        return Pairs(chosen, rejected, c_start, r_start, ref_c, ref_r, total), used

    def _ref_logps(self, rows: list[list[int]], starts: list[int]) -> torch.Tensor:
        if not rows:
            return torch.zeros(0)
        ids, mask, labels = _right_pad(rows, starts, self._tokenizer.pad_token_id)
        model = self.ref_model or self.accelerator.unwrap_model(self.model_wrapped)
        frozen = nullcontext() if self.ref_model is not None else model.disable_adapter()
        dev = self.accelerator.device
        with frozen, torch.no_grad():
            out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev), fused_lm_head=True)
        return self._seq_logps(out.log_probs, out.label_mask).cpu()

    def _seq_logps(self, token_logps, label_mask):
        total = token_logps.sum(-1)
        if self.args.alignment_loss_type == "ipo":  # IPO uses length-averaged log-probs
            total = total / label_mask.sum(-1).clamp(min=1)
        return total

    # -- the loss ---------------------------------------------------------------------------

    def _micro_pairs(self) -> Pairs | None:
        """This micro-batch's share of the step's pairs: every N-th, N = accumulation steps."""
        if self._pairs is None:
            return None
        n = max(getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps), 1)
        return self._pairs.select(list(range(self._micro % n, len(self._pairs), n)))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop(INDEX_COLUMN, None)
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        pairs = self._micro_pairs()
        n_sft = inputs["input_ids"].shape[0]
        ids, mask, labels = _stack_rows(inputs, pairs, self._tokenizer.pad_token_id)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True, use_cache=False)
        sft_loss = self._sft_loss(out, n_sft, num_items_in_batch)
        loss = sft_loss
        if pairs is not None and self.args.alignment_weight > 0:
            loss = loss + self.args.alignment_weight * self._dpo_term(out, n_sft, pairs, num_items_in_batch)
        self._sft_metrics(out, inputs, n_sft)
        return (loss, out) if return_outputs else loss

    def _sft_loss(self, out, n_sft, num_items_in_batch):
        """TRL's NLL on the SFT rows: summed, divided by the tokens of the whole accumulated batch."""
        logps = out.log_probs[:n_sft]  # (B_sft, T-1), zero on ignored positions
        tokens = out.label_mask[:n_sft].sum() if num_items_in_batch is None else num_items_in_batch
        loss = -logps.sum() / torch.as_tensor(tokens).clamp(min=1)
        self._record("sft/loss", (-logps.sum() / out.label_mask[:n_sft].sum().clamp(min=1)).item())
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss

    def _dpo_term(self, out, n_sft, pairs: Pairs, num_items_in_batch):
        """Sum of this micro-batch's pair losses / all pairs of the step, scaled so that the
        accumulated, process-averaged gradient is that of the mean over all pairs."""
        p = len(pairs)
        seq = self._seq_logps(out.log_probs[n_sft:], out.label_mask[n_sft:])  # (2P,)
        losses, r_c, r_r = dpo_loss(
            seq[:p],
            seq[p:],
            pairs.ref_chosen.to(seq),
            pairs.ref_rejected.to(seq),
            self.args.beta,
            self.args.alignment_loss_type,
        )
        scale = self.accelerator.num_processes / pairs.total
        if num_items_in_batch is None:  # then Trainer divides the loss by the accumulation steps
            scale *= getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        if p:
            self._record("dpo/loss", losses.mean().item())
            self._record("rewards/chosen", r_c.mean().item())
            self._record("rewards/rejected", r_r.mean().item())
            self._record("rewards/margins", (r_c - r_r).mean().item())
            self._record("rewards/accuracies", (r_c > r_r).float().mean().item())
        return losses.sum() * scale

    def _sft_metrics(self, out, inputs, n_sft):
        gather = self.accelerator.gather_for_metrics
        num_valid = gather(out.label_mask[:n_sft].sum()).sum()
        if out.entropy is not None:
            entropy = gather(out.entropy[:n_sft].detach().sum()).sum()
            self._metrics["train"]["entropy"].append((entropy / num_valid).item() if num_valid > 0 else 0.0)
        if out.is_top1 is not None:
            correct = gather(out.is_top1[:n_sft].sum()).sum()
            self._metrics["train"]["mean_token_accuracy"].append((correct / num_valid).item() if num_valid > 0 else 0.0)
        self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]

    def _record(self, name, value):
        self._metrics["train"][name].append(float(value))

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

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint and self.accelerator.is_main_process:
            self._truncate_log(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _truncate_log(self, checkpoint):
        """Keep the log's entries from before the checkpoint's step, so the resumed run's entries
        follow them and every (step, process, probe) appears exactly once."""
        from transformers.trainer_utils import get_last_checkpoint

        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        state = os.path.join(str(checkpoint), "trainer_state.json")
        if not os.path.isfile(self._log_path) or not os.path.isfile(state):
            return
        with open(state) as f:
            resume_step = json.load(f)["global_step"]
        with open(self._log_path, encoding="utf-8") as f:
            kept = [line for line in f if line.strip() and _complete_entry(line, resume_step)]
        tmp = self._log_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, self._log_path)


def _complete_entry(line: str, resume_step: int) -> bool:
    try:
        return json.loads(line)["step"] < resume_step
    except (json.JSONDecodeError, KeyError):
        return False  # a line cut off by the interruption


def _right_pad(rows: list[list[int]], starts: list[int], pad_id: int):
    """Right-padded input_ids, attention_mask and labels (-100 before each completion): (B, T) each."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r, s) in enumerate(zip(rows, starts)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        labels[i, s : len(r)] = torch.tensor(r[s:])
    return ids, mask, labels


def _stack_rows(inputs, pairs: Pairs | None, pad_id: int):
    """The SFT rows, then the chosen rows, then the rejected rows, right-padded to one width."""
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    if not pairs:
        return ids, mask, labels
    p_ids, p_mask, p_labels = (
        t.to(ids.device)
        for t in _right_pad(pairs.chosen + pairs.rejected, pairs.chosen_start + pairs.rejected_start, pad_id)
    )
    width = max(ids.shape[1], p_ids.shape[1])
    grow = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
    return (
        torch.cat([grow(ids, pad_id), grow(p_ids, pad_id)]),
        torch.cat([grow(mask, 0), grow(p_mask, 0)]),
        torch.cat([grow(labels, -100), grow(p_labels, -100)]),
    )
