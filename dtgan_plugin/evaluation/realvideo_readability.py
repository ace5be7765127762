"""How well the landmarker reads each motion signal on one target face: its *reading gain*.

The real-video protocol scores motion by correlating the output's landmark signals with the
source's, both read by the landmarker. On some faces the landmarker barely follows a signal
(MediaPipe on scikit-image's astronaut reads brows moved ±0.06 interocular distance with a
gain of 0.12, a lowering even as a raise, against 0.7 on carphone's own frame), so every
method scores near 0 on it there however well it moves the brows.

This measures it per target: the target crop is warped (thin-plate spline, as the
``landmark-warp`` baseline does) so that its landmarks make known moves, the landmarker reads
the warped frames back as one clip, and per signal the least-squares slope of the read signal
on the intended one (:func:`~.realvideo_metrics.landmark_signals` of the moved points) is the
gain: 1 = read at full size, 0 = not read. Probes stay within what real faces do: brows up
and down, lids closing and opening, mouth corners out and in, and the rigid head shifts and
roll, which move every point alike and should read ≈ 1 (a check of the probe itself). Mouth
opening is not probed: a real opening shows a dark cavity that stretching the lips does not
draw, so the landmarker's reading of a stretch says little about its reading of a real one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import MediaError
from . import realvideo_metrics as RM
from .realvideo import track_landmarks
from .realvideo_warps import thin_plate_warp

__all__ = ["PROBES", "UNREADABLE_GAIN", "Probe", "probe_points", "make_probe", "read_probe",
           "reading_gain", "describe_probes"]

#: the intended changes per signal, in the signal's units (interocular distance, face size or
#: radians), each sweep ascending so that a tracking landmarker sees small steps; 0 is in
#: every sweep, the fit has an intercept, so a reading offset does not count
PROBES: dict[str, tuple[float, ...]] = {
    "brow_raise": (-0.06, -0.03, 0.0, 0.03, 0.06),
    "eye_open": (-0.06, -0.04, -0.02, 0.0, 0.015, 0.03),  # lids close further than they open
    "mouth_width": (-0.1, -0.05, 0.0, 0.05, 0.1),
    "head_x": (-0.04, -0.02, 0.0, 0.02, 0.04),
    "head_y": (-0.04, -0.02, 0.0, 0.02, 0.04),
    "head_roll": (-0.1, -0.05, 0.0, 0.05, 0.1),
}
#: below this gain a signal is read too faintly for its correlation to mean much: on the
#: carphone pairs every method's brow correlation was about 0 where the brows read at 0.12
#: (the astronaut) and about 0.97 where they read at 0.7 (carphone's own frame)
UNREADABLE_GAIN = 0.4
#: lids close at most this share of their rest gap (crossed lids would read as opening)
_MAX_CLOSING = 0.8

_UNITS = {"brow_raise": "iod", "eye_open": "iod", "mouth_width": "iod", "head_x": "face",
          "head_y": "face", "head_roll": "rad"}

_UPPER_LIDS = [37, 38, 43, 44]
_LOWER_LIDS = [41, 40, 47, 46]  # facing the upper lid points above, in the same order


def _face_axes(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's own axes: unit vector along the eye line (image left → right), unit vector
    up the face, and the interocular distance; the probes follow a rolled face."""
    line = pts[42:48].mean(0) - pts[36:42].mean(0)
    iod = max(float(np.linalg.norm(line)), 1e-9)
    along = line / iod
    return along, np.array([along[1], -along[0]]), iod  # image y points down


def _brows(pts: np.ndarray, amount: float) -> np.ndarray:
    """Both brows moved up the face by ``amount`` interocular distances."""
    _, up, iod = _face_axes(pts)
    out = pts.copy()
    out[17:27] += amount * iod * up
    return out


def _lids(pts: np.ndarray, amount: float) -> np.ndarray:
    """Each lid gap widened by ``amount`` interocular distances (negative: closing), the upper
    and lower lids moving half each, the eye corners still."""
    _, up, iod = _face_axes(pts)
    gaps = np.linalg.norm(pts[_UPPER_LIDS] - pts[_LOWER_LIDS], axis=1)
    step = max(amount * iod, -_MAX_CLOSING * float(gaps.min()))
    out = pts.copy()
    out[_UPPER_LIDS] += step / 2 * up
    out[_LOWER_LIDS] -= step / 2 * up
    return out


def _mouth(pts: np.ndarray, amount: float) -> np.ndarray:
    """The mouth (outer and inner lips) stretched along the eye line about its centre, so the
    corners part by ``amount`` interocular distances."""
    along, _, iod = _face_axes(pts)
    mouth = pts[48:68]
    centre = mouth.mean(0)
    width = max(float(np.linalg.norm(pts[54] - pts[48])), 1e-9)
    offset = (mouth - centre) @ along
    out = pts.copy()
    out[48:68] += (amount * iod / width) * offset[:, None] * along
    return out


def _face_size(pts: np.ndarray) -> float:
    return max(float((pts.max(0) - pts.min(0)).max()), 1e-9)


