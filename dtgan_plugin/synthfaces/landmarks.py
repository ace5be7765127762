"""Ground-truth landmarks of rendered faces, exact, from the renderer's own geometry.

:func:`landmarks` gives 11 named points (:data:`LANDMARK_NAMES`); :func:`landmarks68` the
68-point iBUG 300-W layout that real-face landmarkers use, and :func:`clip_landmarks68` the
68 points of a clip named by ``(seed, identity index, clip index)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .dynamics import clip_dynamics
from .features import _mouth_edges
from .geometry import _broadcast, _cos_sin, _Items, _size_hw
from .identity import Identity, identities_for
from .params import _HIGH, _LOW, NUM_PARAMS, _check_int

#: Named points returned by :func:`landmarks` ("left" is the image's left).
LANDMARK_NAMES: tuple[str, ...] = (
    "head_center", "left_eye", "right_eye", "left_brow", "right_brow", "nose_tip",
    "mouth_left", "mouth_right", "mouth_top", "mouth_bottom", "chin",
)


def _items(identity: Identity, params: Tensor) -> tuple[_Items, int, int]:
    """Per-frame geometry of ``N x T`` frames on the CPU, params clamped as :func:`render` does."""
    identity, params = _broadcast(identity, params)
    identity, params = identity.to("cpu"), params.detach().cpu()
    n, t = params.shape[:2]
    p = torch.maximum(torch.minimum(params.float(), _HIGH), _LOW).reshape(n * t, NUM_PARAMS)
    idn = identity[torch.arange(n).repeat_interleave(t)]
    return _Items(idn, p), n, t


def _to_pixels(it: _Items, u: Tensor, v: Tensor, size: int | tuple[int, int], n: int, t: int
               ) -> Tensor:
    """Face coordinates ``(B, K, 1)`` → pixel ``(x, y)`` of ``(N, T, K, 2)`` (pixel centres at
    integers, as the renderer samples them)."""
    h, w = _size_hw(size)
    x, y = it.to_image(u, v)
    col = ((x / (w / h) + 1) / 2 * w - 0.5).reshape(n, t, -1)
    row = ((y + 1) / 2 * h - 0.5).reshape(n, t, -1)
    return torch.stack([col, row], -1)


def landmarks(identity: Identity, params: Tensor, size: int | tuple[int, int] = 64) -> Tensor:
    """Pixel coordinates ``(N, T, K, 2)`` (x, y) of :data:`LANDMARK_NAMES` on rendered frames.

    Exact, from the same geometry as :func:`render`; useful as ground-truth keypoints (e.g.
    for landmark-warping baselines or to check motion). Computed (and returned) on the CPU.
    """
    _size_hw(size)  # a bad size fails before any work
    it, n, t = _items(identity, params)
    flat = lambda x: x.reshape(-1)  # noqa: E731
    es, ey, nd = flat(it.eye_spacing), flat(it.eye_height), flat(it.nod_dv)
    zero = torch.zeros_like(es)
    my = flat(it.mouth_y) + nd
    mc = flat(it.mouth_curve)
    pts_u = [zero, -es, es, -flat(it.brow_x), flat(it.brow_x), zero, -flat(it.mouth_w),
             flat(it.mouth_w), zero, zero, zero]
    pts_v = [zero, ey + nd, ey + nd, flat(it.brow_y) + nd, flat(it.brow_y) + nd,
             flat(it.nose_y) + nd, my + mc, my + mc, my - flat(it.h_top) - 0.014,
             my + flat(it.h_bot) + 0.02, flat(it.head_h)]
    u = torch.stack(pts_u, 1).reshape(n * t, -1, 1)
    v = torch.stack(pts_v, 1).reshape(n * t, -1, 1)
    return _to_pixels(it, u, v, size, n, t)


# --------------------------------------------------------------------------------------------
# 68 points, iBUG 300-W layout
# --------------------------------------------------------------------------------------------

#: Index ranges of the 68-point iBUG 300-W layout ("left" is the image's left).
LANDMARK68_GROUPS: dict[str, range] = {
    "jaw": range(0, 17), "left_brow": range(17, 22), "right_brow": range(22, 27),
    "nose_bridge": range(27, 31), "nose_base": range(31, 36), "left_eye": range(36, 42),
    "right_eye": range(42, 48), "outer_lip": range(48, 60), "inner_lip": range(60, 68),
}

# where along each feature the points sit: fractions of its half-width, in 300-W order
_JAW_STEPS = 17
_EYE_C = (-1.0, -0.5, 0.5, 1.0, 0.5, -0.5)              # outer→upper→inner→lower, left eye
_EYE_S = (0.0, -1.0, -1.0, 0.0, 1.0, 1.0)               # × sqrt(1 - c²): upper lid is -v
_BROW_T = (1.0, 0.5, 0.0, -0.5, -1.0)                   # left brow, outer (+along) → inner
_OUTER_UP = (-2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3)         # 49-53, left → right
_OUTER_LO = (2 / 3, 1 / 3, 0.0, -1 / 3, -2 / 3)         # 55-59, right → left
_INNER_UP = (-0.5, 0.0, 0.5)                            # 61-63
_INNER_LO = (0.5, 0.0, -0.5)                            # 65-67
# lip band half-widths outside the opening, as drawn (above / below the centre line)
_LIP_UP, _LIP_LO = 0.014, 0.020


def _const_row(values: tuple[float, ...], like: Tensor) -> Tensor:
    """``values`` as a ``(1, 1, K)`` row that broadcasts over per-item scalars."""
    return torch.tensor(values, dtype=like.dtype).view(1, 1, -1)


def _jaw(it: _Items) -> tuple[Tensor, Tensor]:
    """17 points on the face outline's lower half, ear level to ear level through the chin,
    in face space (the outline does not nod)."""
    phi = torch.linspace(0, math.pi, _JAW_STEPS, dtype=torch.float64).float().view(1, 1, -1)
    a, b = it.head_w, it.head_h
    s, c = torch.sin(phi), torch.cos(phi)
    # the outline is the ellipse (a, b) in (uu, v) with u = uu (1 - 0.28 jaw (v/b)²)
    # (layers._face_outline); point 0 is on the image's left (u < 0)
    u = -a * c * (1 - 0.28 * it.jaw * s * s)
    return u, b * s


def _brows(it: _Items) -> tuple[Tensor, Tensor]:
    """10 points along the middle of the drawn brow strokes (17-21 left, 22-26 right)."""
    cos, sin = _cos_sin(it.brow_angle)
    along = it.brow_len * _const_row(_BROW_T, it.brow_len)
    rel = along / it.brow_len
    across = -0.028 * (1 - rel * rel)  # the arch: the stroke's centre line bends up
    bu = along * cos + across * sin    # inverse of the rotation in features._draw_eyes_brows
    bv = across * cos - along * sin
    au, v = it.brow_x + bu, it.brow_y + bv
    return torch.cat([-au, au.flip(-1)], -1), torch.cat([v, v.flip(-1)], -1)


def _eyes(it: _Items) -> tuple[Tensor, Tensor]:
    """12 points on the drawn eyelids (the eye white's outline), 36-41 left, 42-47 right."""
    eh = (it.eh0 * it.eye_open).clamp(min=2e-3)  # as features._eye_sdf
    c = _const_row(_EYE_C, eh)
    s = _const_row(_EYE_S, eh) * (1 - c * c).sqrt()
    du, dv = it.ew * c, eh * s
    # the right eye mirrors the left: inner corner first, still clockwise in the image
    right = [3, 2, 1, 0, 5, 4]
    u = torch.cat([-it.eye_spacing + du, it.eye_spacing - du[..., right]], -1)
    v = it.eye_height + torch.cat([dv, dv[..., right]], -1)
    return u, v


def _nose(it: _Items) -> tuple[Tensor, Tensor]:
    """9 points: the bridge from eye level to the bulb's centre (27-30), then the nose's
    base left to right through the nostrils (31-35)."""
    ns = it.nose_size
    ey, ny = it.eye_height, it.nose_y
    f = _const_row((0.0, 1 / 3, 2 / 3, 1.0), ns)
    bridge_u = torch.zeros_like(f * ns)
    bridge_v = ey + (ny - ey) * f
    # 31/35 on the bulb's outline at the nostrils' height, 32/34 the nostrils, 33 below
    wing = 0.042 * math.sqrt(1 - (0.014 / 0.03) ** 2)
    base_u = ns * _const_row((-wing, -0.024, 0.0, 0.024, wing), ns)
    base_v = ny + ns * _const_row((0.014, 0.014, 0.03, 0.014, 0.014), ns)
    return torch.cat([bridge_u, base_u], -1), torch.cat([bridge_v, base_v], -1)


def _mouth(it: _Items) -> tuple[Tensor, Tensor]:
    """20 points: the outer edge of the drawn lips (48-59) and the opening (60-67)."""
    mw = it.mouth_w
    # 48/54: the middle of the drawn lips' corner edge, which is vertical, from _LIP_UP above
    # the centre line to _LIP_LO below it
    corner = mw + (_LIP_UP + _LIP_LO) / 2
    outer_u = torch.cat([-corner, mw * _const_row(_OUTER_UP, mw), corner,
                         mw * _const_row(_OUTER_LO, mw)], -1)
    inner_u = torch.cat([-mw, mw * _const_row(_INNER_UP, mw), mw,
                         mw * _const_row(_INNER_LO, mw)], -1)
    centre, top, bot, _ = _mouth_edges(it, outer_u)
    up, lo = slice(1, 6), slice(7, 12)
    outer_v = centre + (_LIP_LO - _LIP_UP) / 2
    outer_v[..., up] = top[..., up] - _LIP_UP
    outer_v[..., lo] = bot[..., lo] + _LIP_LO
    centre, top, bot, _ = _mouth_edges(it, inner_u)
    inner_v = centre.clone()
    inner_v[..., 1:4] = top[..., 1:4]
    inner_v[..., 5:8] = bot[..., 5:8]
    return torch.cat([outer_u, inner_u], -1), it.mouth_y + torch.cat([outer_v, inner_v], -1)


def landmarks68(identity: Identity, params: Tensor, size: int | tuple[int, int] = 64
                ) -> Tensor:
    """Pixel coordinates ``(N, T, 68, 2)`` (x, y) in the iBUG 300-W 68-point layout.

    Exact, from the same geometry as :func:`render` (pixel centres at integer coordinates,
    as in :func:`landmarks`); groups in :data:`LANDMARK68_GROUPS`. "Left" is the image's left:

    * 0-16 jaw: the face outline's lower half, from ear level on the left through the chin
      (8) to ear level on the right; it moves with the head, not with the nod;
    * 17-21 / 22-26 brows, outer→inner / inner→outer, along the middle of the drawn stroke;
    * 27-30 nose bridge, eye level → tip (the bulb's centre); 31-35 base, left → right;
    * 36-41 / 42-47 eyes on the drawn eyelids, clockwise in the image as in 300-W: the left
      eye from its outer corner (36), the right from its inner corner (42); 37/38 and 43/44
      are the upper lid, 40/41 and 46/47 the lower, so they meet as the eye closes;
    * 48-59 outer lip: the drawn lips' outer edge, left corner (48: the middle of the lips'
      corner edge), upper lip to the right corner (54), lower lip back; 60-67 inner lip: the mouth opening's edge, left corner
      (60), upper (61-63), right corner (64), lower (65-67); 62 and 66 meet when it is shut.

    Computed (and returned) on the CPU.
    """
    _size_hw(size)  # a bad size fails before any work
    it, n, t = _items(identity, params)
    parts = [_jaw(it)]
    feats = [_brows(it), _nose(it), _eyes(it), _mouth(it)]
    # the inner features live in feature space: face space shifted down by the nod
    parts += [(u, v + it.nod_dv) for u, v in feats]
    b = n * t
    u = torch.cat([p[0].expand(b, 1, -1) for p in parts], -1).reshape(b, -1, 1)
    v = torch.cat([p[1].expand(b, 1, -1) for p in parts], -1).reshape(b, -1, 1)
    return _to_pixels(it, u, v, size, n, t)


def clip_landmarks68(seed: int, identity_index: int, clip: int, frames: int,
                     size: int | tuple[int, int] = 64, *, dynamics_seed: int | None = None,
                     target_index: int | None = None, speed_change: float = 0.0,
                     concat: float = 0.0) -> Tensor:
    """The 68 points ``(frames, 68, 2)`` of clip ``clip`` of identity ``identity_index``.

    The clip is the one ``dtgan data synth`` and the evaluation render for the same names:
    the face is ``identities_for(seed, [identity_index])`` and its motion
    ``clip_dynamics(dynamics_seed, [identity_index], [clip], frames, speed_change=...,
    concat=...)``. ``dtgan data synth --seed S`` uses ``dynamics_seed = S`` (the default);
    ``dtgan eval --synth`` uses ``dynamics_seed = seed + 1000`` with its spec's ``speed`` and
    ``concat``. With ``target_index``, the points are those of that identity moving with the
    clip (the cross-identity truth frames). Points are pixels at ``size``, as
    :func:`landmarks68`; frame ``k`` matches frame ``k`` of the rendered clip.
    """
    for name, value, lo in (("seed", seed, 0), ("identity_index", identity_index, 0),
                            ("clip", clip, 0), ("frames", frames, 1)):
        _check_int(name, value, lo)
    dyn = seed if dynamics_seed is None else dynamics_seed
    _check_int("dynamics_seed", dyn, 0)
    face = identity_index if target_index is None else target_index
    _check_int("target_index", face, 0)
    params, _ = clip_dynamics(dyn, [identity_index], [clip], frames,
                              speed_change=speed_change, concat=concat)
    return landmarks68(identities_for(seed, [face]), params, size)[0]
