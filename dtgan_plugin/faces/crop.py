"""Square face boxes from 68 landmarks, smoothed in time, and cropping frames to them.

A box is ``(cx, cy, side)`` in continuous pixel coordinates (x in ``[0, W]``). Its centre is
the middle of the eyes-to-mouth line and its side grows with the face's extent, so a
``scale`` of 1.9 holds the whole head with a margin (what FOMM's and LivePortrait's crops hold);
``offset_y`` moves the centre by that fraction of the side (negative = up, towards the hair,
since the 68 points stop at the brows).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SCALE = 1.9
DEFAULT_OFFSET_Y = -0.08
#: smoothing window radius in frames (the lookahead): at 25 fps, 0.32 s of latency
DEFAULT_RADIUS = 8


def face_box(pts68: np.ndarray, scale: float = DEFAULT_SCALE,
             offset_y: float = DEFAULT_OFFSET_Y) -> np.ndarray:
    """``(..., 3)`` boxes ``cx, cy, side`` from ``(..., 68, 2)`` landmarks."""
    pts = np.asarray(pts68, np.float64)
    eyes = pts[..., 36:48, :].mean(-2)
    mouth = pts[..., 48:68, :].mean(-2)
    centre = (eyes + mouth) / 2
    # the face's extent measured from the centre, so a turned head does not shrink the box
    # as much as a tight bounding box would; eye-to-mouth keeps it sane for profile views
    reach = np.abs(pts - centre[..., None, :]).max(-2).max(-1)
    em = np.linalg.norm(mouth - eyes, axis=-1)
    side = scale * np.maximum(2 * reach, 2.6 * em)
    centre = centre + np.stack([np.zeros_like(side), offset_y * side], -1)
    return np.concatenate([centre, side[..., None]], -1).astype(np.float64)


def clamp_box(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Shift boxes inside the frame along each axis where they fit (else they stay and the
    crop pads with the edge colour)."""
    out = np.array(box, np.float64, copy=True)
    half = out[..., 2] / 2
    for axis, limit in ((0, width), (1, height)):
        c = out[..., axis]
        fits = out[..., 2] <= limit
        out[..., axis] = np.where(fits, np.clip(c, half, limit - half), c)
    return out


class BoxSmoother:
    """Centred Gaussian smoothing of a box stream with a bounded lookahead of ``radius`` frames.

    Zero lag (it follows the head's travel), and the ends are padded by repeating the first
    and last box, so a still head stays exactly still. Holds at most ``2 * radius + 1`` boxes.
    """

    def __init__(self, radius: int = DEFAULT_RADIUS, sigma: float | None = None) -> None:
        self.radius = int(radius)
        sigma = float(sigma) if sigma is not None else max(self.radius / 2.0, 1e-6)
        k = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
        w = np.exp(-0.5 * (k / sigma) ** 2)
        self._w = w / w.sum()
        self._buf: deque[np.ndarray] = deque()
        self._started = False

    def push(self, boxes: np.ndarray) -> np.ndarray:
        """Feed ``(n, 3)`` raw boxes; get the ``(m, 3)`` smoothed boxes now determined."""
        out = []
        for box in np.asarray(boxes, np.float64).reshape(-1, 3):
            if not self._started:
                self._buf.extend([box] * self.radius)
                self._started = True
            self._buf.append(box)
            if len(self._buf) == len(self._w):
                out.append(np.tensordot(self._w, np.stack(self._buf), 1))
                self._buf.popleft()
        return np.stack(out) if out else np.zeros((0, 3))

    def flush(self) -> np.ndarray:
        """The remaining smoothed boxes (the end padded with the last box)."""
        if not self._buf:
            return np.zeros((0, 3))
        pending = len(self._buf) - self.radius
        return self.push(np.stack([self._buf[-1]] * self.radius))[:pending] if pending > 0 \
            else np.zeros((0, 3))


def crop_frames(frames: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Cut ``(T, 3, size, size)`` crops from ``(T, 3, H, W)`` frames at ``(T, 3)`` boxes.

    Bilinear, sub-pixel (smooth boxes give smooth crops); outside the frame the edge colour
    repeats. Frames much larger than the crop are low-passed first against aliasing.
    """
    t, _, h, w = frames.shape
    boxes_t = torch.as_tensor(np.asarray(boxes, np.float64), dtype=torch.float32,
                              device=frames.device).reshape(t, 3)
    ratio = float(boxes_t[:, 2].mean()) / size
    if ratio > 1.5:
        # normalised coordinates do not change with the frame's size, so only pixels shrink
        frames = F.interpolate(frames, scale_factor=1 / ratio, mode="bilinear",
                               antialias=True, align_corners=False)
    cx, cy, side = boxes_t[:, 0], boxes_t[:, 1], boxes_t[:, 2]
    theta = torch.zeros(t, 2, 3, dtype=torch.float32, device=frames.device)
    theta[:, 0, 0] = side / w
    theta[:, 0, 2] = cx / w * 2 - 1
    theta[:, 1, 1] = side / h
    theta[:, 1, 2] = cy / h * 2 - 1
    grid = F.affine_grid(theta, [t, 3, size, size], align_corners=False)
    out = F.grid_sample(frames.float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.clamp_(0.0, 1.0)


def box_jitter(boxes: np.ndarray) -> float:
    """Centre jitter: the std of the centre's second difference over time, over the mean side
    (the larger of x and y)."""
    boxes = np.asarray(boxes, np.float64)
    if len(boxes) < 3:
        return 0.0
    d2 = np.diff(boxes[:, :2], n=2, axis=0)
    return float(d2.std(0).max() / boxes[:, 2].mean())
