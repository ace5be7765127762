"""Renderer geometry: per-item pose and feature sizes, the pixel grid, face coordinates.

Coordinates: image ``y`` runs from -1 (top) to 1 (bottom), ``x`` from ``-W/H`` to ``W/H``.
Face coordinates ``(u, v)`` are the image coordinates around the head centre with the head
motion (shift, roll, scale) undone, in the same units. Inner features live in *feature
space*: face space shifted down by the nod (``v + nod_dv``).
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch
from torch import Tensor

from ..errors import OptionError
from .identity import _COLOUR_FIELDS, Identity
from .params import NUM_PARAMS, PARAM_NAMES

# where the head sits at rest and how big it is, in image units: a tight, aligned face crop
_HEAD_Y = 0.0
_FACE_SCALE = 1.22


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = size
    else:
        h = w = size
    for name, v in (("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 4 <= v <= 8192:
            raise OptionError(f"render size {name} must be an integer in 4..8192, got {v!r}",
                              hint="pass size=64 or size=(H, W)")
    return int(h), int(w)


def _cos_sin(angle: Tensor) -> tuple[Tensor, Tensor]:
    """cos and sin of per-item angles, via float64 so that the float32 results do not depend
    on whether the batch was long enough for the vectorised code path."""
    a = angle.double() if angle.device.type == "cpu" else angle  # (MPS has no float64)
    return torch.cos(a).to(angle.dtype), torch.sin(a).to(angle.dtype)


def _col(t: Tensor) -> Tensor:
    return t.reshape(-1, 1, 1)


def _rgb(t: Tensor) -> Tensor:
    return t.reshape(-1, 3, 1, 1)


class _Items:
    """Per-item (face x frame) scalars, shaped ``(B, 1, 1)`` to broadcast over a pixel grid."""

    def __init__(self, idn: Identity, p: Tensor) -> None:
        self.idn = idn
        for f in fields(idn):
            value = getattr(idn, f.name)
            setattr(self, f.name, _rgb(value) if f.name in _COLOUR_FIELDS else _col(value))
        self.p = {name: _col(p[:, i]) for i, name in enumerate(PARAM_NAMES)}
        q = self.p
        self.scale = _FACE_SCALE * (1 + q["scale"])
        self.cx = q["shift_x"]
        self.cy = _HEAD_Y + q["shift_y"]
        self.cos, self.sin = _cos_sin(q["roll"])
        # nodding moves the inner features (not the head outline) down, like a pitch
        self.nod_dv = 0.07 * q["nod"]
        # derived feature geometry, shared by drawing, bounding boxes and landmarks
        smile, open_ = q["smile"], q["mouth_open"]
        self.ew = 0.105 * self.eye_size
        self.eh0 = 0.64 * self.ew
        squint = q["eye_squint"]
        self.eye_open = ((1 - q["blink"]) * (1 - 0.5 * squint.clamp(min=0))
                         * (1 + 0.4 * (-squint).clamp(min=0))
                         * (1 + 0.12 * q["brows_up"].clamp(min=0)))
        self.brow_len = 1.05 * self.ew
        self.brow_x = self.eye_spacing - 0.025 * q["brows_knit"].clamp(min=0)
        self.brow_y = self.eye_height - self.eh0 - 0.065 - 0.06 * q["brows_up"]
        self.brow_angle = 0.32 * q["brows_knit"]
        self.mouth_y = self.mouth_height - 0.02 * q["nose_wrinkle"]
        self.mouth_w = (self.mouth_width * (1 + 0.18 * smile.clamp(min=0)
                                            + 0.3 * q["lip_stretch"] - 0.12 * open_)
                        ).clamp(min=0.3 * self.mouth_width)
        self.mouth_curve = -0.075 * smile
        self.h_top = 0.05 * open_ + 0.03 * q["nose_wrinkle"]
        self.h_bot = 0.15 * open_
        self.nose_y = self.nose_height - 0.02 * q["nose_wrinkle"]
        self.glass_r = 1.38 * self.ew

    def to_image(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Face coordinates → image coordinates (inverse of :meth:`_Grid.face`)."""
        s = self.scale
        return (self.cx + s * (u * self.cos - v * self.sin),
                self.cy + s * (u * self.sin + v * self.cos))

    def subset(self, index: Tensor) -> "_Items":
        """The items at ``index`` (a 1-D long tensor)."""
        p = torch.cat([self.p[name] for name in PARAM_NAMES], 1).reshape(-1, NUM_PARAMS)
        return _Items(self.idn[index], p[index])


