"""φ for landmark dynamics: one frame's 68 points → a feature vector.

The points arrive in the reference face's frame (:func:`.face_geometry.to_canonical` with the
reference frame's similarity), so the same expression on a big face and a small one, in a wide
crop or a tight one, reads alike, while head motion relative to the reference stays visible.

* ``coords``: an MLP over the 136 numbers.
* ``heatmap``: the points rasterised into six part maps (jaw, brows, nose, eyes, outer and
  inner lips) at 32×32 and read by a small strided CNN, the paper's kind of per-frame network.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import EncoderConfig
from .face_geometry import N_POINTS, PARTS, part_heatmaps
from .layers import LEAK, down_conv

#: heatmap window (canonical units either side of the face's middle) and Gaussian width
HEAT_EXTENT = 2.6
HEAT_SIGMA = 0.09
HEAT_SIZE = 32


class LandmarkCoordsNet(nn.Module):
    """φ over coordinates: (N, 68, 2) canonical → (N, feature_dim)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        width = max(cfg.feature_dim, 256)
        self.net = nn.Sequential(
            nn.Linear(2 * N_POINTS, width), nn.LeakyReLU(LEAK),
            nn.Linear(width, width), nn.LeakyReLU(LEAK),
            nn.Linear(width, cfg.feature_dim), nn.LeakyReLU(LEAK))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) → (N, feature_dim)."""
        return self.net(points.flatten(1))


class LandmarkHeatmapNet(nn.Module):
    """φ over part heatmaps: (N, 68, 2) canonical → six 32×32 maps → CNN → (N, feature_dim)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        widths = list(cfg.widths)[:3]
        layers: list[nn.Module] = []
        c_in = len(PARTS)
        for w in widths:  # 32 → 16 → 8 → 4
            layers += [down_conv(c_in, w, cfg.kernel_size), nn.LeakyReLU(LEAK, inplace=True)]
            c_in = w
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * 16, cfg.feature_dim)
        self.act = nn.LeakyReLU(LEAK)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) → (N, feature_dim)."""
        maps = part_heatmaps(points, HEAT_SIZE, HEAT_EXTENT, HEAT_SIGMA)
        return self.act(self.proj(self.convs(maps).flatten(1)))


def build_landmark_net(cfg: EncoderConfig) -> nn.Module:
    """φ for landmarks, by ``cfg.landmark_encoding``."""
    if cfg.landmark_encoding == "heatmap":
        return LandmarkHeatmapNet(cfg)
    return LandmarkCoordsNet(cfg)
