"""Closing eyelids: skin painted over an eye that the warp has squeezed shut.

A spline through the landmarks closes an eye by squeezing it: the iris and the whites are
compressed into a dark slit, which reads as an eye still a little open (the eye opening's
amplitude on carphone → astronaut and self was 0.71 of the source's). A closed eye shows its
lid instead. :func:`paint_eyelids` paints the lid's skin colour (:func:`lid_colours`, sampled
once per target between each brow and its upper lid) over the moved eye (landmarks 36–41 and
42–47, as a lens between two parabolas through its corners, fitted to each lid's two points, as
the mouth's cavity is), with a weight that rises as the eye closes: none until it has closed by
:data:`START` of its resting opening, all of it from :data:`FULL` on. The lens's soft edge
keeps a line of the lashes. An eye at rest or wider open is left alone (``identity_at_rest``
holds).

Measured on the two real pairs (``dtgan eval``, the same weights with and without): the eye
opening's amplitude 0.79 against 0.71, its correlation 0.94 either way, motion 0.877 against
0.878 (six pairs: 0.83 against 0.76).
"""

from __future__ import annotations

import torch

from .face_geometry import colours_at, lens_frame
from .layers import smoothstep

__all__ = ["START", "FULL", "EYES", "lid_colours", "closure", "paint_eyelids"]

#: the closure (1 − opening / resting opening) from which the lid shows, and from which it
#: covers the eye wholly: a landmarker's jitter on an open eye must not flicker a lid on
START, FULL = 0.3, 0.8
#: each eye: its outline's landmarks, the upper lid's and the lower lid's points (paired,
#: iBUG 68), and the brow points above the upper lid
EYES = (((36, 37, 38, 39, 40, 41), (37, 38), (41, 40), (19, 20)),
        ((42, 43, 44, 45, 46, 47), (43, 44), (47, 46), (23, 24)))
#: the lens's soft edge, in pixels of the working size
_SOFT = 0.6
_EPS = 1e-6


def lid_colours(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Each eye's lid colour ``(B, 2, 3)`` in ``image``'s range: the mean of ``image``
    ``(B, 3, H, W)`` halfway between the brow and the upper lid (``points`` ``(B, 68, 2)``,
    pixels)."""
    return torch.stack([colours_at(image, 0.5 * (points[:, list(upper)]
                                                 + points[:, list(brow)])).mean(-1)
                        for _, upper, _, brow in EYES], 1)


def _opening(points: torch.Tensor, upper: tuple[int, ...], lower: tuple[int, ...]
             ) -> torch.Tensor:
    """An eye's opening ``(N,)``: the mean distance between its paired lid points."""
    return (points[:, list(upper)] - points[:, list(lower)]).norm(dim=-1).mean(-1)


def closure(rest: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """How shut each eye is painted ``(N, 2)`` in [0, 1], from resting and moved landmarks
    ``(N, 68, 2)``: 0 up to :data:`START` closed, 1 from :data:`FULL` (smoothstep between)."""
    out = []
    for _, upper, lower, _ in EYES:
        shut = 1.0 - _opening(moved, upper, lower) / _opening(rest, upper, lower).clamp_min(_EPS)
        out.append(smoothstep((shut - START) / (FULL - START)))
    return torch.stack(out, -1)


def _lens_mask(lens: tuple[torch.Tensor, ...], x0: int, y0: int, h: int, w: int, soft: float
               ) -> torch.Tensor:
    """Soft inside-mask ``(N, h, w)`` of the eyes' lenses (``face_geometry.lens_frame``, pixels) on the window
    whose top-left pixel is ``(x0, y0)``: 1 inside, 0 beyond ``soft`` outside. Elementwise
    throughout: a pixel's value must not depend on the window or on which frames share the
    call (batch and transfer chunk frames differently)."""
    origin, axis, normal, length, top, bottom = (v[:, None, None] for v in lens)
    ys = (torch.arange(y0, y0 + h, dtype=origin.dtype, device=origin.device) + 0.5)[:, None]
    xs = torch.arange(x0, x0 + w, dtype=origin.dtype, device=origin.device) + 0.5
    dx, dy = xs - origin[..., 0], ys - origin[..., 1]
    along = dx * axis[..., 0] + dy * axis[..., 1]
    across = dx * normal[..., 0] + dy * normal[..., 1]
    u = (along / length).clamp(0.0, 1.0)
    basis = 4.0 * u * (1.0 - u)
    dist = torch.maximum(torch.maximum(top * basis - across, across - bottom * basis),
                         torch.maximum(-along, along - length))
    return smoothstep((soft - dist) / (2.0 * soft))


def paint_eyelids(frames: torch.Tensor, rest: torch.Tensor, moved: torch.Tensor,
                  colours: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``frames`` ``(N, 3, H, W)`` with lid skin painted over each closing eye; ``rest``
    ``(N, 68, 2)`` and ``moved`` ``(N, 68, 2)`` landmarks in pixels of the working size,
    ``scale`` from it to the frames' size, ``colours`` ``(N, 2, 3)`` (:func:`lid_colours`).
    Only the frames and the window where an eye closes are touched."""
    shut = closure(rest.double(), moved.double())
    if not bool((shut > 0).any()):
        return frames
    # in place when nothing needs the frames' gradient (inference): a chunk at the detail size
    # is tens of MB, and only the eyes' windows change
    out = frames.clone() if frames.requires_grad else frames
    size_h, size_w = frames.shape[-2:]
    soft = _SOFT * scale
    for k, (outline, upper_lid, lower_lid, _) in enumerate(EYES):
        rows = (shut[:, k] > 0).nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        pts = moved[rows].double() * scale
        lens = lens_frame(pts, (outline[0], outline[3]), upper_lid, lower_lid)
        origin, axis, normal, length, top, bottom = lens
        # the lens's extent: its corners and both parabolas' apexes
        mid = origin + 0.5 * length[:, None] * axis
        ends = torch.stack([origin, origin + length[:, None] * axis,
                            mid + top[:, None] * normal, mid + bottom[:, None] * normal], 1)
        lo = (ends.amin((0, 1)) - 2 * soft).floor().clamp_min(0)
        hi = (ends.amax((0, 1)) + 2 * soft).ceil()
        x0, y0 = int(lo[0]), int(lo[1])
        x1, y1 = min(int(hi[0]), size_w), min(int(hi[1]), size_h)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = _lens_mask(lens, x0, y0, y1 - y0, x1 - x0, soft)
        weight = (mask * shut[rows, k][:, None, None]).to(frames.dtype)[:, None]
        colour = colours[rows, k].to(frames.dtype)[:, :, None, None]
        window = out[rows, :, y0:y1, x0:x1]
        out[rows, :, y0:y1, x0:x1] = window + weight * (colour - window)
    return out
