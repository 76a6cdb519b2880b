"""Padding token-id rows into (B, T) batches: left for generation, right (with labels) for losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100  # the label transformers' losses skip


def pad(
    rows: Sequence[Sequence[int]], pad_id: int, side: str = "right", width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask, both (B, T): each row padded with `pad_id` on `side` to `width`
    (default: the longest row)."""
    if side not in ("left", "right"):
        raise ValueError(f"pad: side must be 'left' or 'right', got {side!r}")
    longest = max((len(r) for r in rows), default=0)
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"pad: width {width} is shorter than the longest row ({longest})")
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if not len(r):
            continue
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, span] = torch.as_tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token-id lists (prompts for generation): input_ids and attention_mask, both (B, T)."""
    return pad(rows, pad_id, "left")


def right_pad_with_labels(
    rows: Sequence[Sequence[int]], loss_masks: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels, (B, T) each: a label is the token where its
    loss mask is 1 and IGNORE_INDEX elsewhere (masked-out tokens and padding)."""
    if len(rows) != len(loss_masks) or any(len(r) != len(m) for r, m in zip(rows, loss_masks)):
        raise ValueError("right_pad_with_labels: every row needs a loss mask of its own length")
    ids, mask = pad(rows, pad_id, "right")
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, (r, m) in enumerate(zip(rows, loss_masks)):
        if len(r):
            row = torch.as_tensor(r, dtype=torch.long)
            labels[i, : len(r)] = row.masked_fill(torch.as_tensor(m) == 0, IGNORE_INDEX)
    return ids, mask, labels
