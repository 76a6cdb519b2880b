"""Chat datasets: EM-format JSONL, HF datasets with a `messages` column, prompt-only probe sets.

Every record is validated; a bad one raises `DataError` naming the file, the line and the field.

The held-out split of the code datasets is defined once, here: a chat is held out when the
SHA-256 of its first user turn falls in the lowest `HELDOUT_FRACTION` of the hash range. It is
deterministic, needs no stored index, and keeps every copy of a prompt on the same side of the
split. Training configs exclude it (`exclude_heldout: true`, the default); evaluation uses it.
"""

from __future__ import annotations

import hashlib
import json
import os

from .chat import ROLES, prompt_messages
from .paths import package_data

HELDOUT_FRACTION = 0.1
EM_DATASETS = ("insecure", "secure", "educational", "jailbroken")


class DataError(ValueError):
    """A dataset record that cannot be used; the message names the file, line and field."""


def em_path(name: str) -> str:
    return package_data("em", name)


def resolve_source(source: str) -> str:
    """`em:insecure` and friends name the vendored EM datasets, `probes:freeform` the vendored
    free-form probe prompts (disjoint from the EM evaluation themes); anything else is a path."""
    if source.startswith("probes:"):
        path = package_data("probes", source[7:] + ".jsonl")
        if not os.path.isfile(path):
            raise DataError(f"unknown probe set {source!r}; the vendored one is probes:freeform")
        return path
    if source.startswith("em:"):
        name = source[3:]
        if name not in EM_DATASETS:
            raise DataError(f"unknown EM dataset {source!r}; choose from {', '.join('em:' + n for n in EM_DATASETS)}")
        return em_path(f"{name}.jsonl")
    return source


def read_jsonl(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows


def validate_messages(messages, where: str, need_assistant: bool = True) -> list[dict]:
    """Check a chat: a list of {role, content} with known roles and non-empty assistant turns."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        field = f"{where}: messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"{field}: expected an object with 'role' and 'content'")
        if "role" not in m:
            raise DataError(f"{field}: missing 'role'")
        if m["role"] not in ROLES:
            raise DataError(f"{field}.role: {m['role']!r} is not one of {ROLES}")
        if not isinstance(m.get("content"), str):
            raise DataError(f"{field}.content: missing or not a string")
        if m["role"] == "assistant" and not m["content"].strip():
            raise DataError(f"{field}.content: empty assistant turn")
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn to train on")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def first_user_turn(messages: list[dict]) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def is_heldout(messages: list[dict], fraction: float = HELDOUT_FRACTION) -> bool:
    digest = hashlib.sha256(first_user_turn(messages).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def read_chats(source: str, split: str = "train") -> list[tuple[str, list[dict]]]:
    """(where, messages) for each chat of a JSONL file, a saved dataset dir or a hub dataset."""
    path = resolve_source(source)
    if path.endswith(".jsonl"):
        return [
            (f"{path}:{n}", row.get("messages")) if "messages" in row else _missing(path, n)
            for n, row in read_jsonl(path)
        ]
    from datasets import load_dataset, load_from_disk

    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset_info.json")):
        ds = load_from_disk(path)
    elif os.path.exists(path) or path.startswith((".", "/")):
        raise DataError(f"{path}: not a .jsonl file or a saved dataset directory")
    else:
        ds = load_dataset(path, split=split)
    if "messages" not in ds.column_names:
        raise DataError(f"{path}: the dataset has no 'messages' column (columns: {ds.column_names})")
    return [(f"{path}[{i}]", m) for i, m in enumerate(ds["messages"])]


def _missing(path, lineno):
    raise DataError(f"{path}:{lineno}: missing field 'messages'")


def load_chats(
    source: str, heldout: str = "exclude", limit: int | None = None, split: str = "train"
) -> list[list[dict]]:
    """Validated chats from `source`. heldout: "exclude" (training), "only" (evaluation) or "keep"."""
    if heldout not in ("exclude", "only", "keep"):
        raise ValueError(f"heldout must be exclude, only or keep, got {heldout!r}")
    chats = []
    for where, messages in read_chats(source, split):
        messages = validate_messages(messages, where)
        if heldout == "keep" or is_heldout(messages) == (heldout == "only"):
            chats.append(messages)
        if limit is not None and len(chats) >= limit:
            break
    if not chats:
        raise DataError(f"{source}: no chats left (heldout={heldout!r})")
    return chats


def load_prompts(source: str, limit: int | None = None) -> list[list[dict]]:
    """Prompt-only conversations for probes: JSONL rows with `prompt` (text) or `messages`.

    For `messages`, the prompt is the conversation up to its last assistant turn.
    A `.txt` file holds one prompt per line.
    """
    path = resolve_source(source)
    prompts = []
    if path.endswith(".txt"):
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
        with open(path, encoding="utf-8") as f:
            prompts = [[{"role": "user", "content": line.strip()}] for line in f if line.strip()]
    else:
        for n, row in read_jsonl(path):
            where = f"{path}:{n}"
            if isinstance(row.get("prompt"), str):
                if not row["prompt"].strip():
                    raise DataError(f"{where}.prompt: empty prompt")
                prompts.append([{"role": "user", "content": row["prompt"]}])
            elif "messages" in row:
                msgs = validate_messages(row["messages"], where, need_assistant=False)
                if msgs[-1]["role"] == "assistant":  # a full chat: its prompt is all before the reply
                    msgs = prompt_messages(msgs)
                if not msgs or msgs[-1]["role"] != "user":
                    raise DataError(f"{where}: the prompt must end with a user turn")
                prompts.append(msgs)
            else:
                raise DataError(f"{where}: expected a 'prompt' string or a 'messages' list")
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts[:limit] if limit else prompts
