"""Adversarial losses (LSGAN or non-saturating BCE), the R1 penalty, and feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Discriminator loss on real and fake logits."""
    real_half = 0.5 * (real - 1).pow(2).mean() if kind == "lsgan" else F.softplus(-real).mean()
    return real_half + d_fake_loss(fake, kind)


def d_fake_loss(fake: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """The fake half of :func:`d_loss` alone (for extra negatives such as mismatched pairs)."""
    if kind == "lsgan":
        return 0.5 * fake.pow(2).mean()
    return F.softplus(fake).mean()


def g_loss(fake: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Generator's adversarial loss on the fake logits."""
    if kind == "lsgan":
        return 0.5 * (fake - 1).pow(2).mean()
    return F.softplus(-fake).mean()


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """R1: squared gradient norm of D on real data (inputs must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def masked_l1(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the clips where ``mask`` (B,) is true; zero if none are."""
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return (pred[mask] - truth[mask]).abs().mean()


def feature_matching(fake_feats: list[torch.Tensor],
                     real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 between fake and (detached) real hidden features."""
    return sum((f.float() - r.detach().float()).abs().mean()
               for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
