"""A local Hugging Face causal LM as judge: EM's 0-100 scoring and categorical labels.

The judge prompt is sent as one user turn through the judge's chat template; the judged text
inside it is tokenised with `split_special_tokens=True`, so an answer cannot forge a control token.

Scoring 0-100 (`score`). Two methods, chosen once from the judge's tokenizer:

- "single-token" (EM's method): every number 0-100 is one token after the prompt (Llama-3 and
  the GPT-4o tokenizers). One forward pass; P(n) is the probability of n's token. Unlike the
  OpenAI API (top-20 only), all 101 numbers are read.
- "sequence": otherwise (digit-splitting tokenizers such as Qwen's). P(n) is the probability of
  n's tokens in sequence times the probability that the next token does not continue the number
  (does not start with a digit), so "1" is not counted when the judge goes on to write "15".
  One pass over the prompt, then one batched pass over the 101 numbers (and the two words),
  reusing the prompt's KV cache. Exact, not sampled.

CODE and REFUSAL get their probabilities the same way (first token in single-token mode, the
whole word in sequence mode), and `aggregation.judge_result` turns the dict into a score/kind.

Labels (`classify`): first-token scoring (the probability of each label's first token,
renormalised over the labels). When two labels share their first token the whole label's
sequence probability is used instead (same machinery as the numbers), renormalised likewise.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from ..chat import common_prefix_length, encode, render
from ..generation import left_pad
from .aggregation import SPECIAL_KINDS, judge_result, renormalise

logger = logging.getLogger(__name__)
NUMBERS = [str(n) for n in range(101)]
_SENTINEL = "\u0000EA_JUDGE_PROMPT\u0000"
_KEEP = 1e-6  # probabilities below this are left out of the stored `probs` dict


class HFScorer:
    """Next-token probabilities of a causal LM after a judge prompt (one user turn)."""

    def __init__(self, model, tokenizer, batch_size: int = 8, frozen=None):
        if tokenizer.pad_token_id is None:
            raise ValueError("the judge's tokenizer has no pad token: call chat.ensure_pad_token(tokenizer)")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the judge's tokenizer has no chat template: call chat.ensure_chat_template(tokenizer)")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.frozen = frozen or contextlib.nullcontext
        text = render(tokenizer, [{"role": "user", "content": _SENTINEL}], add_generation_prompt=True)
        if text.count(_SENTINEL) != 1:
            raise ValueError("the judge's chat template does not render message content verbatim")
        self.head, self.tail = text.split(_SENTINEL)
        self._head_ids = encode(tokenizer, self.head)
        self._plans: dict[tuple, tuple] = {}
        self._digit_mask = None

    # -- tokens -----------------------------------------------------------------------------

    def plan(self, words: tuple[str, ...]) -> tuple[list[int], list[list[int]]]:
        """(prompt tail ids, continuation ids of each word) with the tail cut where all agree."""
        if words not in self._plans:
            tail_ids = encode(self.tokenizer, self.tail)
            full = [encode(self.tokenizer, self.tail + w) for w in words]
            n = min(common_prefix_length(tail_ids, ids) for ids in full)
            conts = [ids[n:] for ids in full]
            empty = [w for w, c in zip(words, conts) if not c]
            if empty:
                raise ValueError(f"judge answer word(s) {empty!r} produce no token after the prompt")
            self._plans[words] = (tail_ids[:n], conts)
        return self._plans[words]

    def prompt_ids(self, prompt: str, tail_ids: list[int]) -> list[int]:
        body = encode(self.tokenizer, prompt, split_special_tokens=True)
        return self._head_ids + body + tail_ids

    def digit_mask(self, width: int) -> torch.Tensor:
        """True for tokens whose text starts with a digit (they would continue a number)."""
        if self._digit_mask is None or self._digit_mask.numel() != width:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            mask = torch.zeros(width, dtype=torch.bool)
            for i, t in enumerate(texts[:width]):
                mask[i] = bool(t) and t[0].isdigit()
            self._digit_mask = mask
        return self._digit_mask

    # -- forward passes ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _eval(self):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self.frozen():
                yield next(self.model.parameters()).device
        finally:
            self.model.train(was_training)

    def first_token_probs(self, prompts: list[str], tail_ids: list[int]) -> torch.Tensor:
        """Next-token distributions after each prompt: float32 (B, V), batched, left-padded."""
        out = []
        with self._eval() as device:
            for s in range(0, len(prompts), self.batch_size):
                rows = [self.prompt_ids(p, tail_ids) for p in prompts[s : s + self.batch_size]]
                ids, mask = left_pad(rows, self.tokenizer.pad_token_id)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=pos.to(device),
                    logits_to_keep=1,
                    use_cache=False,
                ).logits[:, -1]
                out.append(torch.softmax(logits.float(), -1).cpu())
        return torch.cat(out)

    def sequence_probs(self, prompt: str, tail_ids: list[int], conts: list[list[int]], stop: list[bool]) -> list[float]:
        """P(each continuation) after `prompt`; times P(next token is no digit) where `stop`.

        One pass over the prompt, then one pass over all continuations on the prompt's KV cache.
        """
        ids = self.prompt_ids(prompt, tail_ids)
        width = max(len(c) for c in conts)
        with self._eval() as device:
            first = self.model(input_ids=torch.tensor([ids], device=device), use_cache=True)
            cache = first.cache
            cache.batch_repeat_interleave(len(conts))
            batch = torch.full((len(conts), width), self.tokenizer.pad_token_id, dtype=torch.long)
            for i, c in enumerate(conts):
                batch[i, : len(c)] = torch.tensor(c)
            mask = torch.ones((len(conts), len(ids) + width), dtype=torch.long)
            pos = torch.arange(len(ids), len(ids) + width).expand(len(conts), -1)
            rest = self.model(
                input_ids=batch.to(device),
                attention_mask=mask.to(device),
                position_ids=pos.to(device),
                cache=cache,
                use_cache=True,
            ).logits.float()
        logp0 = torch.log_softmax(first.logits[0, -1].float(), -1).cpu()
        logp = torch.log_softmax(rest, -1).cpu()  # (R, width, V): position j predicts token j+1
        lengths = torch.tensor([len(c) for c in conts])
        tokens = batch[:, 1:].unsqueeze(-1)  # the tokens after the first, predicted at 0..width-2
        later = logp[:, :-1].gather(-1, tokens).squeeze(-1) if width > 1 else torch.zeros(len(conts), 0)
        later = later.masked_fill(torch.arange(width - 1) >= (lengths - 1).unsqueeze(1), 0.0)
        total = logp0[batch[:, 0]] + later.sum(-1)
        # P(the next token continues the number), read after each continuation's last token
        digits = self.digit_mask(logp.shape[-1])
        after = logp[torch.arange(len(conts)), lengths - 1]  # (R, V)
        cont_digit = after.exp()[:, digits].sum(-1)
        probs = total.exp() * torch.where(torch.tensor(stop), 1.0 - cont_digit, torch.ones_like(cont_digit))
        return probs.tolist()


class HFJudge:
    """`hf:PATH_OR_ID`: a local causal LM judging with the EM prompts (see the module doc)."""

    def __init__(self, model, tokenizer, name: str = "hf", batch_size: int = 8, frozen=None):
        self.name = name
        self.scorer = HFScorer(model, tokenizer, batch_size, frozen)
        tail, conts = self.scorer.plan(tuple(NUMBERS) + SPECIAL_KINDS)
        single = all(len(c) == 1 for c in conts[: len(NUMBERS)])
        single = single and len({c[0] for c in conts[: len(NUMBERS)]}) == len(NUMBERS)
        self.method = "single-token" if single else "sequence"

    def score(self, prompts: list[str]) -> list[dict]:
        """EM 0-100 judgments: [{"score", "kind", "numeric_mass", "probs"}] per prompt."""
        words = tuple(NUMBERS) + SPECIAL_KINDS
        tail, conts = self.scorer.plan(words)
        if self.method == "single-token":
            dists = self.scorer.first_token_probs(prompts, tail) if prompts else []
            all_probs = [[float(d[c[0]]) for c in conts] for d in dists]
        else:
            stop = [w in NUMBERS for w in words]
            all_probs = [self.scorer.sequence_probs(p, tail, conts, stop) for p in prompts]
        results = []
        for probs in all_probs:
            r = judge_result(dict(zip(words, probs)))
            r["probs"] = {k: v for k, v in r["probs"].items() if v >= _KEEP}
            results.append(r)
        return results

    def classify(self, prompts: list[str], labels: list[str]) -> list[dict[str, float]]:
        """Label probabilities, renormalised over `labels` (first-token scoring; see module doc)."""
        labels = tuple(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"classify needs at least two distinct labels, got {list(labels)!r}")
        tail, conts = self.scorer.plan(labels)
        firsts = [c[0] for c in conts]
        if len(set(firsts)) == len(firsts):
            dists = self.scorer.first_token_probs(prompts, tail) if prompts else []
            raw = [[float(d[t]) for t in firsts] for d in dists]
        else:
            logger.info("labels %s share a first token: scoring whole labels", labels)
            raw = [self.scorer.sequence_probs(p, tail, conts, [False] * len(labels)) for p in prompts]
        return [renormalise(dict(zip(labels, r))) for r in raw]
