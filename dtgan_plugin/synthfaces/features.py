"""The moving features (eyes, brows, glasses, nose, mouth), drawn per frame onto the image.

Each feature is evaluated only inside its bounding box (exactly: outside it its masks are
zero), which is what makes the renderer fast enough to feed training on the fly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .geometry import _cos_sin, _Grid, _Items, _rgb
from .sdf import _const, _cov, _hypot, _over, _sd_ellipse

_Box = tuple[int, int, int, int]


def _region(grid: _Grid, items: _Items, crop: bool, u0: Tensor, u1: Tensor, v0: Tensor,
            v1: Tensor) -> _Box | None:
    """Pixel box of a feature-space box on every item (the whole image without ``crop``)."""
    if not crop:
        return (0, grid.h, 0, grid.w)
    # the feature space is the face space shifted down by the nod
    return grid.box(items, u0, u1, v0 + items.nod_dv, v1 + items.nod_dv)


def _eye_sdf(it: _Items, du: Tensor, dv: Tensor) -> Tensor:
    """Signed distance to the eye white (the open eyelids), from the eye centre."""
    eh = (it.eh0 * it.eye_open).clamp(min=2e-3)
    return _sd_ellipse(du, dv, it.ew, eh, thin=True)


def _draw_eyes_brows(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """Eyes (white, iris, pupil, highlight, lid line) and brows, mirrored with ``|u|``."""
    q = it.p
    n, dev = img.shape[0], img.device
    k = it.scale / grid.px  # 1 / (pixel size in face units)
    ey = it.eye_height
    u_max = torch.maximum(it.eye_spacing + it.ew, it.brow_x + it.brow_len) + 0.03
    top = it.brow_y - it.brow_len * 0.35 - it.brow_thickness - 0.03
    box = _region(grid, it, crop, -u_max, u_max, top, ey + it.eh0 * 1.6 + 0.02)
    if box is None:
        return
    i0, i1, j0, j1 = box
    view = img[:, :, i0:i1, j0:j1]
    u, v = grid.face(it, box)
    vf = v.sub_(it.nod_dv)
    au = u.abs_()
    du, dv = au - it.eye_spacing, vf - ey
    d_white = _eye_sdf(it, du, dv)
    m_white = _cov(d_white.clone(), k)
    _over(view, m_white, _const((0.97, 0.97, 0.95), n, dev))
    r_eye = _hypot(du, dv)
    _over(view, _cov(r_eye - it.eh0 * 0.82, k).mul_(m_white), it.eye_colour)
    _over(view, _cov(r_eye.sub_(it.eh0 * 0.38), k).mul_(m_white),
          _const((0.04, 0.04, 0.04), n, dev))
    hl = _hypot(du + it.eh0 * 0.25, dv + it.eh0 * 0.3).sub_(it.eh0 * 0.16)
    _over(view, _cov(hl, k).mul_(m_white), _const((1.0, 1.0, 1.0), n, dev))
    # the lid line: thicker on the upper lid, and as the eye closes
    lid_w = (dv < 0).float().mul_(0.006).add_(0.007 + 0.006 * q["blink"])
    _over(view, _cov(d_white.abs_().sub_(lid_w), k), _const((0.1, 0.1, 0.1), n, dev))
    # brows: arched capsules rotated about their centre (knit lowers the inner ends)
    cos, sin = _cos_sin(it.brow_angle)
    bu, bv = au.sub_(it.brow_x), vf.sub_(it.brow_y)
    along = bu * cos - bv * sin
    across = bu.mul_(sin).add_(bv.mul_(cos))
    rel = along / it.brow_len
    across.add_((1 - rel * rel).clamp_(min=0).mul_(0.028))
    thick = it.brow_thickness * (1 - 0.35 * rel.clamp_(0, 1))
    d_brow = _hypot(along.abs_().sub_(it.brow_len).clamp_(min=0), across).sub_(thick)
    _over(view, _cov(d_brow, k), _rgb(it.idn.hair) * 0.6 + 0.03)


def _draw_glasses(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """Glasses (tinted lenses, frames, bridge, arms), only on the frames of faces with them."""
    n, dev = img.shape[0], img.device
    sel = (it.glasses.reshape(-1) > 0).nonzero().reshape(-1)
    if not len(sel):
        return
    gi = it.subset(sel) if len(sel) < n else it
    gr, gy = gi.glass_r, gi.eye_height
    box = _region(grid, gi, crop, -(gi.head_w + 0.03), gi.head_w + 0.03, gy - gr - 0.03,
                  gy + gr + 0.03)
    if box is None:
        return
    i0, i1, j0, j1 = box
    sub = img[sel, :, i0:i1, j0:j1] if len(sel) < n else img[:, :, i0:i1, j0:j1]
    u, v = grid.face(gi, box)
    gv = v.sub_(gi.nod_dv + gy + 0.005)
    au = u.abs_()
    rg = _hypot(au - gi.eye_spacing, gv)
    kg = gi.scale / grid.px
    _over(sub, _cov(rg - gr, kg).mul_(0.18), _const((0.75, 0.88, 1.0), len(sel), dev))
    frame = (rg - gr).abs_().sub_(0.012)
    bridge = _hypot((au - (gi.eye_spacing - gr)).clamp_(min=0), gv + 0.02) - 0.011
    arm_mid = (gi.eye_spacing + gr + gi.head_w) / 2
    arm_half = (gi.head_w - gi.eye_spacing - gr) / 2
    arm = _hypot(au.sub_(arm_mid).abs_().sub_(arm_half).clamp_(min=0), gv) - 0.01
    d_g = torch.minimum(torch.minimum(frame, bridge), arm)
    _over(sub, _cov(d_g, kg), gi.glasses_colour)
    if len(sel) < n:  # advanced indexing copied the frames: write them back
        img[sel, :, i0:i1, j0:j1] = sub


def _draw_nose(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """A soft shadowed bulb with two nostrils, wrinkle lines above when disgusted."""
    q = it.p
    k = it.scale / grid.px
    ns = it.nose_size
    box = _region(grid, it, crop, torch.full_like(ns, -0.11), torch.full_like(ns, 0.11),
                  it.nose_y - 0.11, it.nose_y + 0.03 * ns + 0.02)
    if box is None:
        return
    i0, i1, j0, j1 = box
    view = img[:, :, i0:i1, j0:j1]
    u, v = grid.face(it, box)
    vf = v.sub_(it.nod_dv + it.nose_y)
    au = u.abs()
    _over(view, _cov(_sd_ellipse(u, vf, 0.042 * ns, 0.03 * ns), k).mul_(0.55),
          it.skin * 0.72)
    d_nostril = _hypot(au - 0.024 * ns, vf - 0.014 * ns).sub_(0.011 * ns)
    _over(view, _cov(d_nostril, k).mul_(0.8), it.skin * 0.4)
    # faint wrinkles are dropped per face (not per batch), so a frame never depends on
    # which other frames share its batch
    wr = q["nose_wrinkle"] * (q["nose_wrinkle"] > 0.01)
    if bool((wr > 0).any()):
        wu, wv = au.sub_(0.05), vf.add_(0.07)
        d_w = _hypot((wu * 0.8 + wv * 0.6).abs_().sub_(0.025).clamp_(min=0),
                     wv * 0.8 - wu * 0.6).sub_(0.007)
        _over(view, _cov(d_w, k).mul_(wr), it.skin * 0.55)


def _mouth_box(it: _Items) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Feature-space box ``(u0, u1, v0, v1)`` holding the mouth and its lips."""
    mw = it.mouth_w
    bend = it.mouth_curve * 1.5
    return (-(mw + 0.03), mw + 0.03, it.mouth_y + bend.clamp(max=0) - it.h_top - 0.03,
            it.mouth_y + bend.clamp(min=0) + it.h_bot + 0.035)


