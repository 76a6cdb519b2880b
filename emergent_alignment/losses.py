"""The alignment loss: DPO over (corrected, flagged) pairs, with the frozen copy as reference.

For a pair with policy log-probs (pi_c, pi_r) and reference log-probs (ref_c, ref_r) of the
chosen (corrected) and rejected (flagged) completions:

    h = (pi_c - pi_r) - (ref_c - ref_r)
    sigmoid (DPO, Rafailov et al. 2023):  loss = -log sigmoid(beta * h)
    ipo     (Azar et al. 2023):           loss = (h - 1 / (2 * beta))^2, with log-probs averaged
                                          over completion tokens (as TRL does for IPO)

The implicit rewards are beta * (pi - ref) for each side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean) of per-token log-probs over the completion: (B, T), (B, T) -> (B,)."""
    total = (token_logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if average else total


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and implicit rewards, all (P,). Reference log-probs carry no gradient."""
    ref_chosen, ref_rejected = ref_chosen.detach(), ref_rejected.detach()
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"alignment_loss_type must be sigmoid or ipo, got {loss_type!r}")
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards
