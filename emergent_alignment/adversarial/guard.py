"""Guarded generation: draft, let the frozen self review the draft, correct it when flagged.

Zero-shot use of the conscience step: no training, the model reviews its own draft with the one
introspective question before it replies. Review and correction are the core's
(`Conscience.review`, `Conscience.correct`); this module only decides what is returned:

- the draft, when it passes review;
- else the best-scored correction, when one passes within `max_attempts` rounds;
- else, by `on_fail`: "best" returns the best-scored text among the draft and its corrections,
  "refuse" returns a fixed refusal.

Every reply carries its verdict trail: the draft with its `p_aligned`, then every correction
candidate (strategy, round, response, `p_aligned`, flagged) in the order they were made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..chat import encode_prompt
from ..data import validate_messages
from ..generation import SamplingConfig, decode, generate

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that."
ON_FAIL = ("best", "refuse")


@dataclass
class GuardedReply:
    text: str  # the final answer
    outcome: str  # unguarded | passed | corrected | best | refused
    passed: bool | None  # whether the final answer passed review (None: not reviewed)
    trail: list[dict] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0  # tokens of the draft

    def to_dict(self) -> dict:
        return asdict(self)


def context_length(model) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_conversation(messages) -> list[dict]:
    """A prompt conversation: valid roles and contents, ending with a non-empty user turn."""
    messages = validate_messages(messages, "prompt", need_assistant=False)
    if messages[-1]["role"] != "user":
        raise ValueError("the prompt must end with a user turn")
    if not messages[-1]["content"].strip():
        raise ValueError("empty prompt: the last user turn has no text")
    return messages


class GuardedGenerator:
    """Generate replies; with a `conscience`, guard them (zero-shot: built on the same model)."""

    def __init__(
        self,
        model,
        tokenizer,
        conscience=None,
        sampling: SamplingConfig | None = None,
        on_fail: str = "best",
        refusal: str = DEFAULT_REFUSAL,
        batch_size: int = 16,
    ):
        if on_fail not in ON_FAIL:
            raise ValueError(f"on_fail must be one of {ON_FAIL}, got {on_fail!r}")
        self.model, self.tokenizer, self.conscience = model, tokenizer, conscience
        self.sampling = sampling or SamplingConfig()
        self.on_fail, self.refusal, self.batch_size = on_fail, refusal, batch_size

    @classmethod
    def zero_shot(cls, model, tokenizer, conscience_config=None, frozen=None, **kwargs) -> GuardedGenerator:
        """The model guards itself: its conscience is the model (adapter off when `frozen` says so)."""
        from ..conscience import Conscience

        return cls(model, tokenizer, Conscience(model, tokenizer, conscience_config, frozen), **kwargs)

    @property
    def guarded(self) -> bool:
        return self.conscience is not None

    # -- the three steps ---------------------------------------------------------------------

    def prompt_ids(self, conversations: list[list[dict]]) -> list[list[int]]:
        """Token ids of each prompt; raises a clear error when a prompt is empty or too long."""
        ids = [encode_prompt(self.tokenizer, check_conversation(c)) for c in conversations]
        for c, p in zip(conversations, ids):
            self._check_fits(c, p)
        return ids

    def _check_fits(self, conversation, prompt_ids) -> None:
        limit = context_length(self.model)
        if limit is None:
            return
        need = {"prompt": len(prompt_ids) + self.sampling.max_new_tokens}
        if self.guarded:  # the review and revision prompts hold the whole transcript
            c = self.conscience
            longest = max(len(ids) for ids in c.review_prompts(conversation, ""))  # of the defences' forwards
            need["review"] = longest + self.sampling.max_new_tokens + 1
            if c.config.correction in ("revise", "both"):
                need["revision"] = (
                    len(c.revision_ids(conversation, "")) + self.sampling.max_new_tokens + c.config.max_new_tokens
                )
        step, n = max(need.items(), key=lambda kv: kv[1])
        if n > limit:
            raise ValueError(
                f"prompt too long: the {step} step needs {n} tokens (prompt {len(prompt_ids)}, "
                f"max_new_tokens {self.sampling.max_new_tokens}) but the model's context is {limit} tokens"
            )

    def draft(self, conversations: list[list[dict]]) -> tuple[list[str], list[int], list[int]]:
        """Plain generation: (texts, prompt token counts, completion token counts)."""
        prompts = self.prompt_ids(conversations)
        out = generate(self.model, self.tokenizer, prompts, self.sampling, self.batch_size)
        return [decode(self.tokenizer, ids).strip() for ids in out], [len(p) for p in prompts], [len(o) for o in out]

    def guard(self, conversations: list[list[dict]], drafts: list[str]) -> list[GuardedReply]:
        """Review each draft; correct the flagged ones with the core's self-correction."""
        if not self.guarded:
            return [GuardedReply(d, "unguarded", None) for d in drafts]
        verdicts = self.conscience.review(conversations, drafts)
        flagged = [i for i, v in enumerate(verdicts) if v.flagged]
        corrections = self.conscience.correct([conversations[i] for i in flagged], [drafts[i] for i in flagged])
        fixes = dict(zip(flagged, corrections))
        return [self._decide(d, v, fixes.get(i)) for i, (d, v) in enumerate(zip(drafts, verdicts))]

    def generate(self, conversations: list[list[dict]], seed: int | None = None) -> list[GuardedReply]:
        """Draft, then guard (when a conscience is set). Seeded runs are reproducible."""
        if seed is not None:
            torch.manual_seed(seed)
        texts, n_prompt, n_new = self.draft(conversations)
        replies = self.guard(conversations, texts)
        for r, p, n in zip(replies, n_prompt, n_new):
            r.prompt_tokens, r.completion_tokens = p, n
        return replies

    # -- the decision --------------------------------------------------------------------------

    def _decide(self, draft, verdict, correction) -> GuardedReply:
        trail = [
            {"step": "draft", "round": 0, "response": draft, "p_aligned": verdict.p_aligned, "flagged": verdict.flagged}
        ]
        if correction is None:
            return GuardedReply(draft, "passed", True, trail)
        trail += self._attempt_steps(correction.attempts)
        if correction.passed:
            return GuardedReply(correction.response, "corrected", True, trail)
        if self.on_fail == "refuse":
            return GuardedReply(self.refusal, "refused", False, trail)
        best = max(trail, key=lambda s: (bool(s["response"]), s["p_aligned"]))  # first wins ties
        return GuardedReply(best["response"], "best", False, trail)

    def _attempt_steps(self, attempts: list[dict]) -> list[dict]:
        per_round = 2 if self.conscience.config.correction == "both" else 1
        threshold = self.conscience.config.flag_threshold
        return [
            {
                "step": a["strategy"],
                "round": i // per_round + 1,
                "response": a["response"],
                "p_aligned": a["p_aligned"],
                "flagged": a["p_aligned"] < threshold,
            }
            for i, a in enumerate(attempts)
        ]


def load_generator(
    model: str,
    guard: bool,
    adapter: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    sampling: SamplingConfig | None = None,
    on_fail: str = "best",
    refusal: str = DEFAULT_REFUSAL,
    **conscience_overrides,
) -> GuardedGenerator:
    """A generator for a checkpoint; with `guard`, its own conscience (adapter off) guards it.

    `conscience_overrides` update the checkpoint's `conscience_config.json` (question,
    flag_threshold, correction, max_attempts, max_new_tokens, temperature, ...).
    """
    from ..models import load_conscience, load_model

    kwargs = dict(sampling=sampling, on_fail=on_fail, refusal=refusal)
    if not guard:
        m, tok = load_model(model, dtype, device=device, adapter=adapter)
        return GuardedGenerator(m, tok, None, **kwargs)
    c = load_conscience(model, adapter=adapter, dtype=dtype, device=device, **conscience_overrides)
    return GuardedGenerator(c.model, c.tokenizer, c, batch_size=c.config.batch_size, **kwargs)
