"""Tiny random models built locally, for tests, smoke runs and `examples/tiny.yaml`.

A model spec is `tiny:ARCH` with ARCH in llama, qwen2, gpt2, optionally followed by options:
`tiny:llama?hidden=64&layers=2&heads=4&vocab=512&template=chatml&seed=0`.
`template=none` leaves the tokenizer without a chat template (the conscience and the trainer
then fall back to the plain template). The tokenizer is a byte-level BPE trained on a slice of
the vendored EM data, so it round-trips any text. Weights are random: a tiny model's verdicts
and generations are noise, which is all a smoke run needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import parse_qsl

import torch

from .io import atomic_directory
from .paths import cache_dir

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\n' }}"
    "{%- else %}{{- message['content'] + '<|im_end|>\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
DEFAULTS = dict(hidden=64, layers=2, heads=4, vocab=512, template="chatml", seed=0)
ARCHS = ("llama", "qwen2", "gpt2")


def is_tiny_spec(name: str) -> bool:
    return isinstance(name, str) and name.startswith("tiny:")


def parse_spec(spec: str) -> tuple[str, dict]:
    if not is_tiny_spec(spec):
        raise ValueError(f"not a tiny model spec: {spec!r} (expected tiny:ARCH[?key=value&...])")
    arch, _, query = spec[len("tiny:") :].partition("?")
    if arch not in ARCHS:
        raise ValueError(f"tiny model spec {spec!r}: unknown architecture {arch!r}; choose from {ARCHS}")
    opts = dict(DEFAULTS)
    for key, value in parse_qsl(query, strict_parsing=bool(query)):
        if key not in DEFAULTS:
            raise ValueError(f"tiny model spec {spec!r}: unknown option {key!r}; options are {sorted(DEFAULTS)}")
        opts[key] = value if key == "template" else int(value)
    if opts["template"] not in ("chatml", "none"):
        raise ValueError(f"tiny model spec {spec!r}: template must be chatml or none")
    return arch, opts


def tokenizer_corpus(limit: int = 400) -> list[str]:
    """Text to train the tiny tokenizer on: a slice of the vendored EM insecure data."""
    from .data import em_path

    texts = []
    with open(em_path("insecure.jsonl")) as f:
        for _, line in zip(range(limit), f):
            texts += [m["content"] for m in json.loads(line)["messages"]]
    return texts + ["Yes No Looking back at your answer, was it ethical? transcript"]


def build_tokenizer(vocab_size: int, template: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    if template == "chatml":
        hf.chat_template = CHATML_TEMPLATE
    return hf


def build_model(arch: str, opts: dict, tokenizer):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    h, n, heads = opts["hidden"], opts["layers"], opts["heads"]
    if arch == "gpt2":
        config = GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_positions=2048, **common)
    else:
        cls = LlamaConfig if arch == "llama" else Qwen2Config
        config = cls(
            hidden_size=h,
            num_hidden_layers=n,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=2 * h,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            **common,
        )
    torch.manual_seed(opts["seed"])
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tiny(spec: str, out_dir: str | None = None) -> str:
    """Build the model a tiny spec names (cached) and return its checkpoint directory."""
    arch, opts = parse_spec(spec)
    if out_dir is None:
        key = hashlib.sha256(json.dumps([arch, opts, 1], sort_keys=True).encode()).hexdigest()[:16]
        out_dir = os.path.join(cache_dir(), "tiny", f"{arch}-{key}")
    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return out_dir
    tokenizer = build_tokenizer(opts["vocab"], opts["template"])
    model = build_model(arch, opts, tokenizer)
    with atomic_directory(out_dir, overwrite=False) as tmp:  # another process may build it first: keep theirs
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir
