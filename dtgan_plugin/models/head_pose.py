"""How much of the source's head motion a landmark-driven transfer keeps (``head``).

The moved landmarks carry two motions: the head's (it travels, turns in the picture plane,
comes closer) and the face's (mouth, eyes, brows). The head's is the 2D similarity that best
maps the target's resting skull points onto their moved places; what is left once it is undone
is the expression. :func:`scale_head_pose` keeps the expression and applies the similarity
raised to the power ``head``: 1 the source's head motion, 0 none (the head stays where the
photo has it and only the face moves), 0.5 half the travel, half the tilt, the square root of
the zoom.

Why a user wants less than 1: a photo's neck and shoulders do not move with the head, so a
large head move stretches the neck (and, without a person matte, bends the background beside
the hair, :mod:`.head_outline`). A source filmed with a hand-held camera also carries the
camera's shake as head travel.
"""

from __future__ import annotations

import torch

__all__ = ["RIGID_POINTS", "MAX_HEAD", "scale_head_pose", "head_similarity", "apply_similarity"]

#: points that move with the skull rather than with an expression: the jaw's ends by the ears,
#: the nose, and the eyes' corners (not the lids, which blink; not the brows, which rise)
RIGID_POINTS: tuple[int, ...] = (0, 1, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35,
                                 36, 39, 42, 45)
#: the largest ``head``: twice the source's head motion is already an exaggeration
MAX_HEAD = 2.0
_EPS = 1e-9


def head_similarity(rest: torch.Tensor, moved: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The least-squares similarity from ``rest`` to ``moved`` skull points ``(N, 68, 2)``.

    Returns ``(centre, scale, angle, shift)``: ``moved ≈ scale·R(angle)·(rest − centre) +
    centre + shift``, with ``centre`` ``(N, 2)`` the resting skull points' mean (float64).
    """
    idx = list(RIGID_POINTS)
    p, m = rest[:, idx].double(), moved[:, idx].double()
    cp, cm = p.mean(1), m.mean(1)
    a, b = p - cp[:, None], m - cm[:, None]
    # b ≈ z·a with z = s·e^{iθ} as a complex number: z = Σ conj(a)·b / Σ |a|²
    norm = a.square().sum((1, 2)).clamp_min(_EPS)
    re = (a * b).sum((1, 2)) / norm
    im = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(1) / norm
    scale = torch.sqrt(re * re + im * im).clamp_min(_EPS)
    return cp, scale, torch.atan2(im, re), cm - cp


def apply_similarity(points: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor,
                     angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Points ``(N, P, 2)`` moved by :func:`head_similarity`'s ``(centre, scale, angle,
    shift)``."""
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y = (points - centre[:, None]).unbind(-1)
    k = scale[:, None]
    return torch.stack([k * (c * x - s * y), k * (s * x + c * y)], -1) + (centre + shift)[:, None]


def scale_head_pose(rest: torch.Tensor, moved: torch.Tensor, head: float) -> torch.Tensor:
    """``moved`` landmarks ``(N, 68, 2)`` with the head's motion from ``rest`` scaled by
    ``head`` (0 none, 1 unchanged); the expression is kept."""
    if head == 1.0:
        return moved
    centre, scale, angle, shift = head_similarity(rest, moved)
    # undo the head's similarity: the expression, in the resting head's place
    inv = apply_similarity(moved.double() - shift[:, None], centre, 1.0 / scale, -angle,
                           torch.zeros_like(shift))
    out = apply_similarity(inv, centre, scale.pow(head), angle * head, shift * head)
    return out.to(moved.dtype)
