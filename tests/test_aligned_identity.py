"""The real-video protocol's pose-aligned identity margin
(:func:`~dtgan_plugin.evaluation.realvideo_metrics.aligned_identity_margin`), on drawn faces:
both faces are warped onto the target's landmarks first, so motion costs nothing and only a
change of face does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtgan_plugin.errors import UsageError
from dtgan_plugin.evaluation import realvideo_metrics as RM
from dtgan_plugin.evaluation.realvideo import PreparedPair, score_output
from dtgan_plugin.evaluation.realvideo_report import render_real_markdown, summarise_methods
from dtgan_plugin.evaluation.realvideo_warps import (retarget_landmarks, thin_plate_align,
                                                     thin_plate_warp)
from dtgan_plugin.faces.types import FaceTrack

from test_realvideo_eval import face68

SIZE = 128
FRAMES = 6
#: the jaw and the lower lip: dropping them opens the mouth (the inner lips part as they do)
LOWER = [*range(5, 12), *range(55, 60), *range(65, 68)]


def _face_image(pts: np.ndarray, skin: tuple[float, float, float], seed: int) -> torch.Tensor:
    """A drawn face ``(3, SIZE, SIZE)`` in [0, 1] on its 68 landmarks: a textured skin ellipse
    on a graded backdrop, dark dots on the brows, eyes, nose and lips."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32) + 0.5,
                            torch.arange(SIZE, dtype=torch.float32) + 0.5, indexing="ij")
    img = torch.stack([0.3 + 0.3 * ys / SIZE, torch.full_like(ys, 0.35), 0.45 - 0.2 * ys / SIZE])
    c, half = pts.mean(0), (pts.max(0) - pts.min(0)) / 2
    inside = (((xs - c[0]) / (1.05 * half[0])) ** 2
              + ((ys - c[1] + 0.15 * half[1]) / (1.2 * half[1])) ** 2) < 1
    texture = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(SIZE, SIZE),
                            mode="bicubic", align_corners=False)[0]
    img = torch.where(inside, torch.tensor(skin).view(3, 1, 1) + 0.25 * (texture - 0.5), img)
    dark = torch.zeros(SIZE, SIZE)
    for x, y in pts[17:]:
        dark = torch.maximum(dark, torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0))
    return (img * (1 - 0.7 * dark)).clamp(0, 1)


def _with_cavity(frames: torch.Tensor, pts: np.ndarray) -> torch.Tensor:
    """Paint each frame's mouth cavity (dark, inside its inner lips 60-67) as a real opening
    mouth shows, which a stretch of the closed lips does not draw."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    out = frames.clone()
    for t, p in enumerate(pts):
        lips = p[60:68]
        edge = np.roll(lips, -1, 0) - lips
        cross = (edge[:, 0] * (ys[..., None] - lips[:, 1])
                 - edge[:, 1] * (xs[..., None] - lips[:, 0]))
        hole = torch.as_tensor((cross >= 0).all(-1) | (cross <= 0).all(-1))
        out[t, :, hole] = torch.tensor([0.15, 0.05, 0.05]).view(3, 1)
    return out


def _track(base: np.ndarray, shift: float, drop: float, frames: int = FRAMES) -> np.ndarray:
    """``base`` moving over ``frames`` frames: the head shifts by ``shift`` px a frame (right,
    and half as much down) and the mouth opens by ``drop`` px a frame."""
    track = np.repeat(base[None], frames, 0).copy()
    k = np.arange(frames)[:, None]
    track += np.concatenate([shift * k, 0.5 * shift * k], 1)[:, None]
    track[:, LOWER, 1] += drop * k
    return track


@pytest.fixture(scope="module")
def target() -> tuple[torch.Tensor, np.ndarray]:
    pts = face68(64, 62, 40)
    return _face_image(pts, (0.85, 0.65, 0.55), seed=1), pts


@pytest.fixture(scope="module")
def source() -> tuple[torch.Tensor, np.ndarray]:
    """Another face (wider, another skin and texture) that moves its head and opens its mouth,
    each frame drawn by warping its rest picture."""
    rest = face68(64, 66, 38) * [1.12, 1.0] - [64 * 0.12, 0]
    track = _track(rest, shift=2.0, drop=1.2)
    return thin_plate_warp(_face_image(rest, (0.75, 0.6, 0.5), seed=2), rest, track), track


def test_the_target_itself_scores_one(target, source) -> None:
    tgt, tgt_pts = target
    src, src_pts = source
    still = tgt.expand(FRAMES, -1, -1, -1).clone()
    margin = RM.aligned_identity_margin(still, tgt, src, np.repeat(tgt_pts[None], FRAMES, 0),
                                        tgt_pts, src_pts)
    assert margin.shape == (FRAMES,)
    assert float(margin.min()) > 0.999


def test_the_source_itself_scores_minus_one(target, source) -> None:
    tgt, tgt_pts = target
    src, src_pts = source
    margin = RM.aligned_identity_margin(src, tgt, src, src_pts, tgt_pts, src_pts)
    assert float(margin.max()) < -0.999


@pytest.mark.parametrize("shift, drop", [(2.0, 0.0), (0.0, 1.2), (2.0, 1.2)],
                         ids=["head-shift", "mouth-opening", "both"])
def test_a_moving_target_keeps_its_identity_once_aligned(target, source, shift: float,
                                                         drop: float) -> None:
    """The target warped by a known move (its landmarks moved alike): the plain margin pays for
    the motion, the aligned one does not. Without the alignment step this fails (the output
    is compared unaligned: about 0.1 with the head shift)."""
    tgt, tgt_pts = target
    src, src_pts = source
    moved = _track(tgt_pts, shift, drop)
    out = thin_plate_warp(tgt, tgt_pts, moved)
    aligned = RM.aligned_identity_margin(out, tgt, src, moved, tgt_pts, src_pts)
    plain = RM.identity_margin(out, tgt, src)
    assert float(aligned.min()) > 0.85, aligned
    assert RM.mean_finite(aligned) > 0.9
    # 10 px of head travel: the plain margin falls well below; 6 px of mouth opening: below
    gap = 0.4 if shift else 0.1
    assert RM.mean_finite(plain) < RM.mean_finite(aligned) - gap, (plain, aligned)


def test_the_mouth_cavity_is_expression_not_identity(target, source) -> None:
    """Output and source open their mouths onto a dark cavity, the target's is closed. The
    mouth is outside the compared region, so the cavity costs nothing; compared there, it
    would count as the source's likeness."""
    tgt, tgt_pts = target
    src, src_pts = source
    moved = retarget_landmarks(src_pts, tgt_pts)
    assert np.linalg.norm(moved[-1, 62] - moved[-1, 66]) > 6    # an open mouth, 6+ px
    out = _with_cavity(thin_plate_warp(tgt, tgt_pts, moved), moved)
    src_open = _with_cavity(src, src_pts)
    margin = RM.aligned_identity_margin(out, tgt, src_open, moved, tgt_pts, src_pts)
    assert float(margin.min()) > 0.85, margin
    mask = RM.face_mask(tgt_pts, SIZE, SIZE)
    centre = tgt_pts[[62, 66]].mean(0).astype(int)
    assert float(mask[centre[1], centre[0]]) == 0.0


