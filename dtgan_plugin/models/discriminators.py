"""The two discriminators of Dynamics Transfer GAN (training only).

* :class:`FrameDiscriminator` — D_S, appearance fidelity: a PatchGAN over [target; frame]
  (6 channels), so it can penalise identity drift as well as unrealistic frames. Returns patch
  logits.
* :class:`ClipDiscriminator` — D_T, dynamic consistency, conditioned on the source's ASD so it
  checks that the generated motion *matches* the source, not merely that it is plausible.
  ``clip_kind="lstm"`` (default): per-frame CNN → concat d_t → LSTM → per-step logits, reduced
  by mean (or last step). It mirrors the dynamics encoder and is cheap on CPU.
  ``clip_kind="conv3d"``: 3-D convs over the clip with d_t tiled in after the first block
  (TGAN/MoCoGAN style); heavier, sees local space-time texture (flicker) directly.
  Both return one logit per clip.

Frames are in [-1, 1]. ``spectral_norm`` wraps every conv and linear weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .config import ModelConfig
from .layers import LEAK, InputShapeError, check_frames, check_image, make_norm


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return parametrizations.spectral_norm(module) if enabled else module


def _run_collecting(layers: nn.Module, x: torch.Tensor,
                    feats: list[torch.Tensor] | None) -> torch.Tensor:
    """Run ``layers`` in order, appending each LeakyReLU's output to ``feats`` (if given)."""
    for layer in layers:
        x = layer(x)
        if feats is not None and isinstance(layer, nn.LeakyReLU):
            feats.append(x)
    return x


def _norm3d(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    return nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)