class _Grid:
    """Pixel-centre coordinates of an ``H x W`` image, and crops of it."""

    def __init__(self, h: int, w: int, device: torch.device) -> None:
        self.h, self.w, self.aspect = h, w, w / h
        self.xs = ((torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1) * (
            w / h)
        self.ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
        self.px = 2.0 / h  # one pixel in image units

    def pixels(self, x0: float, x1: float, y0: float, y1: float
               ) -> tuple[int, int, int, int] | None:
        """Pixel bounds ``(i0, i1, j0, j1)`` of an image-space box, with a 2-pixel margin."""
        # pixel j's centre is at ((j + .5) / w * 2 - 1) * aspect; the margin covers the AA ramp
        j0 = max(math.floor((x0 / self.aspect + 1) / 2 * self.w - 0.5) - 2, 0)
        j1 = min(math.ceil((x1 / self.aspect + 1) / 2 * self.w - 0.5) + 3, self.w)
        i0 = max(math.floor((y0 + 1) / 2 * self.h - 0.5) - 2, 0)
        i1 = min(math.ceil((y1 + 1) / 2 * self.h - 0.5) + 3, self.h)
        return (i0, i1, j0, j1) if i0 < i1 and j0 < j1 else None

    def box(self, it: _Items, u0: Tensor, u1: Tensor, v0: Tensor, v1: Tensor
            ) -> tuple[int, int, int, int] | None:
        """Pixel bounds covering the face-space box ``[u0,u1] x [v0,v1]`` on every item."""
        shape = torch.broadcast_shapes(u0.shape, u1.shape, v0.shape, v1.shape)
        u0, u1, v0, v1 = (t.expand(shape) for t in (u0, u1, v0, v1))
        x, y = it.to_image(torch.stack([u0, u1, u0, u1]), torch.stack([v0, v0, v1, v1]))
        return self.pixels(float(x.min()), float(x.max()), float(y.min()), float(y.max()))

    def face(self, it: _Items, box: tuple[int, int, int, int]) -> tuple[Tensor, Tensor]:
        """Face coordinates ``(u, v)`` of each pixel in ``box``, ``(B, h, w)`` each."""
        i0, i1, j0, j1 = box
        px = self.xs[j0:j1].view(1, 1, -1) - it.cx
        py = self.ys[i0:i1].view(1, -1, 1) - it.cy
        inv = 1 / it.scale
        u = (px * it.cos + py * it.sin).mul_(inv)
        v = (py * it.cos - px * it.sin).mul_(inv)
        return u, v


def _broadcast(identity: Identity, params: Tensor) -> tuple[Identity, Tensor]:
    if not isinstance(identity, Identity):
        raise OptionError(f"identity must be an Identity, got {type(identity).__name__}",
                          hint="make one with sample_identities or identities_for")
    if not isinstance(params, Tensor) or params.dim() != 3 or params.shape[2] != NUM_PARAMS:
        shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise OptionError(f"params must be a tensor of shape (N, T, {NUM_PARAMS}), got {shape}",
                          hint="see PARAM_NAMES; sample_dynamics returns such a tensor")
    n_id, n_p = len(identity), params.shape[0]
    if n_id != n_p:
        if n_id == 1:
            identity = identity[torch.zeros(n_p, dtype=torch.long)]
        elif n_p == 1:
            params = params.expand(n_id, -1, -1)
        else:
            raise OptionError(f"{n_id} identities but params for {n_p} clips",
                              hint="pass as many of each, or one of either to broadcast")
    return identity, params
