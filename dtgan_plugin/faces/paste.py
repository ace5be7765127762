"""Paste animated face crops back into the full-resolution photo they were cut from.

The crop box is the photo's own (:func:`~dtgan_plugin.faces.crop.face_box` of its landmarks),
so the inverse warp lines the crop up with the photo. The mask is the convex hull of the 68
points (brows included), grown by ``dilate`` and feathered over ``feather`` (both fractions of
the box side) with a smoothstep ramp rather than a Gaussian: its support ends, so every pixel
outside it is the photo's, bit for bit. The crop's colour is shifted to the photo's in a ring
just outside the mask, so the seam does not show.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull ``(K, 2)`` of ``(N, 2)`` points, counter-clockwise (monotone chain)."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], np.float64)


def hull_distance(hull: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signed distance-like field of a convex polygon: < 0 inside, max over its edges' lines."""
    a, b = hull, np.roll(hull, -1, axis=0)
    edge = b - a
    normal = np.stack([edge[:, 1], -edge[:, 0]], 1)  # outward for a counter-clockwise hull
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    d = (xs[..., None] - a[:, 0]) * normal[:, 0] + (ys[..., None] - a[:, 1]) * normal[:, 1]
    return d.max(-1)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


class PasteBack:
    """Composite ``(T, 3, s, s)`` face crops into a ``(3, H, W)`` photo at its face box.

    ``even=True`` pads an odd height or width by repeating the last row or column, so h264
    (yuv420p) can encode it; every pixel of the photo keeps its place.
    """

    def __init__(self, photo: torch.Tensor, pts68: np.ndarray, box: np.ndarray, *,
                 dilate: float = 0.04, feather: float = 0.04, colour_match: bool = True,
                 even: bool = True) -> None:
        self.photo = photo.float()
        _, h, w = self.photo.shape
        cx, cy, side = (float(v) for v in box)
        margin, soft = dilate * side, max(feather * side, 1.0)
        hull = convex_hull(pts68)
        # only the box ∩ grown hull can change: work on that window alone
        lo = np.floor(np.maximum(hull.min(0) - margin - soft, [cx - side / 2, cy - side / 2]))
        hi = np.ceil(np.minimum(hull.max(0) + margin + 3 * soft, [cx + side / 2, cy + side / 2]))
        x0, y0 = (int(v) for v in np.clip(lo, 0, [w, h]))
        x1, y1 = (int(v) for v in np.clip(hi, 0, [w, h]))
        self.window = (y0, y1, x0, x1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5  # pixel centres
        dist = hull_distance(hull, xs, ys)
        inside_box = np.minimum(side / 2 - np.abs(xs - cx), side / 2 - np.abs(ys - cy))
        mask = _smoothstep((margin + soft - dist) / (2 * soft)) * _smoothstep(inside_box / soft)
        ring = (dist > margin + soft) & (dist <= margin + 3 * soft) & (inside_box > 0)
        dev = self.photo.device
        self.mask = torch.as_tensor(mask, dtype=torch.float32, device=dev)
        self.ring = torch.as_tensor(ring, device=dev)
        self.colour_match = bool(colour_match) and bool(ring.any())
        grid = np.stack([(xs - cx) / side * 2, (ys - cy) / side * 2], -1)
        self.grid = torch.as_tensor(grid, dtype=torch.float32, device=dev)[None]
        region = self.photo[:, y0:y1, x0:x1]
        self._photo_ring = region[:, self.ring].mean(1) if self.colour_match else None
        # per frame, only the mask's own box is sampled and blended, and the ring's pixels
        # are sampled as a list: the window's margin is the ring, which needs no blend
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        self._inner = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) \
            if len(rows) else (0, 0, 0, 0)
        r0, r1, c0, c1 = self._inner
        self._inner_grid = self.grid[:, r0:r1, c0:c1].contiguous()
        self._inner_mask = self.mask[r0:r1, c0:c1].contiguous()
        self._ring_grid = self.grid[:, self.ring][:, None].contiguous()  # (1, 1, N, 2)
        self.even = bool(even)
        self.out_size = (h + (h % 2 if even else 0), w + (w % 2 if even else 0))

    def paste(self, crops: torch.Tensor) -> torch.Tensor:
        """``(T, 3, H', W')`` frames: the photo with the crops composited inside the mask."""
        t = crops.shape[0]
        y0, _, x0, _ = self.window
        r0, r1, c0, c1 = self._inner
        out = self.photo[None].expand(t, -1, -1, -1).clone()
        if r1 > r0 and c1 > c0:
            crops = crops.float().to(self.photo.device)
            warped = F.grid_sample(crops, self._inner_grid.expand(t, -1, -1, -1),
                                   mode="bilinear", padding_mode="border", align_corners=False)
            if self.colour_match:
                ring = F.grid_sample(crops, self._ring_grid.expand(t, -1, -1, -1),
                                     mode="bilinear", padding_mode="border",
                                     align_corners=False)
                shift = self._photo_ring[None] - ring[:, :, 0].mean(2)
                warped.add_(shift[:, :, None, None])
            region = out[:, :, y0 + r0:y0 + r1, x0 + c0:x0 + c1]
            # region + m * (crop - region), in place: where m == 0 the step is exactly 0 (a NaN
            # crop included), so the photo's pixels stay bit for bit (they are in [0, 1])
            step = warped.sub_(region).mul_(self._inner_mask).nan_to_num_(0.0, 0.0, 0.0)
            region.add_(step).clamp_(0.0, 1.0)
        pad_h, pad_w = self.out_size[0] - out.shape[2], self.out_size[1] - out.shape[3]
        if pad_h or pad_w:
            out = F.pad(out, (0, pad_w, 0, pad_h), mode="replicate")
        return out
