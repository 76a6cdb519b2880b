import math

import pytest
import torch

from emergent_alignment.losses import dpo_loss, sequence_logps


def test_sigmoid_dpo_equals_closed_form():
    pc, pr = torch.tensor([-3.0, -1.0]), torch.tensor([-2.0, -4.0])
    rc, rr = torch.tensor([-2.5, -2.0]), torch.tensor([-2.5, -3.0])
    losses, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta=0.5)
    for i in range(2):
        h = (pc[i] - pr[i]) - (rc[i] - rr[i])
        assert losses[i].item() == pytest.approx(math.log1p(math.exp(-0.5 * h.item())), abs=1e-6)
    assert r_c.tolist() == pytest.approx([0.5 * (-3.0 + 2.5), 0.5 * (-1.0 + 2.0)])
    assert r_r.tolist() == pytest.approx([0.5 * (-2.0 + 2.5), 0.5 * (-4.0 + 3.0)])


def test_ipo_equals_closed_form():
    losses, _, _ = dpo_loss(
        torch.tensor([-1.0]),
        torch.tensor([-2.0]),
        torch.tensor([-1.5]),
        torch.tensor([-1.5]),
        beta=0.25,
        loss_type="ipo",
    )
    assert losses.item() == pytest.approx((1.0 - 1 / (2 * 0.25)) ** 2)


def test_equal_policy_and_reference_give_log2():
    x = torch.tensor([-3.0, -7.0])
    losses, _, _ = dpo_loss(x, x.flip(0), x, x.flip(0), beta=0.1)
    assert losses.tolist() == pytest.approx([math.log(2)] * 2)


def test_gradients_reach_the_policy_only():
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    rc, rr = torch.tensor([-1.5], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    losses.sum().backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # raise chosen, lower rejected
    assert rc.grad is None and rr.grad is None


def test_unknown_loss_type_is_an_error():
    with pytest.raises(ValueError, match="sigmoid or ipo"):
        dpo_loss(*[torch.zeros(1)] * 4, beta=0.1, loss_type="hinge")


def test_sequence_logps_masks_and_averages():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    assert sequence_logps(lp, mask).tolist() == [-5.0, -1.0]
    assert sequence_logps(lp, mask, average=True).tolist() == [-2.5, -1.0]