def _shift_x(pts: np.ndarray, amount: float) -> np.ndarray:
    """Every point moved right by ``amount`` face sizes."""
    return pts + [amount * _face_size(pts), 0.0]


def _shift_y(pts: np.ndarray, amount: float) -> np.ndarray:
    """Every point moved down by ``amount`` face sizes."""
    return pts + [0.0, amount * _face_size(pts)]


def _roll(pts: np.ndarray, amount: float) -> np.ndarray:
    """Every point turned by ``amount`` radians (clockwise on screen) about the centre of the
    eyes and nose, the centre the head signals follow."""
    c, s = math.cos(amount), math.sin(amount)
    centre = pts[27:48].mean(0)
    return (pts - centre) @ np.array([[c, s], [-s, c]]) + centre


_MOVES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "brow_raise": _brows, "eye_open": _lids, "mouth_width": _mouth,
    "head_x": _shift_x, "head_y": _shift_y, "head_roll": _roll}


def probe_points(pts: np.ndarray, probes: Mapping[str, Sequence[float]] = PROBES
                 ) -> tuple[np.ndarray, dict[str, slice]]:
    """The probe's moved landmarks ``(N, 68, 2)`` (frame 0 at rest, then each signal's sweep)
    and each signal's frames, for ``(68, 2)`` rest points."""
    rest = np.asarray(pts, np.float64).reshape(68, 2)
    frames, spans = [rest], {}
    for name, amounts in probes.items():
        if name not in _MOVES:
            raise ValueError(f"no reading-gain probe for '{name}'; probed: {', '.join(_MOVES)}")
        spans[name] = slice(len(frames), len(frames) + len(amounts))
        frames += [_MOVES[name](rest, float(a)) for a in amounts]
    return np.stack(frames), spans


def _fit(intended: np.ndarray, read: np.ndarray) -> tuple[float, float]:
    """Least-squares slope (with intercept) of ``read`` on ``intended``, and their Pearson
    correlation (0 when the reading stands still, as the protocol scores a still output);
    NaN when nothing was read."""
    if not np.isfinite(read).all():
        return math.nan, math.nan
    x, y = intended - intended.mean(), read - read.mean()
    sxx = float((x * x).sum())
    if sxx < 1e-12:
        return math.nan, math.nan
    return float((x * y).sum()) / sxx, RM._pearson(intended, read)


@dataclass(frozen=True)
class Probe:
    """The warped target ``frames`` ``(N, 3, H, W)``, the ``intended`` signals ``(N,)`` of
    their landmarks, and each probed signal's frames (``spans``)."""

    frames: torch.Tensor
    intended: dict[str, np.ndarray]
    spans: dict[str, slice]


def make_probe(target: torch.Tensor, target_pts: np.ndarray,
               probes: Mapping[str, Sequence[float]] = PROBES) -> Probe:
    """The target crop ``(3, H, W)`` warped so that its ``(68, 2)`` landmarks make each
    probe's moves (thin-plate spline, as the ``landmark-warp`` baseline)."""
    rest = np.asarray(target_pts, np.float64).reshape(68, 2)
    moved, spans = probe_points(rest, probes)
    return Probe(thin_plate_warp(target, rest, moved), RM.landmark_signals(moved), spans)


def read_probe(probe: Probe, landmarker: Any) -> dict[str, dict[str, Any]]:
    """Per probed signal: ``gain`` (slope of read on intended), ``corr`` and the intended
    ``amplitudes``, the probe's frames read as one clip; NaN where no face was found."""
    n = int(probe.frames.shape[0])
    try:
        read_pts, _ = track_landmarks(landmarker, probe.frames, 0, "the reading-gain probe")
        read = RM.landmark_signals(read_pts)
    except MediaError:  # no face on any probe frame: nothing read
        read = {k: np.full(n, np.nan) for k in RM.SIGNALS}
    out: dict[str, dict[str, Any]] = {}
    for name, span in probe.spans.items():
        gain, corr = _fit(probe.intended[name][span], read[name][span])
        out[name] = {"gain": gain, "corr": corr,
                     "amplitudes": [round(float(v), 4) for v in probe.intended[name][span]]}
    return out


def reading_gain(target: torch.Tensor, target_pts: np.ndarray, landmarker: Any,
                 probes: Mapping[str, Sequence[float]] = PROBES) -> dict[str, dict[str, Any]]:
    """Per probed signal, how the landmarker reads it on this target crop ``(3, H, W)`` with
    landmarks ``(68, 2)``: ``gain``, ``corr`` and ``amplitudes`` (:func:`read_probe`)."""
    return read_probe(make_probe(target, target_pts, probes), landmarker)


def describe_probes(probes: Mapping[str, Sequence[float]] = PROBES) -> str:
    """The probed ranges in words, for a report: ``brow_raise -0.06 to +0.06 iod, ...``."""
    return ", ".join(f"{name} {min(a):+g} to {max(a):+g} {_UNITS.get(name, '')}".rstrip()
                     for name, a in probes.items())
