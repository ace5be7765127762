"""Landmark-aware warps for the real-video baselines: the source's motion carried onto the
target's face through the two faces' 68 landmarks.

* :func:`retarget_landmarks` — the source's landmark displacements from its frame 0, rotated
  and scaled by the similarity between the two faces' frame-0 landmarks, added to the target's.
* :func:`thin_plate_warp` — the target image warped so that its landmarks move to given
  positions (thin-plate spline through the 68 points plus fixed frame-border anchors, which
  keep the background still); smooth, with no triangle seams or fold-overs.
* :func:`thin_plate_align` — the converse, for the metrics: each frame of a clip warped so that
  its own landmarks land on one shape (the target's), which factors pose and expression out.
* :func:`aligned_flow_warp` — dense optical flow of the source (frame t → frame 0), sampled
  where each target pixel's similarity-mapped position falls on the source, its vectors
  rotated and scaled onto the target's face, and applied to the target.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models.geowarp import tps_kernel
from .baselines import farneback_flow, warp_by_flow
from .realvideo_metrics import align_similarity

__all__ = ["retarget_landmarks", "thin_plate_warp", "thin_plate_align", "aligned_flow_warp",
           "border_anchors"]

#: regularisation of the spline (in units of the frame side squared): keeps the system
#: solvable when a landmarker puts two points on one spot (the inner and outer lip corners),
#: at a cost of well under a pixel of interpolation error
_TPS_LAMBDA = 1e-6


def retarget_landmarks(source: np.ndarray, target0: np.ndarray) -> np.ndarray:
    """``(T, 68, 2)`` target landmarks moving like the source's ``(T, 68, 2)`` from frame 0.

    ``target_t = target_0 + A (source_t - source_0)`` with ``A`` the rotation and scale of the
    similarity that maps the source's frame-0 landmarks onto ``target0`` ``(68, 2)``.
    """
    src = np.asarray(source, np.float64)
    tgt = np.asarray(target0, np.float64)
    lin = align_similarity(src[0], tgt)[:, :2]
    return tgt[None] + (src - src[:1]) @ lin.T


def border_anchors(height: int, width: int, per_side: int = 4) -> np.ndarray:
    """``(4 * per_side, 2)`` fixed points around the frame border (corners included)."""
    xs = np.linspace(0, width - 1, per_side + 1)[:-1]
    ys = np.linspace(0, height - 1, per_side + 1)[:-1]
    top = np.stack([xs, np.zeros_like(xs)], 1)
    right = np.stack([np.full_like(ys, width - 1), ys], 1)
    bottom = np.stack([xs[::-1] + (width - 1) / per_side, np.full_like(xs, height - 1)], 1)
    left = np.stack([np.zeros_like(ys), ys[::-1] + (height - 1) / per_side], 1)
    return np.concatenate([top, right, bottom, left])


def _tps_backward_maps(dst: torch.Tensor, src: torch.Tensor, height: int,
                       width: int) -> torch.Tensor:
    """For every output pixel of each frame, where to sample the input: the spline through
    the control points ``dst[t] → src[t]``, evaluated on the ``height``×``width`` grid →
    ``(T, H, W, 2)``. ``dst`` is ``(T, N, 2)`` or ``(1, N, 2)`` (one output shape for all
    frames: its system and grid kernel are built once), ``src`` ``(N, 2)`` or ``(T, N, 2)``."""
    scale = float(max(height, width))
    c, v = dst / scale, src / scale
    if v.dim() == 2:
        v = v.unsqueeze(0)
    tc, n, _ = c.shape
    t = max(tc, v.shape[0])
    v = v.expand(t, -1, -1)
    k = tps_kernel(torch.cdist(c, c).square())
    p = torch.cat([torch.ones(tc, n, 1, dtype=c.dtype), c], 2)
    a = torch.zeros(tc, n + 3, n + 3, dtype=c.dtype)
    a[:, :n, :n] = k + _TPS_LAMBDA * torch.eye(n, dtype=c.dtype)
    a[:, :n, n:] = p
    a[:, n:, :n] = p.transpose(1, 2)
    rhs = torch.cat([v, torch.zeros(t, 3, 2, dtype=c.dtype)], 1)
    coef = torch.linalg.solve(a, rhs).float()  # the regulariser keeps duplicated points solvable
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    grid = torch.stack([xs, ys], -1).reshape(1, -1, 2) / scale
    u = tps_kernel(torch.cdist(grid.expand(tc, -1, -1), c.float()).square())
    if tc == 1 < t:  # one kernel for every frame: a single (pixels x points) product
        bent = torch.einsum("gn,tnk->tgk", u[0], coef[:, :n])
    else:
        bent = u @ coef[:, :n]
    mapped = bent + coef[:, n:n + 1] + grid @ coef[:, n + 1:]
    return (mapped * scale).reshape(t, height, width, 2)


def thin_plate_warp(image: torch.Tensor, points: np.ndarray, moved: np.ndarray,
                    anchors: int = 4) -> torch.Tensor:
    """Warp ``image`` ``(3, H, W)`` so that its ``points`` ``(N, 2)`` land on ``moved``
    ``(T, N, 2)`` in each output frame; the frame border stays put. Returns ``(T, 3, H, W)``."""
    _, h, w = image.shape
    fixed = border_anchors(h, w, anchors)
    # landmarks put pixel centres at i + 0.5 (faces.types); the spline runs on whole-number
    # pixel centres, as the sampling grid below does
    src = torch.as_tensor(np.concatenate([np.asarray(points, np.float64) - 0.5, fixed]))
    moved = np.asarray(moved, np.float64) - 0.5
    dst = torch.as_tensor(np.concatenate(
        [moved, np.broadcast_to(fixed, (len(moved), *fixed.shape))], 1))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    here = torch.stack([xs, ys], -1)
    # a few frames at a time: the kernel matrix is frames x pixels x points
    step = max(1, (1 << 22) // max(1, h * w * src.shape[0]))
    outs = [warp_by_flow(image, _tps_backward_maps(dst[a:a + step], src, h, w) - here)
            for a in range(0, len(moved), step)]
    return torch.cat(outs)


def thin_plate_align(images: torch.Tensor, points: np.ndarray, onto: np.ndarray,
                     anchors: int = 4) -> torch.Tensor:
    """The converse of :func:`thin_plate_warp`: many frames onto one shape. Warp each frame
    ``images[t]`` ``(T, 3, H, W)`` so that its ``points[t]`` ``(T, N, 2)`` land on ``onto``
    ``(N, 2)``; the frame border stays put. Returns ``(T, 3, H, W)``."""
    h, w = images.shape[-2:]
    fixed = border_anchors(h, w, anchors)
    pts = np.asarray(points, np.float64) - 0.5  # pixel centres, as in thin_plate_warp
    src = torch.as_tensor(np.concatenate(
        [pts, np.broadcast_to(fixed, (len(pts), *fixed.shape))], 1))
    dst = torch.as_tensor(np.concatenate([np.asarray(onto, np.float64) - 0.5, fixed]))[None]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    here = torch.stack([xs, ys], -1)
    step = max(1, (1 << 22) // (h * w))  # the maps are frames x pixels x 2
    outs = [warp_by_flow(images[a:a + step], _tps_backward_maps(dst, src[a:a + step], h, w)
                         - here) for a in range(0, len(pts), step)]
    return torch.cat(outs) if outs else images.float().clone()


def aligned_flow_warp(source: torch.Tensor, target: torch.Tensor, source_pts0: np.ndarray,
                      target_pts0: np.ndarray) -> torch.Tensor:
    """The source's flow carried onto the target's face: ``(T, 3, H, W)`` source,
    ``(3, H', W')`` target, frame-0 landmarks ``(68, 2)`` of each → ``(T, 3, H', W')``.

    With ``S`` the similarity from the source's face to the target's and ``A`` its linear
    part: ``out_t(y) = target(y + A f_t(S⁻¹ y))``, where ``f_t`` is the source's flow from
    frame t to frame 0 (zero outside the source frame).
    """
    t, _, hs, ws = source.shape
    _, h, w = target.shape
    flow = farneback_flow(source, 0)  # (T, hs, ws, 2)
    sim = align_similarity(np.asarray(source_pts0, np.float64),
                           np.asarray(target_pts0, np.float64))
    lin, shift = sim[:, :2], sim[:, 2]
    inv = np.linalg.inv(lin)
    # pixel centres at i + 0.5, as the landmarks put them (faces.types)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64) + 0.5,
                         np.arange(w, dtype=np.float64) + 0.5, indexing="ij")
    back = (np.stack([xs, ys], -1) - shift) @ inv.T  # target pixel → source position
    gx = back[..., 0] / ws * 2 - 1
    gy = back[..., 1] / hs * 2 - 1
    grid = torch.as_tensor(np.stack([gx, gy], -1), dtype=torch.float32)
    grid = grid.unsqueeze(0).expand(t, -1, -1, -1)
    sampled = F.grid_sample(flow.permute(0, 3, 1, 2), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False).permute(0, 2, 3, 1)
    carried = sampled @ torch.as_tensor(lin.T, dtype=torch.float32)
    return warp_by_flow(target, carried)