def _mouth_edges(it: _Items, mu: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The mouth's centre line, upper and lower edges at ``u = mu`` (``v`` relative to
    ``mouth_y``) and the opening's envelope: a lens between two curves bent by the smile."""
    s = (mu / it.mouth_w).square_()
    centre = s.clamp(max=1.5).mul_(it.mouth_curve)
    env = s.neg_().add_(1).clamp_(min=0).sqrt_()
    return centre, centre - it.h_top * env, centre + it.h_bot * env, env


def _mouth_sdf(it: _Items, mu: Tensor, mv: Tensor) -> tuple[Tensor, ...]:
    """Signed distance to the mouth opening, with the centre line, edges and envelope."""
    centre, top_edge, bot_edge, env = _mouth_edges(it, mu)
    d_mouth = torch.maximum(mu.abs().sub_(it.mouth_w),
                            torch.maximum(top_edge - mv, mv - bot_edge))
    return d_mouth, centre, top_edge, bot_edge, env


def _draw_mouth(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """The mouth: lips around the opening, the dark inside, tongue and upper teeth."""
    n, dev = img.shape[0], img.device
    k = it.scale / grid.px
    box = _region(grid, it, crop, *_mouth_box(it))
    if box is None:
        return
    i0, i1, j0, j1 = box
    view = img[:, :, i0:i1, j0:j1]
    mu, v = grid.face(it, box)
    mv = v.sub_(it.nod_dv + it.mouth_y)
    d_mouth, centre, top_edge, bot_edge, env = _mouth_sdf(it, mu, mv)
    lip_w = (mv > centre).float().mul_(0.006).add_(0.014)
    _over(view, _cov(d_mouth.abs().sub_(lip_w), k), it.lip_colour)
    m_in = _cov(d_mouth, k)
    _over(view, m_in, _const((0.32, 0.06, 0.08), n, dev))
    tongue = _cov(bot_edge.sub_(env.mul_(0.45 * it.h_bot)).sub_(mv), k)
    _over(view, tongue.mul_(m_in), _const((0.82, 0.38, 0.42), n, dev))
    teeth = _cov(mv.sub_(top_edge).sub_(0.028), k)
    _over(view, teeth.mul_(m_in), _const((0.97, 0.96, 0.9), n, dev))


def _draw_features(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """Draw the moving features (eyes, brows, glasses, nose, mouth) onto ``img`` in place."""
    _draw_eyes_brows(img, it, grid, crop)
    _draw_glasses(img, it, grid, crop)
    _draw_nose(img, it, grid, crop)
    _draw_mouth(img, it, grid, crop)
