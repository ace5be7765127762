"""The inside of a mouth that opens wider than it was: rigid lips' content and a dark cavity.

A spline through the landmarks stretches whatever lies between the inner lips at rest (a
closed line, or the teeth of a smile) over the whole opening: on real faces a wide-open mouth
showed teeth a face tall. :func:`mouth_interior` replaces the warp inside the moved inner lips
where the mouth is open wider than at rest:

* the content under the upper inner lip at rest (half the rest gap: upper teeth, say) moves
  rigidly with the upper lip, the content above the lower lip with the lower lip;
* the new gap between them is the mouth's cavity, painted a dark shade of the lips' colour:
  darkest under the upper teeth (the shadow of the palate), lighter towards the lower lip
  (the tongue).

The inner lips are modelled in the mouth's own frame (x along the line between the inner
corners 60 and 64, y across it) as parabolas through the corners, fitted to the three inner
points of each lip (61-63 upper, 65-67 lower): robust to a landmarker's jitter and cheap to
evaluate at every pixel. Where the mouth is no wider open than at rest nothing changes, so a
face at rest renders exactly as before (``identity_at_rest`` holds).
"""

from __future__ import annotations

import torch

#: the inner-lip points: corners, then upper and lower inner lip (iBUG 68 layout)
_LEFT, _RIGHT = 60, 64
_UPPER, _LOWER = (61, 62, 63), (67, 66, 65)
_OUTER_LIPS = slice(48, 60)
#: the cavity's colour: the lips' mean colour times a shade going from the top of the
#: cavity to its bottom (in [0, 1] units)
SHADE_TOP, SHADE_BOTTOM = 0.2, 0.6
#: the extra opening (beyond the rest gap, a fraction of the mouth's length) from which the
#: cavity starts to show, and over which it fades in: a landmarker's jitter around a closed
#: mouth (about 1 % of its length) must not make a dark line flicker
OPEN_MIN, OPEN_RAMP = 0.05, 0.1
#: edges of the cavity and of the change-over from the spline, in pixels of the working size
_SOFT = 1.0
_EPS = 1e-6


def _mouth_frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor, torch.Tensor]:
    """Per face (N, 68, 2): origin (left inner corner), unit axis, unit normal (pointing
    down the face), mouth length, and the parabola heights (N,) of the upper and lower lips."""
    origin = points[:, _LEFT]
    span = points[:, _RIGHT] - origin
    length = span.norm(dim=-1).clamp_min(_EPS)
    axis = span / length[:, None]
    normal = torch.stack([-axis[:, 1], axis[:, 0]], -1)

    def height(idx: tuple[int, ...]) -> torch.Tensor:
        rel = points[:, list(idx)] - origin[:, None]
        u = ((rel * axis[:, None]).sum(-1) / length[:, None]).clamp(0.0, 1.0)
        v = (rel * normal[:, None]).sum(-1)
        basis = 4.0 * u * (1.0 - u)  # the parabola through both corners, 1 at the middle
        return (v * basis).sum(-1) / (basis * basis).sum(-1).clamp_min(_EPS)

    return origin, axis, normal, length, torch.stack([height(_UPPER), height(_LOWER)], -1)


