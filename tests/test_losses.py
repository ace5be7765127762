"""Unit tests of training/losses.py against hand-computed values and definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dtgan_plugin.training import losses


def test_lsgan_losses_have_their_least_squares_values() -> None:
    real = torch.tensor([1.0, 0.0, 2.0])
    fake = torch.tensor([0.0, 1.0, -1.0])
    # D: 0.5 E[(D(x)-1)^2] + 0.5 E[D(G)^2]
    assert losses.d_loss(real, fake).item() == pytest.approx(0.5 * (0 + 1 + 1) / 3 + 0.5 * (0 + 1 + 1) / 3)
    assert losses.d_fake_loss(fake).item() == pytest.approx(0.5 * 2 / 3)
    # G: 0.5 E[(D(G)-1)^2]
    assert losses.g_loss(fake).item() == pytest.approx(0.5 * (1 + 0 + 4) / 3)


def test_lsgan_optimum_is_zero_and_bce_matches_softplus() -> None:
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert losses.d_loss(ones, zeros).item() == 0.0
    assert losses.g_loss(ones).item() == 0.0
    real, fake = torch.tensor([0.3, -2.0]), torch.tensor([1.5, -0.5])
    # the non-saturating BCE form: -log sigmoid(real) - log(1 - sigmoid(fake))
    want = (-torch.log(torch.sigmoid(real))).mean() + (-torch.log(1 - torch.sigmoid(fake))).mean()
    assert losses.d_loss(real, fake, kind="bce").item() == pytest.approx(want.item(), rel=1e-6)
    assert losses.g_loss(fake, kind="bce").item() == pytest.approx(
        (-torch.log(torch.sigmoid(fake))).mean().item(), rel=1e-6)
    assert losses.d_fake_loss(fake, kind="bce").item() == pytest.approx(F.softplus(fake).mean().item())


def test_d_loss_is_its_real_half_plus_d_fake_loss() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, generator=g), torch.randn(7, generator=g)
    for kind in ("lsgan", "bce"):
        only_fake = losses.d_fake_loss(fake, kind)
        real_half = losses.d_loss(real, fake, kind) - only_fake
        expected = 0.5 * (real - 1).pow(2).mean() if kind == "lsgan" else F.softplus(-real).mean()
        assert real_half.item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_penalty_is_the_squared_gradient_norm() -> None:
    # D(x) = sum(w * x) per sample: the gradient is w, so R1 = |w|^2 for every sample
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.randn(5, 3, requires_grad=True)
    logits = (x * w).sum(1)
    assert losses.r1_penalty(logits, x).item() == pytest.approx(14.0)
    # quadratic D(x) = sum(x^2): gradient 2x, penalty mean over samples of 4|x|^2
    x2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]], requires_grad=True)
    pen = losses.r1_penalty(x2.pow(2).sum(1), x2)
    assert pen.item() == pytest.approx((4 * 2 + 4 * 4) / 2)
    pen.backward()  # create_graph=True: the penalty itself is differentiable
    assert x2.grad is not None and torch.isfinite(x2.grad).all()


def test_masked_l1_uses_only_masked_clips_and_is_zero_without_any() -> None:
    pred = torch.zeros(3, 2, 4)
    truth = torch.stack([torch.full((2, 4), v) for v in (1.0, 5.0, 3.0)])
    mask = torch.tensor([True, False, True])
    assert losses.masked_l1(pred, truth, mask).item() == pytest.approx(2.0)
    none = losses.masked_l1(pred.requires_grad_(), truth, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()  # still part of the graph, so a step with no truth does not crash
    assert pred.grad is not None and pred.grad.abs().sum() == 0


def test_feature_matching_averages_layers_and_does_not_train_the_real_side() -> None:
    fake = [torch.zeros(2, 3, requires_grad=True), torch.zeros(4, requires_grad=True)]
    real = [torch.ones(2, 3, requires_grad=True), torch.full((4,), 3.0, requires_grad=True)]
    fm = losses.feature_matching(fake, real)
    assert fm.item() == pytest.approx((1.0 + 3.0) / 2)
    fm.backward()
    assert all(r.grad is None for r in real)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fake)
    assert not math.isnan(losses.feature_matching([torch.ones(1)], [torch.ones(1)]).item())
