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

Measured on the README's real pairs (``dtgan eval``, the same weights with the anchors on and
off): two pairs, motion 0.878 against 0.882, identity margin 0.575 against 0.547, self L1
0.0680 against 0.0656; six pairs, motion 0.858 against 0.860, identity 0.584 against 0.545,
self L1 0.0625 against 0.0637, liveliness 1.02 against 1.10. Tried: anchors from landmark 3
(beside the cheeks) swirled the cheek on carphone's largest turn (frame 86); anchors that hold
still along the jaw (``FOLLOW`` 0) lowered the self pair's L1 more (0.0696); ``FOLLOW`` 0.6
brought the helmet's bend back at frame 86. Earlier, anchors that followed the skull wholly
made the collar's drag worse.
"""

from __future__ import annotations

import torch

__all__ = ["JAW", "GAP", "KEEP", "FOLLOW", "body_points"]

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


def body_points(rest: torch.Tensor, moved: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The body anchors' resting and moved places ``(N, len(JAW), 2)`` for landmarks ``rest``
    and ``moved`` ``(N, 68, 2)`` (pixels; float64)."""
    rest, moved = rest.double(), moved.double()
    jaw = rest[:, JAW]
    out = jaw - rest[:, _NOSE].mean(1, keepdim=True)
    length = out.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    unit = out / length
    gap = GAP * length
    anchor = jaw + gap * unit
    step = moved[:, JAW] - jaw
    towards = (step * unit).sum(-1, keepdim=True)          # > 0: the jaw closes on the anchor
    along = step - towards * unit
    return anchor, anchor + (towards - KEEP * gap).clamp_min(0.0) * unit + FOLLOW * along
