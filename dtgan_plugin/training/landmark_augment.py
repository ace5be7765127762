"""Augmentation of clips that carry landmarks: one geometric transform for pixels and points.

Kornia warps the images (``kornia.geometry.transform.warp_affine``) with a per-clip affine
(flip, rotation, scale, shift) and maps the landmarks through the *same* matrix
(``kornia.geometry.linalg.transform_points``); a flip also swaps each point with its mirror
(the left eye's corner becomes the right eye's), so landmark indices keep their meaning. Colour
jitter (``kornia.augmentation.ColorJitter``, same on every frame of a clip) touches pixels only.
Temporal reversal and speed change re-index frames and their landmarks together.
"""

from __future__ import annotations

import torch

from ..models.face_geometry import FLIP_68
from .augment import temporal_indices
from .config import AugmentConfig

#: the keys of a batch's landmarks, and whether each is per frame (B, T, 68, 2)
LANDMARK_KEYS = {"target_lmk": False, "source_lmk": True, "truth_lmk": True}


class LandmarkClipAugment(torch.nn.Module):
    """Consistent geometric + colour augmentation of (target, source, truth) and their landmarks."""

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.cfg = cfg
        self.colour = None
        if cfg.color_jitter > 0:
            c = cfg.color_jitter
            self.colour = K.VideoSequential(
                K.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 2, p=0.8),
                data_format="BTCHW", same_on_frame=True)
        self.register_buffer("flip_index", torch.tensor(FLIP_68), persistent=False)

    def _matrices(self, b: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
        """Per-clip 3×3 pixel-index affines and flip flags."""
        from kornia.geometry.transform import get_affine_matrix2d

        cfg = self.cfg
        u = lambda lo, hi: torch.empty(b, device=device).uniform_(lo, hi)  # noqa: E731
        angle = u(-cfg.degrees, cfg.degrees)
        s = u(1 - cfg.scale, 1 + cfg.scale)
        shift = torch.stack([u(-cfg.translate, cfg.translate) * w,
                             u(-cfg.translate, cfg.translate) * h], -1)
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=device).expand(b, 2)
        m = get_affine_matrix2d(shift, centre, torch.stack([s, s], -1), angle)
        flip = torch.rand(b, device=device) < cfg.hflip
        mirror = torch.eye(3, device=device).repeat(b, 1, 1)
        mirror[:, 0, 0] = -1.0
        mirror[:, 0, 2] = w - 1
        m = torch.where(flip.view(b, 1, 1), m @ mirror, m)
        return m, flip

    def _move_points(self, landmarks: dict[str, torch.Tensor], m: torch.Tensor,
                     flip: torch.Tensor) -> dict[str, torch.Tensor]:
        from kornia.geometry.linalg import transform_points

        out = dict(landmarks)
        for key in LANDMARK_KEYS:
            pts = landmarks[key]
            b = pts.shape[0]
            flat = pts.reshape(b, -1, 2) - 0.5  # continuous → pixel-index coordinates
            moved = (transform_points(m, flat) + 0.5).view_as(pts)
            mirrored = moved.index_select(-2, self.flip_index)
            out[key] = torch.where(flip.view(b, *([1] * (pts.dim() - 1))), mirrored, moved)
        return out

    def points_only(self, landmarks: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
        """The same geometric and temporal augmentation for landmarks without images
        (pre-training a landmark encoder)."""
        if not self.cfg.enabled:
            return landmarks
        src = landmarks["source_lmk"]
        b, t = src.shape[:2]
        out = dict(landmarks)
        if self.cfg.degrees > 0 or self.cfg.scale > 0 or self.cfg.translate > 0 \
                or self.cfg.hflip > 0:
            m, flip = self._matrices(b, size, size, src.device)
            out = self._move_points(landmarks, m, flip)
        idx = temporal_indices(b, t, self.cfg, src.device)
        rows = torch.arange(b, device=src.device)[:, None]
        for key, per_frame in LANDMARK_KEYS.items():
            if per_frame:
                out[key] = out[key][rows, idx]
        return out

    def forward(self, target: torch.Tensor, source: torch.Tensor, truth: torch.Tensor,
                landmarks: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Images in [0, 1] (target (B,3,H,W), source/truth (B,T,3,H,W)) and landmarks
        (``LANDMARK_KEYS``, pixels) → the same, augmented alike."""
        if not self.cfg.enabled:
            return target, source, truth, landmarks
        from kornia.geometry.transform import warp_affine

        b, t, _, h, w = source.shape
        clip = torch.cat([target.unsqueeze(1), source, truth], dim=1)  # (B, 2T+1, 3, H, W)
        geometric = self.cfg.degrees > 0 or self.cfg.scale > 0 or self.cfg.translate > 0 \
            or self.cfg.hflip > 0
        out = dict(landmarks)
        if geometric:
            m, flip = self._matrices(b, h, w, source.device)
            n = clip.shape[1]
            warped = warp_affine(clip.flatten(0, 1), m[:, :2].repeat_interleave(n, 0), (h, w),
                                 mode="bilinear", padding_mode="border", align_corners=True)
            clip = warped.view(b, n, 3, h, w)
            out = self._move_points(landmarks, m, flip)
        if self.colour is not None:
            clip = self.colour(clip)
        clip = clip.clamp(0, 1)
        target, source, truth = clip[:, 0], clip[:, 1:1 + t], clip[:, 1 + t:]
        idx = temporal_indices(b, t, self.cfg, source.device)
        rows = torch.arange(b, device=source.device)[:, None]
        for key, per_frame in LANDMARK_KEYS.items():
            if per_frame:
                out[key] = out[key][rows, idx]
        return target, source[rows, idx], truth[rows, idx], out


def jitter_landmarks(points: torch.Tensor, std: float) -> torch.Tensor:
    """Landmarks (B, T, 68, 2) plus Gaussian noise of ``std`` interocular distances (each
    clip's frame 0): a real landmarker's frame-to-frame jitter, which the encoder must ignore."""
    if std <= 0:
        return points
    ref = points[:, :1]
    iod = (ref[..., 42:48, :].mean(-2) - ref[..., 36:42, :].mean(-2)).norm(dim=-1)
    scale = (std * iod).view(points.shape[0], 1, 1, 1)
    return points + torch.randn_like(points) * scale


__all__ = ["LandmarkClipAugment", "jitter_landmarks", "LANDMARK_KEYS"]
