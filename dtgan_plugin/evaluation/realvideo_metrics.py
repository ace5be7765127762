"""Metrics of the real-video protocol: landmark motion signals, their agreement, identity
retention and liveliness. Pure numpy/torch on small arrays; no ground truth needed.

Landmarks are the 68-point iBUG 300-W layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67), ``(T, 68, 2)`` pixels. Every signal is relative to frame 0, so a still face reads
0 on every frame, and scale-free:

* ``mouth_open``: inner-lip gap 62↔66 / interocular distance (eye centre to eye centre);
* ``mouth_width``: mouth corners 48↔54 / interocular;
* ``eye_open``: mean of the lid gaps 37↔41, 38↔40, 43↔47, 44↔46 / interocular;
* ``brow_raise``: mean distance of each brow's centre to its eye's centre / interocular;
* ``head_x``, ``head_y``: displacement of the centre of the eyes and nose (points 27-47, which
  an opening mouth or jaw does not move) / face size (the larger side of frame 0's 68-point
  box);
* ``head_roll``: angle of the line from the right eye's centre to the left eye's, radians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..faces.paste import convex_hull, hull_distance

__all__ = ["SIGNALS", "MOVES_STD", "landmark_signals", "signal_agreement", "summarise_agreement",
           "identity_margin", "aligned_identity_margin", "face_mask", "shape_margin",
           "liveliness", "align_similarity"]

SIGNALS: tuple[str, ...] = ("mouth_open", "mouth_width", "eye_open", "brow_raise", "head_x",
                            "head_y", "head_roll")
#: a source signal "moves" when its std over the clip is above this (interocular units,
#: face-size units or radians): about 1 % of an eye-to-eye distance or 0.6 degrees of roll,
#: above the frame-to-frame noise of a landmarker on a still face
MOVES_STD = 0.01
_EPS = 1e-9


def _check_track(pts: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(pts, np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (68, 2) or arr.shape[0] < 1:
        raise UsageError(f"{what}: landmarks must be (T, 68, 2), got {tuple(arr.shape)}")
    return arr


def _dist(pts: np.ndarray, i: int, j: int) -> np.ndarray:
    return np.linalg.norm(pts[:, i] - pts[:, j], axis=-1)


def landmark_signals(pts68: np.ndarray) -> dict[str, np.ndarray]:
    """The seven per-frame signals ``(T,)`` of a ``(T, 68, 2)`` track, each minus frame 0."""
    p = _check_track(pts68, "landmark_signals")
    right_eye, left_eye = p[:, 36:42].mean(1), p[:, 42:48].mean(1)
    iod = np.maximum(np.linalg.norm(left_eye - right_eye, axis=-1), _EPS)
    lids = (_dist(p, 37, 41) + _dist(p, 38, 40) + _dist(p, 43, 47) + _dist(p, 44, 46)) / 4
    brows = (np.linalg.norm(p[:, 17:22].mean(1) - right_eye, axis=-1)
             + np.linalg.norm(p[:, 22:27].mean(1) - left_eye, axis=-1)) / 2
    extent = p[0].max(0) - p[0].min(0)
    face_size = max(float(extent.max()), _EPS)
    centre = p[:, 27:48].mean(1)
    eye_line = left_eye - right_eye
    roll = np.unwrap(np.arctan2(eye_line[:, 1], eye_line[:, 0]))
    raw = {"mouth_open": _dist(p, 62, 66) / iod, "mouth_width": _dist(p, 48, 54) / iod,
           "eye_open": lids / iod, "brow_raise": brows / iod,
           "head_x": centre[:, 0] / face_size, "head_y": centre[:, 1] / face_size,
           "head_roll": roll}
    return {k: v - v[0] for k, v in raw.items()}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (a still output is not rewarded)."""
    a, b = a - a.mean(), b - b.mean()
    sa, sb = float(np.sqrt((a * a).mean())), float(np.sqrt((b * b).mean()))
    if sa < 1e-6 or sb < 1e-6:
        return 0.0
    return float(np.clip((a * b).mean() / (sa * sb), -1.0, 1.0))


