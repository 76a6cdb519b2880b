"""The alignment loss: DPO over (corrected, flagged) pairs, with the frozen copy as reference.

For a pair with policy log-probs (pi_c, pi_r) and reference log-probs (ref_c, ref_r) of the
chosen (corrected) and rejected (flagged) completions, d_c = pi_c - ref_c, d_r = pi_r - ref_r:

    h = d_c - d_r = (pi_c - pi_r) - (ref_c - ref_r)
    sigmoid (DPO, Rafailov et al. 2023):  loss = -log sigmoid(beta * h)
    ipo     (Azar et al. 2023):           loss = (h - tau)^2, tau = 1 / (2 * beta)

Controls (what the conscience's label adds beyond a pull toward the frozen copy), label-blind or
label-free:

    anchor  IPO with tau = 0:             loss = h^2
            (its gradient 2h dh is IPO's 2(h - tau) dh without the -2 tau dh label push)
    kl      k3 estimator of KL(policy || frozen), both rows alike:
                                          loss = k3(d_c) + k3(d_r),  k3(d) = exp(-d) + d - 1 >= 0
    sft     NLL of the chosen rows only:  loss = -pi_c  (no rejected term, no reference)

Every type but sigmoid takes log-probs averaged over completion tokens (as TRL does for IPO; for
kl the k3 of the per-token mean log-ratio, for sft the mean token NLL). `beta` enters sigmoid and
ipo only. The implicit rewards are beta * (pi - ref) for each side (for sft, whose reference is
zero, beta * pi).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo", "anchor", "kl", "sft")
AVERAGED = frozenset(LOSS_TYPES) - {"sigmoid"}  # the types taking length-averaged log-probs
REFERENCE_FREE = frozenset({"sft"})  # the types that ignore the frozen copy's log-probs


def _k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """k3(d) = exp(-d) + d - 1, d = log pi - log ref: Schulman's low-variance estimator of KL(pi || ref)."""
    return torch.exp(-log_ratio) + log_ratio - 1


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
    d_c, d_r = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    h = d_c - d_r
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "anchor":
        losses = h**2
    elif loss_type == "kl":
        losses = _k3(d_c) + _k3(d_r)
    elif loss_type == "sft":
        losses = -policy_chosen
    else:
        raise ValueError(f"alignment_loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards
