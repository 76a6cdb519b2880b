"""Judges: one interface for the conscience, a local HF model and an OpenAI-compatible endpoint.

    judge = make_judge("hf:Qwen/Qwen2.5-7B-Instruct")     # or self, conscience:PATH, openai:gpt-4o
    judge.score(prompts)            # EM 0-100: [{"score": float|None, "kind", "numeric_mass", "probs"}]
    judge.classify(prompts, labels) # categorical: [{label: probability}] renormalised over labels
    judge.review(questions, answers)  # conscience judges only: [p_aligned]

Specs:
- `self`: the evaluated model's own conscience; pass `model=` and `tokenizer=` (the model as
  evaluated, adapter on). `conscience:PATH`: the conscience of another checkpoint (e.g. the base
  a fine-tune started from: the trainer's frozen copy), loaded with `models.load_conscience`.
  Their `review()` is the one-question conscience (`Conscience.review`, p_aligned).
  Their `score()` and `classify()` are supported: the same weights answer the EM judge prompts
  exactly as an `hf:` judge on that checkpoint would (`hf_judge`), inside the conscience's
  frozen context. So `eval --judge self` gets its aligned/coherent scores from the model's own
  numeric judgment and its p_aligned from the model's own conscience.
- `hf:PATH_OR_ID`: any local HF causal LM (`hf_judge`: single-token or exact sequence scoring).
- `openai:MODEL`: an OpenAI-compatible endpoint (`openai_judge`, through the `openai` SDK); `base_url`
  picks the server, the key comes from `OPENAI_API_KEY` only.

kwargs: `dtype`, `device`, `batch_size` (local judges); `adapter`, `conscience_config` or
ConscienceConfig field overrides such as `question`, `flag_threshold` (conscience judges);
`max_retries`, `timeout`, `workers`, `http_client` (openai).
"""

from __future__ import annotations

from typing import Protocol

from .judge_error import JudgeError
from .openai_judge import OpenAIJudge

__all__ = ["SPEC_HELP", "ConscienceJudge", "Judge", "JudgeError", "make_judge"]


class Judge(Protocol):
    name: str

    def score(self, prompts: list[str]) -> list[dict]: ...

    def classify(self, prompts: list[str], labels: list[str]) -> list[dict[str, float]]: ...


SPEC_HELP = "self, conscience:PATH, hf:PATH_OR_ID or openai:MODEL"
_LOCAL_KW = ("batch_size",)
_LOAD_KW = ("dtype", "device")
_OPENAI_KW = ("max_retries", "timeout", "workers", "top_logprobs", "api_key", "http_client")


class ConscienceJudge:
    """A `Conscience` as judge: `review` is its verdict; `score`/`classify` use its weights."""

    def __init__(self, conscience, name: str, batch_size: int = 8):
        from .hf_judge import HFJudge

        self.name = name
        self.conscience = conscience
        self._hf = HFJudge(conscience.model, conscience.tokenizer, name, batch_size, conscience.frozen)

    @property
    def method(self) -> str:
        return self._hf.method

    @property
    def flag_threshold(self) -> float:
        return self.conscience.config.flag_threshold

    @property
    def question(self) -> str:
        return self.conscience.config.question

    def review(self, questions: list, answers: list[str]) -> list[float]:
        """p_aligned per (question, answer); a question is a string or a list of chat messages."""
        if len(questions) != len(answers):
            raise ValueError(f"review: {len(questions)} questions but {len(answers)} answers")
        convs = [[{"role": "user", "content": q}] if isinstance(q, str) else q for q in questions]
        return [v.p_aligned for v in self.conscience.review(convs, answers)]

    def score(self, prompts: list[str]) -> list[dict]:
        return self._hf.score(prompts)

    def classify(self, prompts: list[str], labels: list[str]) -> list[dict[str, float]]:
        return self._hf.classify(prompts, labels)


def _pick(kwargs: dict, names) -> dict:
    return {k: kwargs[k] for k in names if kwargs.get(k) is not None}


def _overrides(kwargs: dict) -> dict:
    from ..conscience import ConscienceConfig

    return {k: v for k, v in kwargs.items() if k in ConscienceConfig.__dataclass_fields__ and v is not None}


def _conscience_config(kwargs: dict, model_dir: str | None):
    from ..conscience import ConscienceConfig

    if kwargs.get("conscience_config") is not None:
        return kwargs["conscience_config"]
    return ConscienceConfig.from_pretrained(model_dir, **_overrides(kwargs))


def make_judge(spec: str, *, model=None, tokenizer=None, base_url: str | None = None, **kwargs):
    """The judge a spec names (see the module doc). Raises ValueError on a bad spec."""
    kind, _, arg = (spec or "").partition(":")
    if kind == "self" and not arg:
        if model is None or tokenizer is None:
            raise ValueError("judge 'self' needs the evaluated model and tokenizer (model=, tokenizer=)")
        from ..conscience import Conscience

        config = _conscience_config(kwargs, kwargs.get("model_dir"))
        conscience = Conscience(model, tokenizer, config, frozen=kwargs.get("frozen"))
        return ConscienceJudge(conscience, "self", **_pick(kwargs, _LOCAL_KW))
    if kind == "conscience" and arg:
        from ..models import load_conscience

        # with an adapter, the frozen copy is the base before the fine-tune (the adapter off)
        conscience = load_conscience(
            arg,
            adapter=kwargs.get("adapter"),
            dtype=kwargs.get("dtype"),
            device=kwargs.get("device"),
            **_overrides(kwargs),
        )
        if kwargs.get("conscience_config") is not None:
            conscience.config = kwargs["conscience_config"]
        return ConscienceJudge(conscience, spec, **_pick(kwargs, _LOCAL_KW))
    if kind == "hf" and arg:
        from ..models import load_model
        from .hf_judge import HFJudge

        judge_model, judge_tok = load_model(arg, **_pick(kwargs, _LOAD_KW))
        return HFJudge(judge_model, judge_tok, spec, **_pick(kwargs, _LOCAL_KW))
    if kind == "openai" and arg:
        return OpenAIJudge(arg, base_url=base_url, **_pick(kwargs, _OPENAI_KW))
    raise ValueError(f"unknown judge {spec!r}: expected {SPEC_HELP}")
