"""The organism's word-level tokenizer (HF fast tokenizer built with `tokenizers`).

Pieces: a newline, four spaces (one indentation level), a word with an optional leading space,
one punctuation mark with an optional leading space, or any other single whitespace character.
The vocabulary is every piece of the organism world (all splits, so evaluation text has no
unknown word) plus every printable ASCII character with and without a leading space. The decoder
concatenates pieces, so every corpus sample round-trips exactly, indentation included (a test).
Text outside the world can hold words the vocabulary lacks: they become <unk>.
"""

from __future__ import annotations

import re
import string

from ..tiny import CHATML_TEMPLATE

PATTERN = r"\n| {4}| ?[A-Za-z0-9_]+| ?[^\sA-Za-z0-9_]|\s"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]  # pad, turn start, EOS, unknown
_PIECE = re.compile(PATTERN)


def pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def vocabulary(texts) -> dict[str, int]:
    """Specials first, then ASCII fallbacks, then world pieces by first appearance (deterministic)."""
    vocab: dict[str, int] = {}
    for tok in SPECIALS:
        vocab.setdefault(tok, len(vocab))
    for ch in string.printable:
        for piece in pieces(ch) + pieces(" " + ch):
            vocab.setdefault(piece, len(vocab))
    for text in texts:
        found = pieces(text)
        if found and found[0][0] not in " \n":
            found.append(" " + found[0])  # a message's first word follows "Role: " in a transcript
        for piece in found:
            vocab.setdefault(piece, len(vocab))
    return vocab


def build_tokenizer(texts=()):
    """A `PreTrainedTokenizerFast` with the ChatML template (with generation markers).

    The vocabulary covers every world text plus `texts` (e.g. the conscience's prompt strings).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from .world import all_texts

    tok = Tokenizer(models.WordLevel(vocabulary(all_texts() + list(texts)), unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    hf.chat_template = CHATML_TEMPLATE
    return hf
