"""Paste animated face crops back into the full-resolution photo they were cut from.

The crop box is the photo's own (:func:`~dtgan_plugin.faces.crop.face_box` of its landmarks),
so the inverse warp lines the crop up with the photo. The mask is the convex hull of the 68
points (brows included), grown by ``dilate`` and feathered over ``feather`` (both fractions of
the box side) with a smoothstep ramp rather than a Gaussian: its support ends, so every pixel
outside it is the photo's, bit for bit. The crop's colour is shifted to the photo's in a ring
just outside the mask, so the seam does not show.

With the animated face's own landmarks per frame (``paste(crops, points)``, which
``dtgan.transfer`` attaches to its chunks for a landmark model), each frame's mask also covers
where the face moved to: an opening jaw's chin or a head moved sideways is pasted whole rather
than cut at the resting face's edge. The colour match then reads only the ring's pixels the
moved face does not cover. Given the head's ``outline`` too (at rest, and per frame as the
transfer moved it with the head), the mask is the hull of the face and the outline: the hair
that moved with the head is pasted, not only the face. Given the photo's person ``matte`` as
well, the resting mask also covers the person near that hull (the hair's fringe beyond the
outline): where the mask's ramp crossed the resting hair, a head that moved away left a faint
arc of that hair's edge behind, the photo's own pixels showing through the ramp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..media.framepool import FramePool
from ..models.layers import smoothstep

#: the person matte's level that counts as the person for the resting mask: its faintest
#: fringe, which is what showed through the ramp
MATTE_LEVEL = 0.05


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


def _edge_normals(hull: torch.Tensor) -> torch.Tensor:
    """Unit outward normals ``(K, 2)`` of a counter-clockwise hull's edges (edge k runs from
    corner k to corner k + 1)."""
    edge = torch.roll(hull, -1, 0) - hull
    normal = torch.stack([edge[:, 1], -edge[:, 0]], 1)
    return normal / (normal.norm(dim=1, keepdim=True) + 1e-12)


def hull_distance_torch(hull: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Signed distance-like field of a convex polygon ``(K, 2)`` at pixel centres of any shape:
    < 0 inside, the maximum over its edges' lines."""
    normal = _edge_normals(hull)
    # every edge's line at once, as one matrix product: [x, y, 1] @ [n; -n·a]
    lines = torch.cat([normal, -(normal * hull).sum(1, keepdim=True)], 1).T  # (3, K)
    xy1 = torch.stack([xs, ys, torch.ones_like(xs)], -1)
    return (xy1.reshape(-1, 3) @ lines).amax(-1).reshape(xs.shape)