class FrameDiscriminator(nn.Module):
    """D_S: PatchGAN over [target; frame] → patch logits.

    ``forward(target (B, 3, H, W), frames (B, 3, H, W) or (B, T, 3, H, W))`` returns logits
    (B, 1, h, w) or (B, T, 1, h, w).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dc = config.discriminator
        self.resolution = config.resolution
        base, sn = dc.frame_base_width, dc.spectral_norm
        widths = [min(base * 2 ** i, base * 8) for i in range(dc.frame_layers + 1)]
        layers: list[nn.Module] = [_sn(nn.Conv2d(6, widths[0], 4, 2, 1), sn),
                                   nn.LeakyReLU(LEAK, inplace=True)]
        for i in range(1, dc.frame_layers):
            layers += [_sn(nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1), sn),
                       make_norm(dc.frame_norm, widths[i]), nn.LeakyReLU(LEAK, inplace=True)]
        last = widths[dc.frame_layers - 1]
        # pix2pix's 70×70 PatchGAN tail: one stride-1 block, then a 1-channel conv
        layers += [_sn(nn.Conv2d(last, widths[dc.frame_layers], 4, 1, 1), sn),
                   make_norm(dc.frame_norm, widths[dc.frame_layers]),
                   nn.LeakyReLU(LEAK, inplace=True),
                   _sn(nn.Conv2d(widths[dc.frame_layers], 1, 4, 1, 1), sn)]
        self.net = nn.Sequential(*layers)

    def features(self, target: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """Every hidden block's activations for (target, frames) pairs, for feature matching."""
        feats: list[torch.Tensor] = []
        _run_collecting(self.net[:-1], self._pairs(target, frames), feats)
        return feats

    def forward(self, target: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Patch logits for each (target, frame) pair."""
        out = self.net(self._pairs(target, frames))
        return out if frames.dim() == 4 else out.unflatten(0, frames.shape[:2])

    def _pairs(self, target: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """[target; frame] for every frame, flattened to (N, 6, H, W) after shape checks."""
        check_image("target", target, self.resolution)
        if frames.dim() == 4:
            check_image("frames", frames, self.resolution)
            if frames.shape[0] != target.shape[0]:
                raise InputShapeError(f"frames batch {frames.shape[0]} != target batch "
                                      f"{target.shape[0]}")
            return torch.cat([target, frames], 1)
        check_frames("frames", frames, self.resolution)
        b, t = frames.shape[:2]
        if target.shape[0] != b:
            raise InputShapeError(f"frames batch {b} != target batch {target.shape[0]}")
        tgt = target.unsqueeze(1).expand(b, t, *target.shape[1:])
        return torch.cat([tgt, frames], 2).flatten(0, 1)


class ClipDiscriminator(nn.Module):
    """D_T: a whole clip (B, T, 3, H, W) + its conditioning ASD (B, T, D) → logits (B,)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dc = config.discriminator
        self.kind = dc.clip_kind
        self.score = dc.clip_score
        self.resolution = config.resolution
        self.dyn_dim = config.dyn_dim
        self.with_diff = dc.clip_input == "frames+diff"
        c_frames = 6 if self.with_diff else 3
        sn, base = dc.spectral_norm, dc.clip_base_width
        levels = config.levels
        widths = [min(base * 2 ** max(0, i - max(0, levels - 4)), base * 8)
                  for i in range(levels)]
        if self.kind == "lstm":
            layers: list[nn.Module] = []
            c_in = c_frames
            for i, w in enumerate(widths):
                layers.append(_sn(nn.Conv2d(c_in, w, 4, 2, 1), sn))
                if i > 0:
                    layers.append(make_norm(dc.frame_norm, w))
                layers.append(nn.LeakyReLU(LEAK, inplace=True))
                c_in = w
            self.cnn = nn.Sequential(*layers)
            self.proj = _sn(nn.Linear(c_in * 16, dc.clip_hidden), sn)
            self.lstm = nn.LSTM(dc.clip_hidden + config.dyn_dim, dc.clip_hidden,
                                batch_first=True)
            self.head = _sn(nn.Linear(dc.clip_hidden, 1), sn)
        else:
            self.dyn_proj = _sn(nn.Linear(config.dyn_dim, dc.clip_dyn_channels), sn)
            self.stem = _sn(nn.Conv3d(c_frames, widths[0], (3, 4, 4), (1, 2, 2), (1, 1, 1)), sn)
            blocks: list[nn.Module] = []
            c_in = widths[0] + dc.clip_dyn_channels
            for w in widths[1:]:
                blocks += [_sn(nn.Conv3d(c_in, w, (3, 4, 4), (1, 2, 2), (1, 1, 1)), sn),
                           _norm3d(dc.frame_norm, w), nn.LeakyReLU(LEAK, inplace=True)]
                c_in = w
            self.blocks = nn.Sequential(*blocks)
            self.head3d = _sn(nn.Conv3d(c_in, 1, (3, 4, 4), 1, (1, 0, 0)), sn)
        self.act = nn.LeakyReLU(LEAK)

    def forward(self, frames: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """One realism-and-match logit per clip (B,)."""
        return self._run(frames, d, None)

    def features(self, frames: torch.Tensor, d: torch.Tensor) -> list[torch.Tensor]:
        """Every hidden block's activations (per-frame CNN and LSTM, or 3-D blocks)."""
        feats: list[torch.Tensor] = []
        self._run(frames, d, feats)
        return feats

    def _run(self, frames: torch.Tensor, d: torch.Tensor,
             feats: list[torch.Tensor] | None) -> torch.Tensor:
        check_frames("frames", frames, self.resolution)
        b, t = frames.shape[:2]
        if d.shape != (b, t, self.dyn_dim):
            raise InputShapeError(f"dynamics must be {(b, t, self.dyn_dim)} to match the "
                                  f"frames, got {tuple(d.shape)}")
        if self.with_diff:
            # frame t minus frame t-1 (zero for the first): the motion, independent of looks
            diff = torch.cat([torch.zeros_like(frames[:, :1]), frames.diff(dim=1)], 1)
            frames = torch.cat([frames, diff], 2)
        if self.kind == "lstm":
            x = _run_collecting(self.cnn, frames.flatten(0, 1), feats)
            per_frame = self.act(self.proj(x.flatten(1)))
            out, _ = self.lstm(torch.cat([per_frame.unflatten(0, (b, t)), d], -1))
            if feats is not None:
                feats += [per_frame, out]
            logits = self.head(out).squeeze(-1)  # (B, T): a verdict after every frame
            return logits[:, -1] if self.score == "last" else logits.mean(1)
        x = self.act(self.stem(frames.transpose(1, 2)))  # (B, C, T, H/2, W/2)
        if feats is not None:
            feats.append(x)
        dyn = self.dyn_proj(d).transpose(1, 2)[..., None, None]
        x = torch.cat([x, dyn.expand(-1, -1, -1, *x.shape[-2:])], 1)
        x = self.head3d(_run_collecting(self.blocks, x, feats))  # (B, 1, T, 1, 1)
        logits = x.flatten(1)
        return logits[:, -1] if self.score == "last" else logits.mean(1)


class Discriminators(nn.Module):
    """D_S and D_T together, so they save, load and move as one module."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.frame = FrameDiscriminator(config)
        self.clip = ClipDiscriminator(config)


def build_discriminators(config: ModelConfig) -> Discriminators:
    """D_S and D_T for a model config (training only)."""
    return Discriminators(config)
