"""The inside of a mouth that opens wider than it was: rigid lips' content and a dark cavity.

A spline through the landmarks stretches whatever lies between the inner lips at rest (a
closed line, or the teeth of a smile) over the whole opening: on real faces a wide-open mouth
showed teeth a face tall. :func:`mouth_interior` replaces the warp inside the moved inner lips
where the mouth is open wider than at rest:

* the content under the upper inner lip at rest (half the rest gap: upper teeth, say) moves
  rigidly with the upper lip, the content above the lower lip with the lower lip;
* the new gap between them is the mouth's cavity, painted in shades of the lips' colour
  (:func:`cavity_shade`): a near-black throat under the upper teeth, and a tongue rising from
  the lower lip, a dome highest at the middle, in shadow at its back and lit at its tip; the
  cavity darkens towards the corners, where the cheeks shade it. A linear ramp from dark to
  light (the first version) read as a flat grey disc when the mouth opened wide. MediaPipe
  reads the ramp's mouth a little wider open: on the six real pairs the mouth opening's
  amplitude is 0.84 against the ramp's 0.91, its correlation 0.98 both, the mouth width's
  0.74 against 0.76. Darker and sharper-edged tongues read smaller still (0.76-0.81).

The inner lips are modelled in the mouth's own frame (x along the line between the mouth's
corners 48 and 54, y across it) as parabolas through the corners, fitted to the three inner
points of each lip (61-63 upper, 65-67 lower): robust to a landmarker's jitter and cheap to
evaluate at every pixel. The parabolas meet at the outer corners, not the inner ones (60, 64):
a mouth opened wide is dark right to its corners, and a cavity that stopped at the inner
corners was read by MediaPipe as a narrower mouth the wider it opened (on the six real pairs,
hair held still, the mouth width's correlation was 0.75 without the cavity, 0.69 with it
through the inner corners, 0.76 through the outer ones). Where the mouth is no wider open than at rest nothing changes, so a
face at rest renders exactly as before (``identity_at_rest`` holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .face_geometry import colours_at, lens_frame

#: the mouth's corners, then the upper and lower inner lip's points (iBUG 68 layout)
_LEFT, _RIGHT = 48, 54
_UPPER, _LOWER = (61, 62, 63), (67, 66, 65)
_OUTER_LIPS = slice(48, 60)
#: the cavity's colour is the lips' mean colour times a shade (:func:`cavity_shade`): the
#: throat's, the tongue's at its back (its top edge) and at its tip (on the lower lip), and
#: what is left of them at the mouth's corners
THROAT, TONGUE_BACK, TONGUE_TIP, CORNER = 0.25, 0.4, 0.7, 0.5
#: the cavity's colour at full shade: the lips' brightness, their colourfulness times
#: SATURATION, in the hue of MUCOSA (a tongue's pink-red). The lips' mean takes in some skin,
#: and a plain shade of it looked grey-brown; a grey photo keeps a grey cavity
SATURATION = 1.2
MUCOSA = (0.78, 0.40, 0.42)
#: the tongue's height at the middle of the mouth, and the width of its top edge's shading,
#: fractions of the cavity's height (the edge at least a pixel wide)
TONGUE_HEIGHT, TONGUE_EDGE = 0.55, 0.15
#: the extra opening (beyond the rest gap, a fraction of the mouth's length) from which the
#: cavity starts to show, and over which it fades in: a landmarker's jitter around a closed
#: mouth (about 1 % of its length) must not make a dark line flicker
OPEN_MIN, OPEN_RAMP = 0.05, 0.1
#: edges of the cavity and of the change-over from the spline, in pixels of the working size
_SOFT = 1.0
_EPS = 1e-6


def _mouth_frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor, torch.Tensor]:
    """Per face (N, 68, 2): origin (the mouth's left corner), unit axis, unit normal (pointing
    down the face), mouth length, and the parabola heights (N, 2) of the upper and lower lips."""
    origin, axis, normal, length, top, bottom = lens_frame(points, (_LEFT, _RIGHT), _UPPER,
                                                           _LOWER)
    return origin, axis, normal, length, torch.stack([top, bottom], -1)


def cavity_shade(u: torch.Tensor, depth: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """The cavity's shade at ``u`` along the mouth (0 and 1 its corners) and ``depth`` across
    the cavity (0 under the upper teeth, 1 on the lower lip's), the cavity ``height`` pixels
    tall there; all broadcast together."""
    across = (4.0 * u * (1.0 - u)).clamp(0.0, 1.0).sqrt()  # 0 at the corners, 1 in the middle
    top = 1.0 - TONGUE_HEIGHT * across                      # the tongue's top edge, in depth
    # a soft edge at least a pixel wide, whatever the cavity's height
    soft = (_SOFT / height.clamp_min(_EPS)).clamp(min=TONGUE_EDGE, max=0.5)
    tongue = ((depth - top) / soft + 0.5).clamp(0.0, 1.0)
    along = ((depth - top) / (1.0 - top).clamp_min(_EPS)).clamp(0.0, 1.0)
    shade = THROAT + tongue * (TONGUE_BACK + (TONGUE_TIP - TONGUE_BACK) * along - THROAT)
    return shade * (CORNER + (1.0 - CORNER) * across)


def cavity_colour(lips: torch.Tensor) -> torch.Tensor:
    """The cavity's colour at full shade (B, 3) in [0, 1] for lips of colour ``lips`` (B, 3):
    their grey level, and their chroma's size times SATURATION in the hue of MUCOSA."""
    grey = lips.mean(-1, keepdim=True)
    chroma = (lips - grey).norm(dim=-1, keepdim=True) * SATURATION
    hue = torch.tensor(MUCOSA, dtype=lips.dtype, device=lips.device)
    hue = hue - hue.mean()
    return (grey + chroma * hue / hue.norm()).clamp(0.0, 1.0)


def lips_colour(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The outer lips' mean colour (B, 3) in [0, 1], of ``image`` (B, 3, H, W) in [-1, 1]
    with ``points`` (B, 68, 2) in pixels."""
    return (colours_at(image, points[:, _OUTER_LIPS]).mean(-1) + 1) * 0.5


@dataclass(frozen=True)
class CavityPaint:
    """The cavity's paint on the window of an (H, W) frame that holds the opened mouths.

    ``paint`` (N, 2, y1 − y0, x1 − x0) is the coverage in [0, 1] and the shade (the colour is
    the lips' times it: :func:`cavity_shade`) on rows y0:y1 and columns x0:x1 of ``size``; the coverage is
    0 everywhere else (:meth:`full` pads both with 0). ``box`` is None when no mouth opened wider than at rest: nothing to paint.
    Keeping the window, not the frame, is what makes the cavity cheap at a large output: the
    mouth is a few percent of the face crop (a fifth of the generator's time at 420 px went
    to painting zeros).
    """

    paint: torch.Tensor | None
    box: tuple[int, int, int, int] | None
    size: tuple[int, int]

    def full(self, n: int = 1) -> torch.Tensor:
        """The paint on the whole frame (N, 2, H, W) (``n`` frames when there is none)."""
        h, w = self.size
        if self.paint is None or self.box is None:
            return torch.zeros(n, 2, h, w)
        y0, y1, x0, x1 = self.box
        return F.pad(self.paint, (x0, w - x1, y0, h - y1))

    def frames(self, sl: slice) -> "CavityPaint":
        """The paint of frames ``sl`` alone."""
        return CavityPaint(None if self.paint is None else self.paint[sl], self.box, self.size)

    def resized(self, size: tuple[int, int]) -> "CavityPaint":
        """The same paint bilinearly resampled to a frame of ``size`` (as ``F.interpolate``
        with ``align_corners=False`` resamples the whole frame), on the window it reaches."""
        size = (int(size[0]), int(size[1]))
        if self.paint is None or self.box is None or size == self.size:
            return CavityPaint(self.paint, self.box, size)
        y0, y1, x0, x1 = self.box
        rows, (r0, r1) = _resample_matrix(self.size[0], size[0], y0, y1, self.paint)
        cols, (c0, c1) = _resample_matrix(self.size[1], size[1], x0, x1, self.paint)
        paint = torch.einsum("ji,ncil,kl->ncjk", rows, self.paint, cols)
        return CavityPaint(paint, (r0, r1, c0, c1), size)


def _resample_matrix(n_in: int, n_out: int, lo: int, hi: int, like: torch.Tensor
                     ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Bilinear weights (J, hi − lo) from input samples lo:hi of ``n_in`` (zero elsewhere) to
    the output samples j0:j1 of ``n_out`` they reach, and (j0, j1): ``F.interpolate``'s
    half-pixel rule, its source index clamped at 0 and at the last sample."""
    scale = n_in / n_out
    j0 = max(0, math.floor((lo - 1.0 + 0.5) / scale - 0.5) - 1)
    j1 = min(n_out, math.ceil((hi + 0.5) / scale - 0.5) + 2)
    src = ((torch.arange(j0, j1, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    frac = src - i0
    weights = torch.zeros(j1 - j0, hi - lo, dtype=torch.float64)
    for idx, wgt in ((i0, 1.0 - frac), (i1, frac)):
        ok = (idx >= lo) & (idx < hi)
        rows = torch.arange(j1 - j0)[ok]
        weights.index_put_((rows, idx[ok] - lo), wgt[ok], accumulate=True)
    return weights.to(like.dtype).to(like.device), (j0, j1)


def paint_cavity(frames: torch.Tensor, paint: CavityPaint, lips: torch.Tensor) -> torch.Tensor:
    """``frames`` (N, 3, H, W) in [-1, 1] with the cavity painted in (on the paint's window;
    ``paint`` must be at the frames' size, :meth:`CavityPaint.resized`), ``lips`` (N, 3) the
    lips' colour in [0, 1]. In place unless ``frames`` needs a gradient."""
    if paint.paint is None or paint.box is None:
        return frames
    if tuple(frames.shape[-2:]) != paint.size:
        raise ValueError(f"cavity paint for {paint.size}, frames {tuple(frames.shape[-2:])}")
    if frames.requires_grad:
        frames = frames.clone()
    y0, y1, x0, x1 = paint.box
    window = frames[..., y0:y1, x0:x1]
    cover, shade = paint.paint[:, :1], paint.paint[:, 1:]
    colour = cavity_colour(lips)[:, :, None, None] * shade * 2 - 1
    window.copy_(window + cover * (colour - window))
    return frames


def _mouth_box(moved: torch.Tensor, len1: torch.Tensor, o1: torch.Tensor, a1: torch.Tensor,
               n1: torch.Tensor, lips1: torch.Tensor, lips0: torch.Tensor, h: int, w: int
               ) -> tuple[int, int, int, int] | None:
    """Rows y0:y1 and columns x0:x1 holding every pixel that :func:`mouth_interior` changes
    (the moved inner lips of the frames whose mouth opened wider than at rest, grown by the
    soft edges), the whole frame when a point is not finite, None when no mouth opened."""
    if not bool(torch.isfinite(moved).all()) or not bool(torch.isfinite(lips0).all()):
        return 0, h, 0, w
    gap1 = lips1[:, 1] - lips1[:, 0]
    gap0 = (lips0[:, 1] - lips0[:, 0]).clamp_min(0.0)
    # the override needs (gap1 − gap0)·bump > OPEN_MIN·length somewhere (bump ≤ 1); a little
    # slack for rounding only adds frames to the window
    opened = (gap1 - gap0) > (OPEN_MIN - 1e-3) * len1
    if not bool(opened.any()):
        return None
    v_lo = torch.minimum(lips1[:, 0], torch.zeros_like(gap1)) - 2 * _SOFT
    v_hi = torch.maximum(lips1[:, 1], torch.zeros_like(gap1)) + 2 * _SOFT
    corners = torch.stack([o1 + u * len1[:, None] * a1 + v[:, None] * n1
                           for u in (0.0, 1.0) for v in (v_lo, v_hi)], 1)[opened]
    lo = corners.reshape(-1, 2).amin(0) - 1.0
    hi = corners.reshape(-1, 2).amax(0) + 1.0
    x0, y0 = max(0, math.floor(float(lo[0]))), max(0, math.floor(float(lo[1])))
    x1, y1 = min(w, math.ceil(float(hi[0])) + 1), min(h, math.ceil(float(hi[1])) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, y1, x0, x1


def mouth_interior(flow: torch.Tensor, rest: torch.Tensor, moved: torch.Tensor
                   ) -> tuple[torch.Tensor, CavityPaint]:
    """The spline's backward ``flow`` (N, 2, H, W) in grid units with the inside of the moved
    mouth replaced (a new tensor), and the cavity's paint (:class:`CavityPaint`: its coverage
    and depth on the window of the opened mouths).

    ``rest`` and ``moved`` (N, 68, 2) are the target's landmarks at rest and this frame's, in
    pixels of the H×W frame (pixel centres at i + 0.5).
    """
    n, _, h, w = flow.shape
    o1, a1, n1, len1, lips1 = _mouth_frame(moved)
    o0, a0, n0, len0, lips0 = _mouth_frame(rest)
    with torch.no_grad():  # the window is bookkeeping: no gradient flows through it
        box = _mouth_box(*(v.detach() for v in (moved, len1, o1, a1, n1, lips1, lips0)), h, w)
    if box is None:
        return flow.clone(), CavityPaint(None, None, (h, w))
    y0, y1, x0, x1 = box
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=flow.dtype, device=flow.device) + 0.5,
                            torch.arange(x0, x1, dtype=flow.dtype, device=flow.device) + 0.5,
                            indexing="ij")
    bh, bw = y1 - y0, x1 - x0
    pix = torch.stack([xs, ys], -1).reshape(1, bh * bw, 2)
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
    new_flow = ((src - pix) * (2.0 / size)).transpose(1, 2).reshape(n, 2, bh, bw)
    weight = weight.reshape(n, 1, bh, bw)
    out = flow.clone()
    inner = flow[..., y0:y1, x0:x1]
    out[..., y0:y1, x0:x1] = inner + weight * (new_flow - inner)
    depth = ((below_upper - band) / (extra.clamp_min(_EPS))).clamp(0, 1)
    shade = cavity_shade(u, depth, extra)
    return out, CavityPaint(torch.stack([cavity, shade], 1).reshape(n, 2, bh, bw), box, (h, w))
