"""Anchors below the jaw that keep the neck, collar and shoulders nearly still.

The ``geowarp`` spline runs through the 68 landmarks (and the head's outline) and is held at the
crop's border. Between the jaw and the crop's bottom edge nothing holds it, so whatever lies
there (a collar, a helmet's ring, the shoulders) moves part of the way with the head: on
carphone → astronaut the helmet's ring bent up towards the chin on large turns and a
doubled edge of it floated above the ring, and an opening jaw dragged the collar down.

:func:`body_points` places a point below each lower-jaw landmark (iBUG 5–11), :data:`GAP` of
its distance from the nose further out, that moves little:
- towards the jaw (the jaw closing on it) only once the jaw has used up :data:`KEEP` of the gap,
  and then with the jaw, so the neck between them is squeezed to half at most and never folds;
- along the jaw's line by :data:`FOLLOW` of the jaw's own motion (the torso turns a little with
  the head);
- away from the jaw (an opening mouth, a raised head): not at all, so the collar stays.

An anchor stops short at a collar (:func:`collar_gaps`, from the target photo, once per target):
the neck between a raised chin and its anchors is stretched, and whatever lies within the gap
is stretched with it. The astronaut's turtleneck begins a few pixels below her chin, inside
the gap, so a raised chin pulled the collar's edge up into a dark smear under it
(carphone's frames 105-119). The anchor now lies on the last skin before the first place along
its line whose colour is far from the skin's beside the jaw: the neck stretches, the collar's
edge stays. It moves there only as the jaw rises (wholly once the jaw has risen :data:`RISE`
of that gap): anchors that close to the jaw all the time bent the lower face as the jaw turned
and dropped (the aligned identity on carphone and its mirror → astronaut: 0.876 with them,
0.884 so, 0.887 with the anchors at :data:`GAP` throughout).

Measured on the README's real pairs (``dtgan eval``, the same weights with the anchors on and
off): two pairs, motion 0.878 against 0.882, identity margin 0.575 against 0.547, self L1
0.0680 against 0.0656; six pairs, motion 0.858 against 0.860, identity 0.584 against 0.545,
self L1 0.0625 against 0.0637, liveliness 1.02 against 1.10. Tried: anchors from landmark 3
(beside the cheeks) swirled the cheek on carphone's largest turn (frame 86); anchors that hold
still along the jaw (``FOLLOW`` 0) lowered the self pair's L1 more (0.0696); ``FOLLOW`` 0.6
brought the helmet's bend back at frame 86. Earlier, anchors that followed the skull wholly
made the collar's drag worse. Later, ``GAP`` 0.5 scored a little better (aligned identity
0.888 against 0.884, self L1 0.0672 against 0.0680) but kinked the helmet's ring up towards
the chin at frame 86 again.
"""

from __future__ import annotations

import torch

from .face_geometry import colours_at

__all__ = ["JAW", "GAP", "KEEP", "FOLLOW", "EDGE", "NEAREST", "RISE", "collar_gaps", "body_points"]

#: the lower jaw's landmarks (iBUG 68: 8 is the chin) each get an anchor below it
JAW = tuple(range(5, 12))
#: an anchor lies this fraction of its jaw point's distance from the nose beyond it
GAP = 0.35
#: an anchor gives way to a jaw closing on it only once the gap is down to this fraction
KEEP = 0.5
#: an anchor moves along the jaw's line by this fraction of its jaw point's motion
FOLLOW = 0.3
#: the nose's landmarks (iBUG 27–35): the centre the anchors lie out from
_NOSE = slice(27, 36)
#: a collar: a colour whose largest channel differs from the skin's by more than EDGE (in
#: [0, 1] units; the chin's own shadow is about 0.2 darker), for two samples running
EDGE = 0.3
#: an anchor lies at least NEAREST of its jaw point's distance from the nose beyond it
NEAREST = 0.1
#: the anchors reach the collar once the jaw has risen this fraction of the collar's gap
RISE = 0.5
#: samples along each anchor's line, from NEAREST to GAP
_STEPS = 16
#: the skin's colour is read this fraction of the distance inside the jaw
_INSIDE = 0.08


def _rays(rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The jaw points ``(N, J, 2)``, the unit vectors out from the nose through them and their
    distances from the nose ``(N, J, 1)``."""
    jaw = rest[:, JAW]
    out = jaw - rest[:, _NOSE].mean(1, keepdim=True)
    length = out.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return jaw, out / length, length


def collar_gaps(image: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Each anchor's distance beyond its jaw point ``(N, len(JAW), 1)`` (pixels, float64) for
    the target ``image`` ``(N, C, H, W)`` in [-1, 1] and its landmarks ``rest`` ``(N, 68, 2)``:
    :data:`GAP` of the jaw point's distance from the nose, or less where a collar begins."""
    rest = rest.double()
    jaw, unit, length = _rays(rest)
    n, j = jaw.shape[:2]
    skin = colours_at(image, (jaw - _INSIDE * length * unit).to(image.dtype))  # (N, C, J)
    steps = torch.linspace(NEAREST, GAP, _STEPS, dtype=rest.dtype, device=rest.device)
    along = jaw[:, :, None] + steps[:, None] * length[:, :, None] * unit[:, :, None]
    seen = colours_at(image, along.reshape(n, j * _STEPS, 2).to(image.dtype))
    seen = seen.reshape(n, -1, j, _STEPS)
    far = ((seen - skin[..., None]).abs().amax(1) * 0.5 > EDGE)           # (N, J, S)
    far = far[..., :-1] & far[..., 1:]                                     # two running
    found = far.any(-1)
    # the last sample before the first far pair (the first sample at least)
    last = (far.to(torch.int64).argmax(-1) - 1).clamp_min(0)
    share = torch.where(found, steps[last], torch.full_like(steps[last], GAP))
    return share[..., None] * length


def body_points(rest: torch.Tensor, moved: torch.Tensor, gaps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The body anchors' resting and moved places ``(N, len(JAW), 2)`` for landmarks ``rest``
    and ``moved`` ``(N, 68, 2)`` (pixels; float64), each ``gaps`` ``(N, len(JAW), 1)`` beyond
    its jaw point (:func:`collar_gaps`; default :data:`GAP` of its distance from the nose)."""
    rest, moved = rest.double(), moved.double()
    jaw, unit, length = _rays(rest)
    step = moved[:, JAW] - jaw
    towards = (step * unit).sum(-1, keepdim=True)          # > 0: the jaw closes on the anchor
    along = step - towards * unit
    gap = GAP * length
    if gaps is not None:
        # the collar's gap only as the jaw rises away from it: an anchor that close to the
        # jaw otherwise bends the lower face as the jaw turns and drops
        near = gaps.double()
        share = (-towards / (RISE * near).clamp_min(1e-9)).clamp(0.0, 1.0)
        gap = gap + (near - gap) * share
    anchor = jaw + gap * unit
    return anchor, anchor + (towards - KEEP * gap).clamp_min(0.0) * unit + FOLLOW * along