def hull_distance(hull: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """:func:`hull_distance_torch` for numpy arrays (float64 stays float64)."""
    return hull_distance_torch(*(torch.from_numpy(np.ascontiguousarray(v))
                                 for v in (hull, xs, ys))).numpy()


def _person_mask(matte: Any, size: tuple[int, int], window: tuple[int, int, int, int],
                 margin: float, soft: float) -> np.ndarray:
    """Over ``window`` ``(y0, y1, x0, x1)``: 1 within ``margin`` px of the person in a photo's
    soft ``matte`` ``(H, W)`` (at least :data:`MATTE_LEVEL`), falling smoothly to 0 by
    ``margin + 2·soft`` (a grown, box-feathered matte; float64)."""
    m = torch.as_tensor(np.asarray(matte, np.float32) if not torch.is_tensor(matte) else matte)
    m = m.detach().float().cpu()
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if tuple(m.shape) != tuple(size):
        raise ValueError(f"paste: matte must be (H, W) = {tuple(size)} like the photo, "
                         f"got {tuple(m.shape)}")
    y0, y1, x0, x1 = window
    grow, feather = int(np.ceil(margin + soft)), max(1, int(np.ceil(soft)))
    # the window grown by the reach, so the person just outside it still counts
    pad = grow + feather
    ty0, tx0 = max(0, y0 - pad), max(0, x0 - pad)
    part = (m[ty0:min(size[0], y1 + pad), tx0:min(size[1], x1 + pad)]
            .nan_to_num(0.0) >= MATTE_LEVEL).float()[None, None]
    grown = F.max_pool2d(part, 2 * grow + 1, stride=1, padding=grow)
    ramp = F.avg_pool2d(grown, 2 * feather + 1, stride=1, padding=feather,
                        count_include_pad=False)[0, 0]
    ramp = ramp[y0 - ty0:y0 - ty0 + (y1 - y0), x0 - tx0:x0 - tx0 + (x1 - x0)]
    return smoothstep(ramp.double().numpy())


def _above(outline: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """How far (px) each pixel lies beyond the line through the outline's two ends, on the
    side of the outline's middle (the top of the head); negative below it."""
    a, b = outline[0], outline[-1]
    normal = np.array([a[1] - b[1], b[0] - a[0]])
    normal /= max(float(np.hypot(*normal)), 1e-9)
    if float(np.dot(outline[len(outline) // 2] - a, normal)) < 0:
        normal = -normal
    return (xs - a[0]) * normal[0] + (ys - a[1]) * normal[1]


class PasteBack:
    """Composite ``(T, 3, s, s)`` face crops into a ``(3, H, W)`` photo at its face box.

    ``even=True`` pads an odd height or width by repeating the last row or column, so h264
    (yuv420p) can encode it; every pixel of the photo keeps its place.
    """

    def __init__(self, photo: torch.Tensor, pts68: np.ndarray, box: np.ndarray, *,
                 dilate: float = 0.04, feather: float = 0.04, colour_match: bool = True,
                 even: bool = True, outline: np.ndarray | None = None,
                 matte: Any = None) -> None:
        self.photo = photo.float()
        _, h, w = self.photo.shape
        cx, cy, side = (float(v) for v in box)
        margin, soft = dilate * side, max(feather * side, 1.0)
        pts = np.asarray(pts68, np.float64)
        # with the head's resting outline (photo pixels) when the hair moves with the head
        hull = convex_hull(pts if outline is None else
                           np.concatenate([pts, np.asarray(outline, np.float64)]))
        # only the box ∩ grown hull can change: work on that window alone
        lo = np.floor(np.maximum(hull.min(0) - margin - soft, [cx - side / 2, cy - side / 2]))
        hi = np.ceil(np.minimum(hull.max(0) + margin + 3 * soft, [cx + side / 2, cy + side / 2]))
        x0, y0 = (int(v) for v in np.clip(lo, 0, [w, h]))
        x1, y1 = (int(v) for v in np.clip(hi, 0, [w, h]))
        self.window = (y0, y1, x0, x1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5  # pixel centres
        dist = hull_distance(hull, xs, ys)
        inside_box = np.minimum(side / 2 - np.abs(xs - cx), side / 2 - np.abs(ys - cy))
        mask = smoothstep((margin + soft - dist) / (2 * soft)) * smoothstep(inside_box / soft)
        ring = (dist > margin + soft) & (dist <= margin + 3 * soft) & (inside_box > 0)
        if matte is not None:
            if outline is None:
                raise ValueError("paste: a matte extends the mask over the hair, which needs "
                                 "the head's outline too")
            person = _person_mask(matte, (h, w), self.window, margin, soft)
            # only the hair: near the hull (up to where its own ring begins, then fading out)
            # and above the line through the outline's ends, beside the ears; the neck and
            # the collar below stay the photo's, as without a matte
            near = smoothstep((margin + 3 * soft - dist) / (2 * soft))
            extra = person * near * smoothstep(inside_box / soft) * \
                smoothstep(_above(np.asarray(outline, np.float64), xs, ys) / soft)
            mask = np.maximum(mask, extra)
            ring &= extra <= 0
        dev = self.photo.device
        self.mask = torch.as_tensor(mask, dtype=torch.float32, device=dev)
        self.ring = torch.as_tensor(ring, device=dev)
        self.colour_match = bool(colour_match) and bool(ring.any())
        grid = np.stack([(xs - cx) / side * 2, (ys - cy) / side * 2], -1)
        self.grid = torch.as_tensor(grid, dtype=torch.float32, device=dev)[None]
        region = self.photo[:, y0:y1, x0:x1]
        # the ring's own pixels too: a frame whose moved face covers part of the ring compares
        # the crop and the photo over the same uncovered part
        self._photo_ring_px = region[:, self.ring] if self.colour_match else None
        self._photo_ring = self._photo_ring_px.mean(1) if self.colour_match else None
        # per frame, only the mask's own box is sampled and blended, and the ring's pixels
        # are sampled as a list: the window's margin is the ring, which needs no blend
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        self._inner = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) \
            if len(rows) else (0, 0, 0, 0)
        r0, r1, c0, c1 = self._inner
        self._inner_grid = self.grid[:, r0:r1, c0:c1].contiguous()
        self._inner_mask = self.mask[r0:r1, c0:c1].contiguous()
        self._ring_grid = self.grid[:, self.ring][:, None].contiguous()  # (1, 1, N, 2)
        ry, rx = np.nonzero(ring)
        self._ring_xy = torch.as_tensor(np.stack([xs[ry, rx], ys[ry, rx]], -1),
                                        dtype=torch.float32, device=dev)
        self.box = (cx, cy, side)
        self._rest_hull = torch.as_tensor(hull, dtype=torch.float32, device=dev)
        self._fields: dict[str, Any] | None = None  # the following paste's, made on first use
        self._pool: FramePool | None = None  # output buffers, made on first use (_blank)
        self._margin, self._soft = margin, soft
        self.even = bool(even)
        self.out_size = (h + (h % 2 if even else 0), w + (w % 2 if even else 0))

    def paste(self, crops: torch.Tensor, points: torch.Tensor | None = None,
              outline: torch.Tensor | None = None) -> torch.Tensor:
        """``(T, 3, H', W')`` frames: the photo with the crops composited inside the mask.

        ``points`` ``(T, 68, 2)``: the animated face's landmarks in crop pixels; each frame's
        mask then also covers the moved face (grown and feathered alike). ``outline``
        ``(T, K, 2)``: the head's moved outline in crop pixels (a paster made with a resting
        ``outline``), whose hull the mask covers too.
        """
        if points is not None:
            t = crops.shape[0]
            if tuple(points.shape) != (t, 68, 2):
                raise ValueError(f"paste: points must be ({t}, 68, 2), "
                                 f"got {tuple(points.shape)}")
            if outline is not None:
                if outline.dim() != 3 or outline.shape[0] != t or outline.shape[-1] != 2:
                    raise ValueError(f"paste: outline must be ({t}, K, 2), "
                                     f"got {tuple(outline.shape)}")
                points = torch.cat([points, outline.to(points.dtype)], 1)
            return self._paste_following(crops, points)
        t = crops.shape[0]
        y0, _, x0, _ = self.window
        r0, r1, c0, c1 = self._inner
        out = self._blank(t)
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

    def _blank(self, t: int) -> torch.Tensor:
        """``t`` copies of the photo to paste into, in pooled buffers on the CPU: a chunk of
        output frames is tens of MB, and a fresh allocation of it faulted its pages in at
        every call (a third of the paste's time at 512x512); a pooled one is reused once the
        encoder has dropped it (:mod:`..media.framepool`)."""
        src = self.photo[None].expand(t, -1, -1, -1)
        if self.photo.device.type != "cpu" or t == 0:
            return src.clone()
        if self._pool is None or self._pool.shape[0] < t:
            if self._pool is not None:
                self._pool.close()
            self._pool = FramePool((t, *self.photo.shape))
        return self._pool.acquire(t).copy_(src)

    def _moved_hulls(self, points: torch.Tensor, crop_side: int) -> list[torch.Tensor | None]:
        """Each frame's convex hull ``(K, 2)`` of the crop-pixel ``points``, in photo pixels;
        None where the resting mask serves: the points are not all finite, or their hull lies
        inside the resting one. (Its grown mask then lies inside the resting mask but for a
        pixel or two at sharp corners; most frames are so, and cost no more than a resting
        paste.)"""
        cx, cy, side = self.box
        pts = points.detach().double().cpu().numpy() / crop_side - 0.5
        photo = pts * side + np.array([cx, cy])
        hulls: list[torch.Tensor | None] = []
        for p in photo:
            if not np.isfinite(p).all():
                hulls.append(None)
                continue
            hull = torch.as_tensor(convex_hull(p), dtype=torch.float32, device=self.photo.device)
            within = hull_distance_torch(self._rest_hull, hull[:, 0], hull[:, 1]) <= 0.01
            hulls.append(None if bool(within.all()) else hull)
        return hulls

    def _paste_following(self, crops: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """:meth:`paste` with per-frame masks: the resting mask or the moved face's (``points``
        ``(T, P, 2)``: its landmarks and outline), whichever is larger, on the window they both
        fit in."""
        t = crops.shape[0]
        if t == 0:
            return self.paste(crops)
        # every frame given points goes this way, moved or not: a frame's pixels must not
        # depend on the other frames of its call (batch and transfer chunk frames differently)
        hulls = self._moved_hulls(points, int(crops.shape[-1]))
        found = [hl for hl in hulls if hl is not None]
        reach = self._margin + self._soft
        if found:
            grown = torch.cat([_offset_polygon(hl, reach) for hl in found])
            lo, hi = grown.amin(0).cpu().numpy(), grown.amax(0).cpu().numpy()
        else:
            lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        fields = self._box_fields()
        fx0, fy0 = fields["origin"]
        fh, fw = fields["xs"].shape
        y0, y1, x0, x1 = self.window
        r0, r1, c0, c1 = self._inner
        # the union of the resting mask's box and the moved masks', inside the crop's box
        # (the fields cover the box), in the fields' indices
        bx0 = int(max(np.floor(min(lo[0], x0 + c0)) - fx0, 0))
        by0 = int(max(np.floor(min(lo[1], y0 + r0)) - fy0, 0))
        bx1 = int(min(np.ceil(max(hi[0], x0 + c1)) - fx0, fw))
        by1 = int(min(np.ceil(max(hi[1], y0 + r1)) - fy0, fh))
        out = self._blank(t)
        if bx1 > bx0 and by1 > by0:
            box_ramp = fields["box_ramp"][by0:by1, bx0:bx1]
            resting = fields["resting"][by0:by1, bx0:bx1]
            xs, ys = fields["xs"][by0:by1, bx0:bx1], fields["ys"][by0:by1, bx0:bx1]
            # exact distances: a pixel's mask must not depend on which frames share its call
            # (batch and transfer chunk the same frames differently)
            moved = torch.stack([torch.zeros_like(resting) if hl is None else smoothstep(
                (reach - hull_distance_torch(hl, xs, ys)) / (2 * self._soft)) * box_ramp
                for hl in hulls])
            masks = torch.maximum(resting[None], moved)
            grid = fields["grid"][:, by0:by1, bx0:bx1]
            dev = self.photo.device
            crops = crops.float().to(dev)
            warped = F.grid_sample(crops, grid.expand(t, -1, -1, -1), mode="bilinear",
                                   padding_mode="border", align_corners=False)
            if self.colour_match:
                covered = self._ring_covered(moved, fx0 + bx0, fy0 + by0)
                warped.add_(self._ring_shift(crops, covered)[:, :, None, None])
            region = out[:, :, fy0 + by0:fy0 + by1, fx0 + bx0:fx0 + bx1]
            step = warped.sub_(region).mul_(masks[:, None]).nan_to_num_(0.0, 0.0, 0.0)
            region.add_(step).clamp_(0.0, 1.0)
        pad_h, pad_w = self.out_size[0] - out.shape[2], self.out_size[1] - out.shape[3]
        if pad_h or pad_w:
            out = F.pad(out, (0, pad_w, 0, pad_h), mode="replicate")
        return out

    def _box_fields(self) -> dict[str, Any]:
        """What every following paste reads, over the whole crop box inside the photo, made
        once: pixel centres, the box's edge ramp, the resting mask and the crop's sampling
        grid (a paste call holds a frame or two: rebuilding them per call cost more than the
        masks themselves)."""
        if self._fields is None:
            _, h, w = self.photo.shape
            cx, cy, side = self.box
            fx0, fy0 = int(max(np.floor(cx - side / 2), 0)), int(max(np.floor(cy - side / 2), 0))
            fx1, fy1 = int(min(np.ceil(cx + side / 2), w)), int(min(np.ceil(cy + side / 2), h))
            dev = self.photo.device
            ys = torch.arange(fy0, fy1, device=dev, dtype=torch.float32)[:, None] + 0.5
            xs = torch.arange(fx0, fx1, device=dev, dtype=torch.float32)[None, :] + 0.5
            ys, xs = ys.expand(-1, fx1 - fx0).contiguous(), xs.expand(fy1 - fy0, -1).contiguous()
            inside = torch.minimum(side / 2 - (xs - cx).abs(), side / 2 - (ys - cy).abs())
            resting = torch.zeros_like(xs)
            y0, y1, x0, x1 = self.window
            ry0, ry1, rx0, rx1 = max(y0, fy0), min(y1, fy1), max(x0, fx0), min(x1, fx1)
            if ry1 > ry0 and rx1 > rx0:  # the resting mask, exactly as the static path has it
                resting[ry0 - fy0:ry1 - fy0, rx0 - fx0:rx1 - fx0] = \
                    self.mask[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0]
            grid = torch.stack([(xs - cx) / side * 2, (ys - cy) / side * 2], -1)[None]
            self._fields = {"origin": (fx0, fy0), "xs": xs, "ys": ys, "resting": resting,
                            "box_ramp": smoothstep(inside / self._soft), "grid": grid}
        return self._fields

    def _ring_covered(self, moved: torch.Tensor, x0: int, y0: int) -> torch.Tensor:
        """``(T, N)``: which of the ring's pixels the moved masks ``(T, h, w)``, whose window
        starts at photo pixel ``(x0, y0)``, cover (outside the window none do)."""
        t, h, w = moved.shape
        rx = self._ring_xy[:, 0].long() - x0   # pixel centres i + 0.5 → index i
        ry = self._ring_xy[:, 1].long() - y0
        inside = (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
        covered = torch.zeros(t, len(rx), dtype=torch.bool, device=moved.device)
        covered[:, inside] = moved[:, ry[inside], rx[inside]] > 0
        return covered

    def _ring_shift(self, crops: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
        """Per frame ``(T, 3)``: the photo's ring colour minus the crop's, both over the ring's
        pixels the moved face leaves uncovered (``covered`` (T, N); all of them if it covers
        all)."""
        ring = F.grid_sample(crops, self._ring_grid.expand(len(crops), -1, -1, -1),
                             mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
        free = (~covered).float()
        free[free.sum(1) == 0] = 1.0
        count = free.sum(1, keepdim=True)
        photo = (self._photo_ring_px[None] * free[:, None]).sum(2) / count
        return photo - (ring * free[:, None]).sum(2) / count


def _offset_polygon(hull: torch.Tensor, reach: float) -> torch.Tensor:
    """The corners ``(K, 2)`` of a convex ``hull``'s edges each moved out by ``reach``: where
    its mask (a maximum over the edges' lines, :func:`hull_distance_torch`) ends. At a sharp
    corner that lies further out than the hull's box grown by ``reach``."""
    normal = _edge_normals(hull)
    before = torch.roll(normal, 1, 0)  # the normal of the edge ending at each corner
    # the point at distance `reach` from both lines through the corner
    return hull + reach * (normal + before) / (1.0 + (normal * before).sum(1, keepdim=True)
                                               ).clamp_min(1e-3)
