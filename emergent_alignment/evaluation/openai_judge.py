"""`openai:MODEL`: any OpenAI-compatible chat endpoint (OpenAI, a vLLM server) as judge.

As in EM: the prompt is one user message; the request asks for one token at temperature 0 with
the top-20 logprobs; the score is `aggregation.judge_result` of their probabilities.

The API key is read from the environment (`OPENAI_API_KEY`) only, is sent only in the
Authorization header, and appears in no message or log. It is required for api.openai.com and
optional for other endpoints (a local vLLM server needs none).

Failures: a connection error, a timeout, HTTP 429 or 5xx is retried with exponential backoff
(`max_retries` tries in all); then, or at once for any other HTTP error (401, 404...), a
`JudgeError` names the endpoint, the model and the last error. Judgments already returned to the
caller are the caller's to keep (`eval` caches every finished chunk).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .aggregation import judge_result, renormalise
from .judges import JudgeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIJudge:
    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        workers: int = 8,
        top_logprobs: int = 20,
    ):
        if not model:
            raise ValueError("openai judge: empty model name (use openai:MODEL)")
        if max_retries < 1:
            raise ValueError(f"openai judge: max_retries must be >= 1, got {max_retries}")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not self.api_key and "api.openai.com" in self.base_url:
            raise JudgeError("openai judge: set the OPENAI_API_KEY environment variable (it is read from nowhere else)")
        self.max_retries, self.backoff, self.timeout = max_retries, backoff, timeout
        self.workers, self.top_logprobs = workers, top_logprobs

    # -- HTTP -------------------------------------------------------------------------------

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _post_with_retries(self, payload: dict) -> dict:
        where = f"openai judge {self.model!r} at {self.base_url}"
        last = None
        for attempt in range(self.max_retries):
            try:
                return self._post(payload)
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUS:
                    raise JudgeError(f"{where}: HTTP {e.code} {e.reason}") from None
                last = f"HTTP {e.code} {e.reason}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt + 1 < self.max_retries:
                time.sleep(min(self.backoff * 2**attempt, 60.0))
        raise JudgeError(f"{where}: no answer after {self.max_retries} tries ({last})")

    def top_probs(self, prompt: str) -> dict[str, float]:
        """{token: probability} of the judge's first answer token (top-20, as in EM)."""
        body = self._post_with_retries(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
                "seed": 0,
            }
        )
        try:
            top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            return {}  # EM: "this should not happen according to the API docs, but it sometimes does"
        probs: dict[str, float] = {}
        for el in top:
            probs[el["token"]] = probs.get(el["token"], 0.0) + math.exp(el["logprob"])
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