def signal_agreement(source: Mapping[str, np.ndarray], output: Mapping[str, np.ndarray],
                     moves_std: float = MOVES_STD) -> dict[str, dict[str, Any]]:
    """Per signal: Pearson correlation, amplitude ratio (std out / std source), and whether the
    source moves (std above ``moves_std``). NaN output signals (no face) give NaN."""
    out: dict[str, dict[str, Any]] = {}
    for name in SIGNALS:
        s = np.asarray(source[name], np.float64)
        o = np.asarray(output[name], np.float64)
        if s.shape != o.shape:
            raise UsageError(f"signal {name}: source has {s.shape[0]} frames, output "
                             f"{o.shape[0]}")
        s_std = float(s.std())
        if not np.isfinite(o).all():
            out[name] = {"corr": math.nan, "amplitude": math.nan, "source_std": s_std,
                         "moves": s_std > moves_std}
            continue
        amp = float(o.std()) / s_std if s_std > _EPS else math.nan
        out[name] = {"corr": _pearson(s, o), "amplitude": amp, "source_std": s_std,
                     "moves": s_std > moves_std}
    return out


def summarise_agreement(per_signal: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Means of correlation and amplitude ratio over the signals that move in the source, and
    their mean |log2 amplitude| (0 = the source's size of motion, 1 = half or double)."""
    moving = [k for k in SIGNALS if per_signal[k]["moves"]]
    corr = [per_signal[k]["corr"] for k in moving]
    amp = [per_signal[k]["amplitude"] for k in moving]
    finite = [a for a in amp if math.isfinite(a)]
    logs = [abs(math.log2(max(a, 1e-3))) for a in finite]
    return {"moving": moving,
            "corr_mean": float(np.mean(corr)) if moving else math.nan,
            "amplitude_mean": float(np.mean(finite)) if finite else math.nan,
            "amplitude_log2_error": float(np.mean(logs)) if logs else math.nan}


def align_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` similarity (scale, rotation, translation) mapping points ``src`` onto
    ``dst`` in the least-squares sense (Umeyama), for ``(N, 2)`` point sets."""
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    var = float((a0 ** 2).sum()) / len(a)
    if var < _EPS:
        raise UsageError("cannot align landmarks: all points coincide")
    cov = b0.T @ a0 / len(a)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var
    lin = scale * rot
    return np.concatenate([lin, (mb - lin @ ma)[:, None]], 1)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


#: the points an expression does not move much: jaw outline and nose (identity's face shape)
_SHAPE_POINTS = [*range(0, 17), *range(27, 36)]


def shape_margin(output: np.ndarray, target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per frame, face-shape identity margin from landmarks: ``(d_s - d_t) / (d_s + d_t)``.

    ``d_t``: the output's jaw-and-nose shape vs the target's (frame 0), ``d_s``: vs the source's
    in the same frame, each after a similarity alignment and over the interocular distance.
    +1: the target's face shape, -1: the source's. ``(T, 68, 2)``, ``(68, 2)``, ``(T, 68, 2)``.
    """
    out = _check_track(output, "shape_margin")
    src = _check_track(source, "shape_margin")
    tgt = np.asarray(target, np.float64).reshape(68, 2)
    idx = _SHAPE_POINTS
    margins = np.empty(len(out))
    for t in range(len(out)):
        o = out[t, idx]
        iod = max(float(np.linalg.norm(out[t, 36:42].mean(0) - out[t, 42:48].mean(0))), _EPS)
        d_t = np.linalg.norm(_apply(align_similarity(tgt[idx], o), tgt[idx]) - o, axis=1).mean()
        d_s = np.linalg.norm(_apply(align_similarity(src[t, idx], o), src[t, idx]) - o,
                             axis=1).mean()
        d_t, d_s = d_t / iod, d_s / iod
        margins[t] = (d_s - d_t) / (d_s + d_t) if d_s + d_t > 1e-6 else 0.0
    return margins


def _thumb(x: torch.Tensor, size: int) -> torch.Tensor:
    """Blurred low-resolution thumbnails ``(N, 3, size, size)``: colours and layout of the face
    (skin, hair, eyes' and mouth's darkness), not its fine pose."""
    return F.interpolate(x.float(), size=(size, size), mode="area")


def identity_margin(output: torch.Tensor, target: torch.Tensor, source: torch.Tensor,
                    thumb: int = 16) -> torch.Tensor:
    """Per frame, appearance identity margin ``(d_s - d_t) / (d_s + d_t)``, ``(T,)``.

    On ``thumb``×``thumb`` area-averaged face crops (small enough that a few pixels of pose
    change little, large enough to keep the face's colours and layout): ``d_t`` is the mean
    absolute difference of the output frame to the target crop, ``d_s`` to the source's crop of
    the same frame. +1: looks like the target, -1: like the source, 0: halfway. Shapes: output,
    source ``(T, 3, H, W)``; target ``(3, H, W)``.
    """
    if output.shape != source.shape or target.shape != output.shape[1:]:
        raise UsageError(f"identity_margin: output {tuple(output.shape)}, source "
                         f"{tuple(source.shape)} and target {tuple(target.shape)} disagree")
    o, s = _thumb(output, thumb), _thumb(source, thumb)
    t = _thumb(target.unsqueeze(0), thumb)
    d_t = (o - t).abs().flatten(1).mean(1)
    d_s = (o - s).abs().flatten(1).mean(1)
    total = d_t + d_s
    return torch.where(total > 1e-6, (d_s - d_t) / total.clamp(min=1e-6), torch.zeros_like(total))


#: the landmarks that carry a frame onto the target's shape for :func:`aligned_identity_margin`:
#: all but the inner lips (60-67). An open mouth against a closed one puts the inner lips' two
#: rows almost on one line in the target but far apart in the frame (and 60, 64 on the outer
#: corners 48, 54): a near-singular pull that folds the spline (carphone's source frames onto
#: the astronaut: 4 to 10 of 96 frames fold with all 68 points, at most 1 without the inner
#: lips, at a blink). The outer lip line still brings the lips onto the target's; what lies
#: between them is the expression, not the identity, and the mask leaves it out
ALIGN_POINTS: tuple[int, ...] = tuple(range(60))
#: the face mask's erosion, in face sizes (the larger side of the target's 68-point box): keeps
#: the jaw line's backdrop and the hairline out of the comparison; the mouth's hull is dilated
#: as much, to take in what the spline spills around the lips
_MASK_MARGIN = 0.04
_MOUTH_POINTS = tuple(range(48, 60))


def face_mask(pts: np.ndarray, height: int, width: int, margin: float = _MASK_MARGIN,
              mouth: bool = False) -> torch.Tensor:
    """``(H, W)`` soft mask (anti-aliased over one pixel) of a face's skin and features: the
    convex hull of its ``(68, 2)`` landmarks eroded by ``margin`` face sizes; with ``mouth``
    False, less the outer lips' hull dilated by as much (the mouth: expression, not identity).
    """
    p = np.asarray(pts, np.float64).reshape(68, 2)
    size = float((p.max(0) - p.min(0)).max())
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres, as the landmarks put them
    # hull_distance is < 0 inside: its negative is the depth inside the hull
    mask = np.clip(-hull_distance(convex_hull(p), xs, ys) - margin * size + 0.5, 0.0, 1.0)
    if not mouth:
        lips = np.clip(-hull_distance(convex_hull(p[list(_MOUTH_POINTS)]), xs, ys)
                       + margin * size + 0.5, 0, 1)
        mask *= 1.0 - lips
    return torch.as_tensor(mask, dtype=torch.float32)


def aligned_identity_margin(output: torch.Tensor, target: torch.Tensor, source: torch.Tensor,
                            out_pts: np.ndarray, target_pts: np.ndarray,
                            source_pts: np.ndarray, thumb: int = 16) -> torch.Tensor:
    """Per frame, the identity margin with pose and expression factored out, ``(T,)``.

    Each output frame is warped (thin-plate spline through :data:`ALIGN_POINTS` and the frame
    border) from its own landmarks ``out_pts[t]`` onto the target's ``target_pts``, and so is
    the source's frame from ``source_pts[t]``; then ``(d_s - d_t) / (d_s + d_t)`` with ``d_t``
    the aligned output's mean absolute difference to the target and ``d_s`` to the aligned
    source, on ``thumb``×``thumb`` area-averaged thumbnails inside the target's face less its
    mouth (:func:`face_mask`). A head that moves, a mouth that opens, costs nothing here; a
    face that turns into the source's does. NaN where either track has no face (NaN points).
    Shapes: output, source ``(T, 3, H, W)``; target ``(3, H, W)``; ``out_pts``,
    ``source_pts`` ``(T, 68, 2)``; ``target_pts`` ``(68, 2)``, in crop pixels.
    """
    from .realvideo_warps import thin_plate_align  # it imports this module

    if output.shape != source.shape or target.shape != output.shape[1:] or output.dim() != 4:
        raise UsageError(f"aligned_identity_margin: output {tuple(output.shape)}, source "
                         f"{tuple(source.shape)} and target {tuple(target.shape)} disagree")
    t, _, h, w = output.shape
    o_pts = np.asarray(out_pts, np.float64)
    s_pts = np.asarray(source_pts, np.float64)
    t_pts = np.asarray(target_pts, np.float64)
    if o_pts.shape != (t, 68, 2) or s_pts.shape != (t, 68, 2) or t_pts.shape != (68, 2):
        raise UsageError(f"aligned_identity_margin: landmarks {o_pts.shape}, {s_pts.shape} and "
                         f"{t_pts.shape} do not fit {t} frames of (68, 2)")
    if not np.isfinite(t_pts).all():
        raise UsageError("aligned_identity_margin: the target's landmarks are not finite")
    margins = torch.full((t,), math.nan)
    ok = np.isfinite(o_pts).all((1, 2)) & np.isfinite(s_pts).all((1, 2))
    if not ok.any():
        return margins
    keep = torch.as_tensor(np.flatnonzero(ok))
    idx = list(ALIGN_POINTS)
    o = thin_plate_align(output[keep], o_pts[ok][:, idx], t_pts[idx])
    s = thin_plate_align(source[keep], s_pts[ok][:, idx], t_pts[idx])
    mask = face_mask(t_pts, h, w)
    area = float(_thumb(mask[None, None], thumb).mean())
    if area < _EPS:
        raise UsageError("aligned_identity_margin: the target's face mask is empty")
    o_t, s_t = _thumb(o * mask, thumb), _thumb(s * mask, thumb)
    tgt_t = _thumb((target.float() * mask)[None], thumb)
    # mean over the face's cells of |a - b|: the masked thumbnails' difference over the mask's
    d_t = (o_t - tgt_t).abs().flatten(1).mean(1) / area
    d_s = (o_t - s_t).abs().flatten(1).mean(1) / area
    total = d_t + d_s
    margins[keep] = torch.where(total > 1e-6, (d_s - d_t) / total.clamp(min=1e-6),
                                torch.zeros_like(total))
    return margins


def liveliness(output: torch.Tensor, source: torch.Tensor) -> float:
    """The output's mean frame-to-frame change over the source's (1 = as lively, 0 = still);
    ``(T, 3, H, W)`` each. NaN when the source itself is still or has one frame."""
    if output.shape[0] < 2 or source.shape[0] < 2:
        return math.nan
    do = float((output[1:].float() - output[:-1].float()).abs().mean())
    ds = float((source[1:].float() - source[:-1].float()).abs().mean())
    return do / ds if ds > 1e-9 else math.nan


def mean_finite(values: Sequence[float] | np.ndarray | torch.Tensor) -> float:
    """Mean of the finite values (NaN when there are none)."""
    arr = np.asarray(torch.as_tensor(values, dtype=torch.float64).reshape(-1))
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