def lips_colour(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The outer lips' mean colour (B, 3) in [0, 1], of ``image`` (B, 3, H, W) in [-1, 1]
    with ``points`` (B, 68, 2) in pixels."""
    h, w = image.shape[-2:]
    lips = points[:, _OUTER_LIPS]
    grid = torch.stack([lips[..., 0] / w * 2 - 1, lips[..., 1] / h * 2 - 1], -1)
    samples = torch.nn.functional.grid_sample(image, grid[:, None], mode="bilinear",
                                              padding_mode="border", align_corners=False)
    return (samples[:, :, 0].mean(-1) + 1) * 0.5


def paint_cavity(frames: torch.Tensor, paint: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """``frames`` (N, 3, H, W) in [-1, 1] with the cavity painted in: ``paint`` (N, 2, H, W) is
    :func:`mouth_interior`'s coverage and depth, ``lips`` (N, 3) the lips' colour in [0, 1]."""
    cover, depth = paint[:, :1], paint[:, 1:]
    shade = SHADE_TOP + (SHADE_BOTTOM - SHADE_TOP) * depth
    colour = lips[:, :, None, None] * shade * 2 - 1
    return frames + cover * (colour - frames)


def mouth_interior(flow: torch.Tensor, rest: torch.Tensor, moved: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The spline's backward ``flow`` (N, 2, H, W) in grid units with the inside of the moved
    mouth replaced, and the cavity's paint (N, 2, H, W): its coverage in [0, 1] and its depth
    (0 at the top of the cavity, 1 at its bottom).

    ``rest`` and ``moved`` (N, 68, 2) are the target's landmarks at rest and this frame's, in
    pixels of the H×W frame (pixel centres at i + 0.5).
    """
    n, _, h, w = flow.shape
    o1, a1, n1, len1, lips1 = _mouth_frame(moved)
    o0, a0, n0, len0, lips0 = _mouth_frame(rest)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device) + 0.5,
                            torch.arange(w, dtype=flow.dtype, device=flow.device) + 0.5,
                            indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(1, h * w, 2)
    rel = pix - o1[:, None]
    u = (rel * a1[:, None]).sum(-1) / len1[:, None]           # (N, HW) along the mouth
    v = (rel * n1[:, None]).sum(-1)                            # across it, pixels
    bump = 4.0 * u.clamp(0.0, 1.0) * (1.0 - u.clamp(0.0, 1.0))
    up1, lo1 = lips1[:, :1] * bump, lips1[:, 1:] * bump        # the moved lips at u
    gap0 = (lips0[:, 1:] - lips0[:, :1]).clamp_min(0.0) * bump  # the rest gap at u
    band = gap0 * 0.5                                          # what each lip carries
    below_upper = v - up1                                      # > 0 under the upper lip
    above_lower = lo1 - v                                      # > 0 over the lower lip
    # where each pixel samples the target at rest (rest-frame u, v → pixels)
    take_upper = lips0[:, :1] * bump + below_upper
    take_lower = lips0[:, 1:] * bump - above_lower
    from_upper = below_upper < (below_upper + above_lower) * 0.5
    v_rest = torch.where(from_upper, take_upper.clamp(max=lips0[:, :1] * bump + band),
                         take_lower.clamp(min=lips0[:, 1:] * bump - band))
    u_rest = u * len0[:, None]
    src = o0[:, None] + u_rest[..., None] * a0[:, None] + v_rest[..., None] * n0[:, None]
    # the override applies inside the moved inner lips, where the mouth is open wider than at
    # rest (soft edges: no seam between the spline's warp and this one)
    extra = (lo1 - up1) - gap0
    inside_u = ((u * len1[:, None]).clamp(0, 1) * ((1 - u) * len1[:, None]).clamp(0, 1))
    inside = (below_upper / _SOFT + 0.5).clamp(0, 1) * (above_lower / _SOFT + 0.5).clamp(0, 1)
    opening = ((extra / len1[:, None] - OPEN_MIN) / OPEN_RAMP).clamp(0, 1)
    weight = inside * inside_u * opening * (extra / _SOFT).clamp(0, 1)
    cavity = weight * ((below_upper - band) / _SOFT + 0.5).clamp(0, 1) \
        * ((above_lower - band) / _SOFT + 0.5).clamp(0, 1)
    size = torch.tensor([w, h], dtype=flow.dtype, device=flow.device)
    new_flow = ((src - pix) * (2.0 / size)).transpose(1, 2).reshape(n, 2, h, w)
    weight = weight.reshape(n, 1, h, w)
    out = flow + weight * (new_flow - flow)
    depth = ((below_upper - band) / (extra.clamp_min(_EPS))).clamp(0, 1)
    return out, torch.stack([cavity, depth], 1).reshape(n, 2, h, w)
