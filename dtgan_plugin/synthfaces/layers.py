"""Identity-only layers: the rigid head (hair, ears, face, neck, hat), background, shoulders.

These depend on the identity alone, so :func:`~dtgan_plugin.synthfaces.render` draws them once
per identity and only warps the head layer to each frame's pose.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .geometry import _FACE_SCALE, _Grid, _col, _rgb
from .identity import Identity
from .sdf import _const, _cov, _hypot, _over, _rgba, _sd_ellipse

_SHOULDER_Y = 0.86
# the per-identity head layer covers this face-space box (every identity's hair, hat, neck)
_CANON_U = 0.8
_CANON_V0, _CANON_V1 = -1.14, 1.3
_SUPERSAMPLE = 2


class _Canvas:
    """The head layer being painted: a premultiplied RGBA face-space image of ``n`` faces."""

    def __init__(self, n: int, h_out: int, dev: torch.device) -> None:
        self.px = px = 2.0 / h_out / _FACE_SCALE / _SUPERSAMPLE
        self.wc = math.ceil(2 * _CANON_U / px)
        self.hc = math.ceil((_CANON_V1 - _CANON_V0) / px)
        self.u0, self.v0 = -_CANON_U, _CANON_V0
        self.n, self.dev = n, dev
        self.u_all = (self.u0 + (torch.arange(self.wc, device=dev, dtype=torch.float32) + 0.5)
                      * px)
        self.v_all = (self.v0 + (torch.arange(self.hc, device=dev, dtype=torch.float32) + 0.5)
                      * px)
        self.k = 1.0 / (px * _SUPERSAMPLE)  # the AA ramp spans one output pixel
        self.layer = torch.zeros(n, 4, self.hc, self.wc, device=dev)
        self.one = torch.ones(1, 1, 1, 1, device=dev)

    def part(self, u_hi: Tensor | float, v_lo: Tensor | float, v_hi: Tensor | float
             ) -> tuple[Tensor, Tensor, Tensor]:
        """The layer, u and v inside the box |u| <= u_hi, v_lo <= v <= v_hi (all faces)."""
        px, u0, v0, n = self.px, self.u0, self.v0, self.n
        u_hi = float(u_hi.max()) if isinstance(u_hi, Tensor) else u_hi
        v_lo = float(v_lo.min()) if isinstance(v_lo, Tensor) else v_lo
        v_hi = float(v_hi.max()) if isinstance(v_hi, Tensor) else v_hi
        c0 = max(0, math.floor((-u_hi - u0) / px) - 3)
        c1 = min(self.wc, math.ceil((u_hi - u0) / px) + 3)
        r0 = max(0, math.floor((v_lo - v0) / px) - 3)
        r1 = min(self.hc, math.ceil((v_hi - v0) / px) + 3)
        uu = self.u_all[c0:c1].view(1, 1, -1).expand(n, r1 - r0, c1 - c0)
        vv = self.v_all[r0:r1].view(1, -1, 1).expand(n, r1 - r0, c1 - c0)
        return self.layer[:, :, r0:r1, c0:c1], uu, vv

    def paint(self, view: Tensor, mask: Tensor, colour: Tensor) -> None:
        """Premultiplied "over": colour with coverage ``mask``, alpha towards 1."""
        m = mask.unsqueeze(1)
        view[:, :3].lerp_(colour.expand_as(view[:, :3]), m)
        view[:, 3:].lerp_(self.one.expand_as(view[:, 3:]), m)


def _paint_back(cv: _Canvas, idn: Identity) -> None:
    """Back hair (an ellipse over the top, straight sides cut at the hair length), neck, ears."""
    a, b = _col(idn.head_w), _col(idn.head_h)
    vol = _col(idn.hair_volume)
    hair, skin = _rgb(idn.hair), _rgb(idn.skin)
    ey = _col(idn.eye_height)
    k = cv.k
    hair_w = a + 0.05 + 0.07 * vol
    hair_h = b * 1.03 + 0.05 * vol
    v_cut = b * (-0.3 + 1.55 * _col(idn.hair_length))
    view, u, v = cv.part(hair_w, -hair_h, v_cut + 0.07)
    d = _sd_ellipse(u, v.clamp(max=0), hair_w, hair_h)
    uh = u / hair_w
    d = torch.maximum(d, uh.mul_(uh).mul_(-0.06).add_(v).sub_(v_cut))
    cv.paint(view, _cov(d, k), hair * 0.85)
    # neck, down past the collar
    view, u, v = cv.part(0.36 * a, 0.2, _CANON_V1)
    d = torch.maximum(u.abs() - 0.36 * a, torch.maximum(0.2 - v, v - (_CANON_V1 - 0.05)))
    cv.paint(view, _cov(d, k), skin * 0.8)
    # ears (mirrored with |u|)
    view, u, v = cv.part(a * 0.97 + 0.07, ey, ey + 0.2)
    d = _sd_ellipse(u.abs() - a * 0.97, v - (ey + 0.1), torch.full_like(a, 0.065),
                    torch.full_like(a, 0.1))
    cv.paint(view, _cov(d, k), skin * 0.92)


def _face_outline(u: Tensor, v: Tensor, a: Tensor, b: Tensor, jaw: Tensor) -> Tensor:
    """``u`` scaled so that the face outline is the ellipse ``(a, b)``: the lower half
    narrows into the jaw (``u`` is not modified)."""
    lower = (v / b).clamp_(0, 1)
    return u / lower.mul_(lower).mul_(-0.28 * jaw).add_(1)


def _paint_face(cv: _Canvas, idn: Identity) -> None:
    """The face (shaded towards the rim), cheek blush and the hair cap above the hairline."""
    a, b = _col(idn.head_w), _col(idn.head_h)
    vol = _col(idn.hair_volume)
    hair, skin = _rgb(idn.hair), _rgb(idn.skin)
    ey = _col(idn.eye_height)
    k, n = cv.k, cv.n
    view, u, v = cv.part(a, -b, b)
    uu = _face_outline(u, v, a, b, _col(idn.jaw))
    rim = (_hypot(uu / a, v / b) - 0.55).clamp_(0, 0.45).mul_(1 / 0.45)
    shade = rim.mul_(rim).mul_(-0.16).add_(1)
    cv.paint(view, _cov(_sd_ellipse(uu, v, a, b), k), skin * shade.unsqueeze(1))
    # cheek blush: soft blobs below the eyes (premultiplied, so scaled by the face's alpha)
    view, u, v = cv.part(_col(idn.eye_spacing) + 0.11, ey + 0.11, ey + 0.29)
    r = _hypot(u.abs() - (_col(idn.eye_spacing) + 0.02), v - (ey + 0.2))
    soft = r.mul_(-1 / 0.085).add_(1).clamp_(0, 1)
    _over(view[:, :3], soft.mul_(soft).mul_(0.25 * _col(idn.blush)),
          _const((0.93, 0.42, 0.42), n, cv.dev) * view[:, 3:])
    # hair cap: inside a slightly larger ellipse and above a (wavy, tilted) hairline
    tilt = _col(idn.hair_part)
    cap_w, cap_h = a + 0.025 + 0.05 * vol, b + 0.03 + 0.05 * vol
    line_lo = -b * (0.92 - 0.62 * _col(idn.fringe))
    view, u, v = cv.part(cap_w, -cap_h, line_lo + 0.1 * tilt.abs() * cap_w + 0.03)
    hairline = (torch.sin(u * 30 + 3 * tilt).mul_(0.025 * _col(idn.hair_wave))
                .add_(u * (0.1 * tilt)).add_(line_lo))
    d = _sd_ellipse(u, v, cap_w, cap_h)
    cv.paint(view, _cov(torch.maximum(d, v - hairline), k), hair)


def _paint_accessories(cv: _Canvas, idn: Identity) -> None:
    """Hat and earrings, on the faces that wear them."""
    a, b = _col(idn.head_w), _col(idn.head_h)
    ey = _col(idn.eye_height)
    k = cv.k
    hat = _col(idn.hat)
    if bool((hat > 0).any()):
        view, u, v = cv.part(a * 1.32, -(b * 1.42 + 0.1), -b * 0.72 + 0.05)
        au = u.abs()
        crown = torch.maximum(au - a * 0.9, torch.maximum(-b * 1.5 - v, v + b * 0.72))
        top = _sd_ellipse(u, v + b * 1.42, a * 0.9, torch.full_like(a, 0.1))
        crown = torch.maximum(torch.minimum(crown, top), v + b * 0.72)
        brim = _sd_ellipse(u, v + b * 0.72, a * 1.32, torch.full_like(a, 0.05))
        hat_colour = _rgb(idn.hat_colour)
        cv.paint(view, _cov(torch.minimum(crown, brim), k).mul_(hat), hat_colour)
        band = torch.maximum(crown, (v + b * 0.86).abs_().sub_(0.045))
        cv.paint(view, _cov(band, k).mul_(hat), hat_colour * 0.45)
    rings = _col(idn.earrings)
    if bool((rings > 0).any()):
        view, u, v = cv.part(a * 0.98 + 0.03, ey + 0.2, ey + 0.26)
        d = _hypot(u.abs() - a * 0.98, v - (ey + 0.23)).sub_(0.024)
        cv.paint(view, _cov(d, k).mul_(rings), _const((0.95, 0.80, 0.30), len(idn), cv.dev))


def _head_layer(idn: Identity, h_out: int) -> tuple[Tensor, tuple[float, float, float, float]]:
    """Everything rigid on the head, premultiplied RGBA ``(N, 4, hc, wc)`` in face space.

    Hair, ears, face, neck, blush, hat and earrings depend on the identity only, so they are
    drawn once per identity (at twice the output resolution) and warped to each frame's pose.
    Each part is evaluated only inside its bounding box. Returns the layer and its face-space
    extent ``(u0, u1, v0, v1)`` (outer pixel edges).
    """
    cv = _Canvas(len(idn), h_out, idn.device)
    _paint_back(cv, idn)
    _paint_face(cv, idn)
    _paint_accessories(cv, idn)
    return cv.layer, (cv.u0, cv.u0 + cv.wc * cv.px, cv.v0, cv.v0 + cv.hc * cv.px)


_SHOULDER_TOP = _SHOULDER_Y - 0.04


def _static_layers(idn: Identity, grid: _Grid) -> tuple[Tensor, Tensor, int]:
    """Per-identity background ``(N,3,H,W)`` and shoulders (premultiplied RGBA of the rows
    from the returned index down); neither moves with the head."""
    x = grid.xs.view(1, 1, -1)
    y = grid.ys.view(1, -1, 1)
    ang = _col(idn.bg_angle)
    t = (0.5 + 0.4 * (x * torch.cos(ang) + y * torch.sin(ang))).clamp_(0, 1)
    c1, c2 = _rgb(idn.bg_colour), _rgb(idn.bg_colour2)
    bg = c1 + (c2 - c1) * t.unsqueeze(1)
    f = _col(idn.bg_freq) * math.pi
    stripes = torch.sin(f * (x * torch.sin(ang) - y * torch.cos(ang)))
    dots = torch.sin(f * 1.5 * x) * torch.sin(f * 1.5 * y)
    pattern = torch.where(_col(idn.bg_pattern) == 1, stripes,
                          torch.where(_col(idn.bg_pattern) == 2, dots, torch.zeros_like(dots)))
    bg = bg.mul_(1 + _col(idn.bg_amp).unsqueeze(1) * pattern.unsqueeze(1)).clamp_(0, 1)
    # shoulders: a wide ellipse at the bottom, with a V collar showing the neck
    r0 = max(0, math.floor((_SHOULDER_TOP + 1) / 2 * grid.h - 0.5) - 2)
    ys = y[:, r0:]
    n = len(idn)
    k = 1 / grid.px
    sx = 1.9 * _col(idn.head_w)
    d = _sd_ellipse(x.expand(n, grid.h - r0, grid.w), ys - (_SHOULDER_Y + 0.42), sx,
                    torch.full_like(sx, 0.46))
    layer = torch.zeros(n, 4, grid.h - r0, grid.w, device=bg.device)
    _over(layer, _cov(d.clone(), k), _rgba(_rgb(idn.shirt)))
    collar = torch.maximum(x.abs() * 1.3 - (ys - _SHOULDER_Y + 0.02), d)
    _over(layer[:, :3], _cov(collar, k), _rgb(idn.skin) * 0.78 * layer[:, 3:])
    return bg, layer, r0
