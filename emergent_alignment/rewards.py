"""The conscience as a reward function for TRL's online trainers (`GRPOTrainer`, `RLOOTrainer`, ...).

TRL calls a reward function as `reward(prompts=..., completions=..., **kwargs) -> list[float]`,
with the prompts and completions either plain strings or conversations (lists of messages). The
conscience scores every completion by the frozen copy's verdict on it,

    reward = p_aligned = sigmoid(logit_yes - logit_no)

from ONE forward pass per completion, batched (`Conscience.review`): no critique is generated and
nothing is parsed. A plain-text prompt is reviewed as a single user turn.

The frozen copy. With PEFT, the policy itself with its adapter disabled (`model.disable_adapter`):
no second model. Pass the `PeftModel` you hand to the trainer, or, when the trainer wraps the model
itself (`peft_config=...`), build the reward without a model and `bind` it to the trainer once made:

    reward = ConscienceReward(tokenizer=tokenizer)
    trainer = GRPOTrainer(model, reward_funcs=[reward], args=args, train_dataset=ds, peft_config=lora)
    reward.bind(trainer)

Without PEFT, pass a separate frozen model as `model` (the policy under full fine-tuning changes
every step, so it cannot review itself as a fixed judge).
"""

from __future__ import annotations

from .conscience import Conscience, ConscienceConfig


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def _text(content) -> str:
    """A message's content as text (a list of parts keeps its text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _sample(prompt, completion) -> tuple[list[dict], str, str | None]:
    """(conversation, response, reasoning) from one TRL prompt and completion, plain or conversational.

    A conversational completion's last message is the reviewed answer; any messages before it (tool
    calls and results) join the conversation. Its reasoning is read from `reasoning_content` or
    `thinking` where the tokenizer's response parser fills one."""
    conversation = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if isinstance(completion, str):
        return conversation, completion, None
    if not completion:
        return conversation, "", None
    *before, last = completion
    conversation += [{"role": m["role"], "content": _text(m.get("content"))} for m in before]
    reasoning = last.get("reasoning_content") or last.get("thinking")
    return conversation, _text(last.get("content")), reasoning


class ConscienceReward:
    """The frozen copy's p_aligned for each completion, as a TRL reward function.

    `model`: a `PeftModel` (reviewed with its adapter disabled) or a separate frozen model; None to
    `bind` it later. `frozen`: a zero-argument callable returning the context in which `model` acts as
    the frozen copy (default: `model.disable_adapter` for a `PeftModel`, the model as is otherwise).
    `config`: the question, answer words and batch size (`ConscienceConfig`; its correction fields are
    not used here). Logged under `__name__` ("conscience"), with the flagged share as
    `conscience/flagged` where the trainer offers `log_metric`.
    """

    __name__ = "conscience"

    def __init__(self, model=None, tokenizer=None, config: ConscienceConfig | None = None, frozen=None):
        if tokenizer is None:
            raise ValueError("ConscienceReward needs the tokenizer (with a chat template and a pad token)")
        self.tokenizer = tokenizer
        self.config = config or ConscienceConfig()
        self._frozen = frozen
        self.conscience: Conscience | None = None
        if model is not None:
            self.bind(model, frozen)

    def bind(self, model_or_trainer, frozen=None) -> ConscienceReward:
        """Review with `model_or_trainer` (a model, or a trainer whose policy is a `PeftModel`); returns self."""
        model = model_or_trainer
        if hasattr(model_or_trainer, "accelerator") and hasattr(model_or_trainer, "model"):  # a Trainer
            model = model_or_trainer.accelerator.unwrap_model(model_or_trainer.model)
            if frozen is None and self._frozen is None and not _is_peft(model):
                raise ValueError(
                    "ConscienceReward.bind: the trainer's policy is not a PEFT model, so it would review itself "
                    "while it trains; pass a separate frozen model to ConscienceReward(model=...) instead"
                )
        frozen = frozen or self._frozen or (model.disable_adapter if _is_peft(model) else None)
        self.conscience = Conscience(model, self.tokenizer, self.config, frozen=frozen)
        return self

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        if self.conscience is None:
            raise RuntimeError("ConscienceReward has no model: pass one, or call reward.bind(trainer) after making it")
        if len(prompts) != len(completions):
            raise ValueError(f"conscience reward: {len(prompts)} prompts but {len(completions)} completions")
        samples = [_sample(p, c) for p, c in zip(prompts, completions)]
        conversations, responses, reasonings = (list(x) for x in zip(*samples)) if samples else ([], [], [])
        verdicts = self.conscience.review(conversations, responses, reasonings)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and verdicts:
            log_metric("conscience/flagged", sum(v.flagged for v in verdicts) / len(verdicts))
        return [v.p_aligned for v in verdicts]
