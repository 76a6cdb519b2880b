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


# fixed log-probs (length-averaged, as the trainer passes them to every type but sigmoid)
PC, PR = torch.tensor([-1.0, -0.5]), torch.tensor([-2.0, -0.25])
RC, RR = torch.tensor([-1.5, -0.75]), torch.tensor([-1.5, -1.0])


def test_anchor_is_ipo_without_the_target_margin():
    losses, _, _ = dpo_loss(PC, PR, RC, RR, beta=0.25, loss_type="anchor")
    # h = (pc - pr) - (rc - rr): 1.0 - 0.0 and -0.25 - 0.25
    assert losses.tolist() == pytest.approx([1.0, 0.25])


def test_anchor_and_ipo_gradients_differ_by_the_label_push_only():
    beta = 0.25
    grads = {}
    for kind in ("anchor", "ipo"):
        pc, pr = PC.clone().requires_grad_(), PR.clone().requires_grad_()
        dpo_loss(pc, pr, RC, RR, beta=beta, loss_type=kind)[0].sum().backward()
        grads[kind] = (pc.grad, pr.grad)
    tau = 1 / (2 * beta)
    # d/dh of (h - tau)^2 minus d/dh of h^2 is -2 tau: -2 tau dh, dh = d pc - d pr
    assert (grads["ipo"][0] - grads["anchor"][0]).tolist() == pytest.approx([-2 * tau] * 2)
    assert (grads["ipo"][1] - grads["anchor"][1]).tolist() == pytest.approx([2 * tau] * 2)


def test_kl_is_the_k3_estimator_on_both_rows_alike():
    losses, _, _ = dpo_loss(PC, PR, RC, RR, beta=0.25, loss_type="kl")

    def k3(pi, ref):
        return math.exp(ref - pi) - (ref - pi) - 1

    for i in range(2):
        want = k3(PC[i].item(), RC[i].item()) + k3(PR[i].item(), RR[i].item())
        assert losses[i].item() == pytest.approx(want, abs=1e-6)
    # label-blind: swapping chosen and rejected changes nothing; zero where the policy is the frozen copy
    swapped, _, _ = dpo_loss(PR, PC, RR, RC, beta=0.25, loss_type="kl")
    assert swapped.tolist() == pytest.approx(losses.tolist())
    assert dpo_loss(RC, RR, RC, RR, beta=0.25, loss_type="kl")[0].tolist() == [0.0, 0.0]


def test_sft_is_the_chosen_rows_nll_alone():
    pc, pr = PC.clone().requires_grad_(), PR.clone().requires_grad_()
    losses, _, _ = dpo_loss(pc, pr, RC, RR, beta=0.25, loss_type="sft")
    assert losses.tolist() == pytest.approx([1.0, 0.5])
    losses.sum().backward()
    assert pc.grad.tolist() == [-1.0, -1.0] and pr.grad is None  # no rejected term
    # no reference: other reference log-probs give the same loss
    assert dpo_loss(PC, PR, RC * 3, RR * 3, beta=0.25, loss_type="sft")[0].tolist() == losses.tolist()


def test_beta_enters_the_controls_not_at_all():
    for kind in ("anchor", "kl", "sft"):
        a, b = (dpo_loss(PC, PR, RC, RR, beta=beta, loss_type=kind)[0] for beta in (0.1, 4.0))
        assert a.tolist() == b.tolist(), kind


def test_unknown_loss_type_is_an_error():
    with pytest.raises(ValueError, match="sigmoid, ipo, anchor, kl, sft"):
        dpo_loss(*[torch.zeros(1)] * 4, beta=0.1, loss_type="hinge")


def test_sequence_logps_masks_and_averages():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    assert sequence_logps(lp, mask).tolist() == [-5.0, -1.0]
    assert sequence_logps(lp, mask, average=True).tolist() == [-2.5, -1.0]


def test_the_trainer_gives_each_control_its_inputs(llama_dir, tmp_path, monkeypatch):
    """Fixed pairs through the trainer: at the frozen copy (step 1) anchor and kl pull with zero gradient
    and sft alone moves the policy, without a reference forward; once the policy has moved (step 2),
    anchor and kl pull too."""
    from _fixed_pairs import gradients

    from emergent_alignment.trainer import EmergentAlignmentTrainer

    def run(name, loss_type, steps, weight=1.0):
        return gradients(
            llama_dir, 4, 1, str(tmp_path / name), weight=weight, alignment_loss_type=loss_type, max_steps=steps
        )[0]

    def differ(a, b):
        return max((a[n] - b[n]).abs().max().item() for n in a)

    plain1, plain2 = run("p1", "ipo", 1, weight=0.0), run("p2", "ipo", 2, weight=0.0)
    assert differ(run("a1", "anchor", 1), plain1) < 1e-7 and differ(run("k1", "kl", 1), plain1) < 1e-7
    assert differ(run("a2", "anchor", 2), plain2) > 1e-6 and differ(run("k2", "kl", 2), plain2) > 1e-6
    monkeypatch.setattr(EmergentAlignmentTrainer, "_ref_logps", lambda *a: pytest.fail("sft needs no reference"))
    assert differ(run("s1", "sft", 1), plain1) > 1e-4
