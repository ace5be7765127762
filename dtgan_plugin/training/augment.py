"""Augmentation on the training device: Kornia for space, frame indexing for time.

Spatial: one ``kornia.augmentation.VideoSequential`` call over the clip ``[target; source;
truth]`` with ``same_on_frame=True``, so the target image, every source frame and every
truth frame get the *same* flip, affine and colour parameters — the truth stays exactly the
target moved by the source's dynamics. Temporal: reversal and speed change by re-indexing
source and truth together (frame 0 is kept, so the reference frame is unchanged).
"""

from __future__ import annotations

import torch

from .config import AugmentConfig


class ClipAugment(torch.nn.Module):
    """Consistent spatial augmentation of (target, source, truth) clips, then temporal."""

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.cfg = cfg
        ops: list[torch.nn.Module] = []
        if cfg.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.translate > 0 or cfg.scale > 0 or cfg.degrees > 0:
            ops.append(K.RandomAffine(degrees=cfg.degrees, translate=(cfg.translate, cfg.translate),
                                      scale=(1 - cfg.scale, 1 + cfg.scale), padding_mode="border",
                                      p=0.8))
        if cfg.color_jitter > 0:
            c = cfg.color_jitter
            ops.append(K.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 2, p=0.8))
        self.video = K.VideoSequential(*ops, data_format="BTCHW", same_on_frame=True) if ops else None

    def forward(self, target: torch.Tensor, source: torch.Tensor,
                truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augment a batch: target (B,3,H,W), source and truth (B,T,3,H,W), all in [0,1]."""
        if not self.cfg.enabled:
            return target, source, truth
        t = source.shape[1]
        if self.video is not None:
            clip = torch.cat([target.unsqueeze(1), source, truth], dim=1)
            clip = self.video(clip).clamp(0, 1)
            target, source, truth = clip[:, 0], clip[:, 1:1 + t], clip[:, 1 + t:]
        idx = temporal_indices(source.shape[0], t, self.cfg, source.device)
        b = torch.arange(source.shape[0], device=source.device)[:, None]
        return target, source[b, idx], truth[b, idx]


def temporal_indices(batch: int, frames: int, cfg: AugmentConfig,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Per-clip frame indices (B,T): identity, reversed tail, or a 0.5x–2x speed change.

    Index 0 always maps to frame 0, so the reference frame (and the target for self pairs)
    stays valid.
    """
    base = torch.arange(frames, device=device, dtype=torch.float32).expand(batch, frames)
    u = torch.rand(batch, device=device)
    speed = torch.exp(torch.empty(batch, device=device).uniform_(-0.693, 0.693))
    use_speed = (torch.rand(batch, device=device) < cfg.speed)[:, None]
    idx = torch.where(use_speed, (base * speed[:, None]).round(), base)
    idx = idx.clamp_(0, frames - 1)
    # reversal of the motion after the reference: 0, T-1, T-2, ..., 1
    rev = torch.cat([base[:, :1], (frames - base[:, 1:])], dim=1)
    use_rev = (u < cfg.reverse)[:, None]
    idx = torch.where(use_rev, rev, idx)
    return idx.long()
