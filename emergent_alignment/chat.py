"""Chat formatting shared by the conscience, the trainer and generation.

Three small jobs:
- give a tokenizer without a chat template the documented plain template (with
  `{% generation %}` markers, so TRL's assistant-only loss works);
- split a `<think>...</think>` reasoning block off a response;
- tokenize a (prompt, completion) pair the way TRL does: render the whole chat, and take the
  completion to start where the prompt's tokens stop matching.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

# The plain template used when a tokenizer has none. Each turn is "### Role:\n<content>\n\n";
# an assistant turn ends with the EOS token, inside the generation markers so that the model
# learns to stop.
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '### Assistant:\n' }}"
    "{%- generation %}{{- message['content'] + eos_token }}{%- endgeneration %}"
    "{{- '\n\n' }}"
    "{%- else %}"
    "{{- '### ' + message['role'] | capitalize + ':\n' + message['content'] + '\n\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '### Assistant:\n' }}{%- endif %}"
)

ROLES = ("system", "user", "assistant")
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


def ensure_chat_template(tokenizer) -> bool:
    """Give `tokenizer` the plain template if it has none. Returns True if it was added."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    logger.warning("The tokenizer has no chat template: using the plain '### Role:' template.")
    return True


def ensure_pad_token(tokenizer) -> None:
    """Use EOS as the pad token when the tokenizer has none (the usual HF convention)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("The tokenizer has neither a pad token nor an EOS token: set one of them.")
        tokenizer.pad_token = tokenizer.eos_token


def split_reasoning(response: str) -> tuple[str | None, str]:
    """Split a leading `<think>...</think>` block off `response`: returns (reasoning, answer)."""
    match = _THINK.match(response)
    if match is None:
        return None, response
    return match.group(1).strip(), response[match.end() :]


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode(tokenizer, text: str, split_special_tokens: bool = False) -> list[int]:
    """Token ids of already-templated text (the template supplies BOS where it wants one)."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=split_special_tokens)["input_ids"]


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation followed by the assistant's generation prompt."""
    return encode(tokenizer, render(tokenizer, messages, add_generation_prompt=True))


def encode_prompt_completion(tokenizer, messages: list[dict], completion: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids) for `completion` as the assistant's reply to `messages`.

    Like TRL, the completion starts where the prompt's tokens and the full chat's tokens first
    differ. It ends with the end-of-turn token (the tokenizer's EOS): what `generate` returns and
    what assistant-only SFT trains. Template text after it (ChatML's newline) is dropped: the model
    never generates it, so its log-prob is untrained noise in a score or a DPO pair. A template
    whose turn ends with a token other than the tokenizer's EOS keeps its whole tail.
    """
    prompt_ids = encode_prompt(tokenizer, messages)
    full_ids = encode(tokenizer, render(tokenizer, messages + [{"role": "assistant", "content": completion}]))
    n = common_prefix_length(prompt_ids, full_ids)
    reply = full_ids[n:]
    ends = [i for i, t in enumerate(reply) if t == tokenizer.eos_token_id]
    if ends:  # the last one is the template's own end of turn (the content may hold the EOS text)
        reply = reply[: ends[-1] + 1]
    return full_ids[:n], reply


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) its last assistant turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i]
    return list(messages)