def _sampled_positions(pts: np.ndarray, onto: np.ndarray) -> torch.Tensor:
    """Where :func:`thin_plate_align` samples each frame, ``(T, 2, H, W)`` pixels: it aligns
    two ramps (x and y over the frame), which bilinear sampling reads back exactly."""
    ramp = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE
    frame = torch.stack([ramp.expand(SIZE, -1), ramp[:, None].expand(-1, SIZE),
                         torch.zeros(SIZE, SIZE)])
    return thin_plate_align(frame.expand(len(pts), -1, -1, -1), pts, onto)[:, :2] * SIZE


def _jacobian(pos: torch.Tensor) -> torch.Tensor:
    """The sampling map's Jacobian determinant per pixel, ``(T, H-1, W-1)``; <= 0: a fold."""
    dx, dy = pos[..., :-1, 1:] - pos[..., :-1, :-1], pos[..., 1:, :-1] - pos[..., :-1, :-1]
    return dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]


def test_the_alignment_does_not_fold_on_a_wide_open_mouth(target) -> None:
    """A mouth opened 12 px against the target's closed one (inner lips 1.6 px apart): through
    the inner lips the spline would fold over the mouth; without them it stays a smooth,
    one-to-one map over the whole face."""
    _, tgt_pts = target
    opened = _track(tgt_pts, 2.0, 2.5)
    assert np.linalg.norm(opened[-1, 62] - opened[-1, 66]) > 12
    face = RM.face_mask(tgt_pts, SIZE, SIZE, mouth=True)[:-1, :-1] > 0
    idx = list(RM.ALIGN_POINTS)
    det = _jacobian(_sampled_positions(opened[:, idx], tgt_pts[idx]))[:, face]
    assert float(det.min()) > 0.1, det.amin(1)
    every = _jacobian(_sampled_positions(opened, tgt_pts))[:, face]
    assert float(every.min()) < 0                                  # the inner lips fold it


def test_face_mask_holds_the_features_not_the_backdrop(target) -> None:
    _, pts = target
    mask = RM.face_mask(pts, SIZE, SIZE)
    with_mouth = RM.face_mask(pts, SIZE, SIZE, mouth=True)
    for i in (30, 37, 44):                                       # nose tip, both eyes
        x, y = pts[i].astype(int)
        assert float(mask[y, x]) == 1.0, i
    x, y = pts[[19, 37]].mean(0).astype(int)                     # under a brow
    assert float(mask[y, x]) > 0.5
    assert float(mask[:4].max()) == 0.0 and float(mask[:, :4].max()) == 0.0   # the backdrop
    x, y = pts[8].astype(int)                                    # the chin: eroded away
    assert float(mask[y, x]) == 0.0
    x, y = pts[[51, 57]].mean(0).astype(int)                     # the mouth, only on request
    assert float(mask[y, x]) == 0.0 and float(with_mouth[y, x]) == 1.0
    assert ((mask >= 0) & (mask <= 1)).all() and float((with_mouth - mask).min()) >= 0


