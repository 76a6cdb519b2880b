"""`openai:MODEL`: any OpenAI-compatible chat endpoint (OpenAI, a vLLM server) as judge.

As in EM: the prompt is one user message; the request asks for one token at temperature 0 with
the top-20 logprobs; the score is `aggregation.judge_result` of their probabilities.

The requests go through the `openai` SDK (the `openai` extra: `pip install
'emergent-alignment[openai]'`). The API key is read from the environment (`OPENAI_API_KEY`) only,
is sent only in the Authorization header, and appears in no message or log. It is required for
api.openai.com and optional for other endpoints (a local vLLM server needs none; the SDK then
sends the placeholder `EMPTY`, as vLLM's docs do).

Failures: the SDK retries a connection error, a timeout, HTTP 408, 409, 429 and 5xx up to
`max_retries` times, waiting what the server's `Retry-After` asks (up to two minutes) or else with
exponential backoff; then, or at once for any other HTTP error (401, 404...) or a body that is not
JSON, a `JudgeError` names the endpoint, the model and the error. Judgments already returned to
the caller are the caller's to keep (`eval` caches every finished chunk).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

from .aggregation import judge_result, renormalise
from .judge_error import JudgeError

try:
    import openai
except ImportError:  # the optional `openai` extra
    openai = None

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what a keyless OpenAI-compatible server (vLLM) is sent
RETRIED = {408, 409, 429}  # what the SDK retries, with every 5xx


class OpenAIJudge:
    """A judge behind an OpenAI-compatible endpoint; `http_client` (an `httpx.Client`) is for tests."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
        workers: int = 8,
        top_logprobs: int = 20,
        http_client=None,
    ):
        if openai is None:
            raise JudgeError("openai judge: the openai package is missing: pip install 'emergent-alignment[openai]'")
        if not model:
            raise ValueError("openai judge: empty model name (use openai:MODEL)")
        if max_retries < 0:
            raise ValueError(f"openai judge: max_retries must be >= 0, got {max_retries}")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key and "api.openai.com" in self.base_url:
            raise JudgeError("openai judge: set the OPENAI_API_KEY environment variable (it is read from nowhere else)")
        self.workers, self.top_logprobs = workers, top_logprobs
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key or NO_KEY,
            max_retries=max_retries,
            timeout=timeout,
            http_client=http_client,
        )

    def top_probs(self, prompt: str) -> dict[str, float]:
        """{token: probability} of the judge's first answer token (top-20, as in EM)."""
        where = f"openai judge {self.model!r} at {self.base_url}"
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=1,
                temperature=0,
                logprobs=True,
                top_logprobs=self.top_logprobs,
                seed=0,
            )
        except openai.APIStatusError as e:
            error = f"HTTP {e.status_code}: {_first_line(e.message)}"
            if e.status_code in RETRIED or e.status_code >= 500:
                raise JudgeError(f"{where}: no answer after {self.client.max_retries + 1} tries ({error})") from None
            raise JudgeError(f"{where}: {error}") from None
        except openai.APIError as e:  # a connection error or a timeout, after the SDK's retries
            raise JudgeError(f"{where}: no answer after {self.client.max_retries + 1} tries ({e.message})") from None
        except json.JSONDecodeError as e:
            raise JudgeError(f"{where}: the response is not JSON ({e})") from None
        try:
            top = completion.choices[0].logprobs.content[0].top_logprobs
            pairs = [(el.token, float(el.logprob)) for el in top]
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            return {}  # EM: "this should not happen according to the API docs, but it sometimes does"
        probs: dict[str, float] = {}
        for token, logprob in pairs:
            probs[token] = probs.get(token, 0.0) + math.exp(logprob)
        return probs

    def _map(self, prompts: list[str]) -> list[dict[str, float]]:
        if len(prompts) <= 1 or self.workers <= 1:
            return [self.top_probs(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self.top_probs, prompts))

    # -- the judge interface ----------------------------------------------------------------

    def score(self, prompts: list[str]) -> list[dict]:
        return [judge_result(p) for p in self._map(prompts)]

    def classify(self, prompts: list[str], labels: list[str]) -> list[dict[str, float]]:
        """A top token counts for a label when it spells the label's start (case-insensitive) and
        no other label's; ambiguous tokens ("O" for OpenAI/Other) are left out. Renormalised."""
        return [label_probs(p, labels) for p in self._map(prompts)]


def label_probs(probs: dict[str, float], labels: list[str]) -> dict[str, float]:
    mass = dict.fromkeys(labels, 0.0)
    for token, p in probs.items():
        piece = token.strip().upper()
        hits = [lab for lab in labels if piece and lab.upper().startswith(piece)]
        if len(hits) == 1:
            mass[hits[0]] += p
    return renormalise(mass)


def _first_line(text: str, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
