"""The head's outline (the hair around the face), moved with the head.

The 68 landmarks stop at the brows and the jaw, so a spline through them alone holds the hair
still while the face under it turns and travels: a large head move slides the face under the
photo's hair and stretches the hair beside the cheek. :func:`head_outline` places
:data:`OUTLINE_POINTS` points on an ellipse around the skull and its hair, from one ear over
the top of the head to the other, in the face's own frame (so it scales and tilts with the
face). :func:`moved_outline` moves them by the head's similarity (:mod:`.head_pose`): as
anchors of the ``geowarp`` spline they carry the hair with the head, and ``dtgan.pasteback``'s
mask covers their hull, so the moved hair is pasted rather than the photo's still one.

The crop's border stays still (the photo around the crop must meet it), so an outline point
near the border would squeeze the background between the two into a smear: its motion fades
out over the last :data:`BORDER_FADE` of the frame's side (where it rests or where the head
would take it), towards where the face's own spline takes it. Measured by eye on carphone →
astronaut (whose hair nearly fills the crop's top): with a fade over 0.15 of the side the top
of the hair still smeared into the border on carphone's large turns; over 0.3 it does not.
Counted in folded pixels of the spline (:func:`moved_outline`), 0.2 and 0.45 folded more.

On in the shipped model (``generator_cfg.head_outline``). Alone, the outline bends the
background between the moved hair and the still border (carphone's car window curved round the
head); with the target's person matte the person moves as a layer over a still background
instead (:mod:`.head_layer`), which is how ``Renderer`` uses it when MediaPipe is installed.
"""

from __future__ import annotations

import math

import torch

from .face_geometry import face_frame
from .head_pose import apply_similarity, head_similarity
from .layers import smoothstep

__all__ = ["OUTLINE_POINTS", "BORDER_FADE", "head_outline", "moved_outline"]

#: points on the outline, from the left ear over the top of the head to the right ear
OUTLINE_POINTS = 13
#: the ellipse's half-width and half-height in interocular distances, centred between the
#: eyes: beyond the hair of most heads (the astronaut's reaches 1.6 and 1.9), inside the crop
#: (whose side is about 4.8 of them)
HALF_WIDTH, HALF_HEIGHT = 1.75, 2.0
#: the outline's ends lie this far below the eye line (interocular distances): by the ears,
#: above the jaw, so the neck and collar stay with the spline's own anchors
ENDS_BELOW_EYES = 0.5
#: an outline point's motion fades out when it rests, or would be moved, within this fraction
#: of the frame's side from the frame's border
BORDER_FADE = 0.3


def head_outline(points: torch.Tensor) -> torch.Tensor:
    """The resting outline ``(N, K, 2)`` of faces with landmarks ``(N, 68, 2)``, in their
    pixels (float64)."""
    centre, lin = face_frame(points.double())
    to_pixels = torch.linalg.inv(lin)                   # canonical units → pixel offsets
    low = math.asin(min(ENDS_BELOW_EYES / HALF_HEIGHT, 0.99))
    angle = torch.linspace(math.pi + low, -low, OUTLINE_POINTS, dtype=torch.float64,
                           device=points.device)
    # y points down: the angle's sine is how far above the eye line
    canon = torch.stack([HALF_WIDTH * torch.cos(angle), -HALF_HEIGHT * torch.sin(angle)], -1)
    return canon[None] @ to_pixels.transpose(1, 2) + centre[:, None]


def moved_outline(outline: torch.Tensor, rest: torch.Tensor, moved: torch.Tensor,
                  frame: tuple[float, float, float], base: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Where the head's similarity from ``rest`` to ``moved`` landmarks ``(N, 68, 2)`` takes
    their resting ``outline`` ``(N, K, 2)`` (:func:`head_outline`): ``(N, K, 2)`` (float64).
    ``frame`` is ``(x0, y0, side)``: the square whose border stays still (the crop), in the
    points' pixels.

    A point whose resting place or moved place lies within :data:`BORDER_FADE` of the border
    fades from the head's motion to ``base`` ``(N, K, 2)``: where the spline through the
    landmarks alone takes it (``GeoWarpGenerator.landmark_spline_at``; the resting outline
    when None). Measured on the six real pairs (carphone's largest turns push the astronaut's
    head towards the crop's side): fading by the resting place alone, to the resting place,
    held points still while the face moved past them or moved them up against the border,
    and the spline folded there (a bubble in the cheek, a clump of hair left behind; up to
    698 folded pixels in a 128 px frame). Fading by the nearer of the two places, to where
    the face's own spline puts the point, folds no more than the landmarks' spline alone
    (136 pixels at most, where the face itself meets the border, against 158 for it).
    """
    outline = outline.double()
    target = apply_similarity(outline, *head_similarity(rest, moved))
    base = outline if base is None else base.double()
    x0, y0, side = (float(v) for v in frame)
    lo = outline.new_tensor([x0, y0])

    def to_border(p: torch.Tensor) -> torch.Tensor:
        return torch.minimum(p - lo, lo + side - p).amin(-1) / side

    weight = smoothstep(torch.minimum(to_border(outline), to_border(target)) / BORDER_FADE)
    return base + weight[..., None] * (target - base)