def test_lost_frames_give_nan_and_the_others_are_unchanged(target, source) -> None:
    tgt, tgt_pts = target
    src, src_pts = source
    moved = _track(tgt_pts, 2.0, 1.2)
    out = thin_plate_warp(tgt, tgt_pts, moved)
    full = RM.aligned_identity_margin(out, tgt, src, moved, tgt_pts, src_pts)
    out_pts, lost_src = moved.copy(), src_pts.copy()
    out_pts[[1, 3]] = np.nan
    lost_src[4, 10] = np.nan                                     # one point lost is the frame
    margin = RM.aligned_identity_margin(out, tgt, src, out_pts, tgt_pts, lost_src)
    nan = torch.isnan(margin)
    assert nan.tolist() == [False, True, False, True, True, False]
    assert torch.allclose(margin[~nan], full[~nan], atol=1e-5)
    assert RM.mean_finite(margin) == pytest.approx(float(full[[0, 2, 5]].mean()), abs=1e-5)
    none = RM.aligned_identity_margin(out, tgt, src, np.full_like(moved, np.nan), tgt_pts,
                                      src_pts)
    assert torch.isnan(none).all() and math.isnan(RM.mean_finite(none))


def test_shape_mismatches_raise(target, source) -> None:
    tgt, tgt_pts = target
    src, src_pts = source
    out = src.clone()
    with pytest.raises(UsageError, match="aligned_identity_margin"):
        RM.aligned_identity_margin(out[:-1], tgt, src, src_pts[:-1], tgt_pts, src_pts[:-1])
    with pytest.raises(UsageError, match="aligned_identity_margin"):
        RM.aligned_identity_margin(out, tgt[:, :64], src, src_pts, tgt_pts, src_pts)
    with pytest.raises(UsageError, match="landmarks"):
        RM.aligned_identity_margin(out, tgt, src, src_pts[:-1], tgt_pts, src_pts)
    with pytest.raises(UsageError, match="landmarks"):
        RM.aligned_identity_margin(out, tgt, src, src_pts, tgt_pts[:67], src_pts)
    with pytest.raises(UsageError, match="landmarks"):
        RM.aligned_identity_margin(out, tgt, src, src_pts, tgt_pts, src_pts[..., :1])


class ScriptedLandmarker:
    """Reads the given ``(T, 68, 2)`` track back, frame after frame."""

    name = "scripted"
    native_layout = "ibug68"

    def __init__(self, track: np.ndarray) -> None:
        self.track, self.next = track.astype(np.float32), 0

    def reset(self) -> None:
        self.next = 0

    def detect(self, frames: np.ndarray) -> list[list[FaceTrack]]:
        out = []
        for frame in frames:
            pts = self.track[self.next % len(self.track)]
            self.next += 1
            box = np.array([*pts.min(0), *pts.max(0)], np.float32)
            out.append([FaceTrack(pts[None], pts[None], np.ones(1, np.float32), box[None],
                                  frame.shape[:2])])
        return out


def test_score_output_and_the_report_carry_the_aligned_margin(target, source) -> None:
    tgt, tgt_pts = target
    src, src_pts = source
    moved = _track(tgt_pts, 2.0, 1.2)
    out = thin_plate_warp(tgt, tgt_pts, moved)
    cross = PreparedPair("src->tgt", src, tgt, src_pts, tgt_pts, is_self=False)
    res = score_output(cross, out, ScriptedLandmarker(moved))
    scores = res["scores"]
    assert scores["aligned_identity_margin"] > 0.9
    assert scores["aligned_identity_margin"] > scores["identity_margin"] + 0.4
    own = PreparedPair("src->self", src, src[0], src_pts, src_pts[0], is_self=True)
    assert math.isnan(score_output(own, src, ScriptedLandmarker(src_pts))["scores"]
                      ["aligned_identity_margin"])                 # self pair: no identity
    entry = {"per_clip": {k: [v] for k, v in scores.items()}, "signals": [res["signals"]],
             "seconds": 1.0, "frames": FRAMES}
    methods = summarise_methods({"warp": entry})
    assert methods["warp"]["metrics"]["aligned_identity_margin"]["mean"] == \
        pytest.approx(scores["aligned_identity_margin"])
    md = render_real_markdown({"config": {}, "pairs": [], "methods": methods})
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "| identity margin ↑ | aligned identity ↑ |" in header
    assert "- **aligned identity**: " in md
