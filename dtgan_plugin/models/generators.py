"""Generators: a target image (appearance) + per-frame dynamics d_t → video frames.

Both variants share one U-Net trunk and one interface (:class:`Generator`):

* ``encode_target(target)`` runs the target encoder once per video and returns
  :class:`TargetFeatures`;
* ``render(feats, d)`` turns dynamics (B, T, D) into frames (B, T, 3, H, W) in [-1, 1], for
  every chunk of the video, reusing the target features;
* ``forward(target, d) = render(encode_target(target), d)``.

Why the trunk is cheap per frame: a U-Net concatenates each target-encoder (skip) feature with
the decoder feature and convolves the result. Convolution is linear, so conv([x; s]) =
conv_x(x) + conv_s(s), and conv_s(s) depends on the target only. ``encode_target`` computes
those skip terms once and ``render`` adds them to every frame by broadcasting (no copies); the
per-frame work is just the decoder path driven by d_t. The maths is exactly a U-Net's.

Variants:

* ``synth`` (the paper's kind): the trunk outputs a residual r and the frame is
  tanh(atanh(target) + r) (``synth_residual``), or plain tanh(r) as in pix2pix.
* ``warp`` (default): the trunk predicts a flow field f, an occlusion mask m and a residual r;
  frame = tanh(atanh(warp(target, f)) + (1 − m)·r). ``warp`` samples the target with 4-D
  ``grid_sample`` (ONNX-exportable), so the target's own pixels are reused wherever they moved.

Both start as (nearly) the identity map, because their output heads have small weights: at
init the output is the target whatever d is, a far better starting point than a blank decoder.
With ``identity_at_rest`` the identity at d = 0 is exact for good: ``encode_target`` also runs
the heads once at d = 0 and ``render`` subtracts those per-target outputs (the flow's
pre-activation and the residual) from every frame's, so the heads describe change only. This is
the generator's counterpart of ASD, which subtracts the static sequence's encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import (LEAK, FiLM, InputShapeError, Up, bcast_add, check_dynamics, check_image,
                     down_conv, expand_frames, make_norm)

_EPS = 1e-3  # atanh(±(1 − eps)) ≈ ±3.8: keeps the logit of saturated pixels finite


def _logit(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh(x.clamp(-1.0 + _EPS, 1.0 - _EPS))


def _is_channels_last(module: nn.Module) -> bool:
    w = next(module.parameters())
    return w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) \
        and not w.is_contiguous()


def _fmt(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class FeatureBundle:
    """What the per-target feature bundles share: a batch size, and copies made by applying one
    function to every tensor (``_map``, which each bundle defines)."""

    image: torch.Tensor

    @property
    def batch(self) -> int:
        """Number of target images B."""
        return int(self.image.shape[0])

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Any":
        raise NotImplementedError

    def detach(self) -> "Any":
        """A copy cut from the autograd graph."""
        return self._map(torch.Tensor.detach)

    def to(self, device: torch.device | str) -> "Any":
        """A copy on another device."""
        return self._map(lambda t: t.to(device))

    def expand(self, batch: int) -> "Any":
        """One target's features repeated for ``batch`` clips (views, no copies)."""
        if self.batch == batch:
            return self
        if self.batch != 1:
            raise InputShapeError(f"target features hold {self.batch} images but the dynamics "
                                  f"have batch {batch}; pass one target or one per clip")
        return self._map(lambda t: t.expand(batch, *t.shape[1:]))


@dataclass
class TargetFeatures(FeatureBundle):
    """Everything the generator needs from one target image, computed once per video.

    ``image`` is the target (B, 3, H, W) in [-1, 1]; ``bottleneck`` the target's term of the
    bottleneck conv (B, C, 4, 4); ``skips`` the target's terms of each decoder scale, coarse to
    fine (the last one at full resolution); ``rest`` the generator's anchored head outputs at
    zero dynamics (empty unless ``identity_at_rest``).
    """

    image: torch.Tensor
    bottleneck: torch.Tensor
    skips: list[torch.Tensor | None] = field(default_factory=list)
    rest: dict[str, torch.Tensor] = field(default_factory=dict)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TargetFeatures":
        """A copy with ``fn`` applied to every tensor."""
        return TargetFeatures(fn(self.image), fn(self.bottleneck),
                              [None if s is None else fn(s) for s in self.skips],
                              {k: fn(v) for k, v in self.rest.items()})


class UNetTrunk(nn.Module):
    """Target encoder + dynamics-driven decoder; outputs ``out_channels`` maps at full size.

    Also returns the finest hidden decoder feature (half resolution) for extra heads.
    """

    def __init__(self, config: ModelConfig, out_channels: int) -> None:
        super().__init__()
        g = config.generator_cfg
        n = config.levels
        dim = config.dyn_dim
        k = g.kernel_size
        self.levels = n
        self.dyn_channels = g.dyn_channels
        self.widths = [min(g.base_width * 2 ** i, g.max_width) for i in range(n)]
        w = self.widths
        # target encoder: e_i at resolution / 2^(i+1); no norm on the first block (pix2pix)
        self.down = nn.ModuleList()
        self.down_norms = nn.ModuleList()
        c_in = 3
        for i in range(n):
            self.down.append(down_conv(c_in, w[i], k))
            self.down_norms.append(nn.Identity() if i == 0 else make_norm(g.norm, w[i]))
            c_in = w[i]
        # bottleneck: conv([e_{n-1}; dynamics map]) split into its target and frame terms
        self.dyn_map = nn.Linear(dim, g.dyn_channels * 16)
        self.bott_target = nn.Conv2d(w[n - 1], w[n - 1], 3, padding=1)
        self.bott_dyn = nn.Conv2d(g.dyn_channels, w[n - 1], 3, padding=1, bias=False)
        self.bott_norm = make_norm(g.norm, w[n - 1])
        # decoder: up[j] takes level j+1 → level j (j = n-2 … 0), then a final up to full size
        self.up = nn.ModuleList()
        self.up_skip = nn.ModuleList()
        self.up_norms = nn.ModuleList()
        for j in range(n - 1):
            self.up.append(Up(w[j + 1], w[j], k, g.upsample))
            # e_{n-1} already entered at the bottleneck; other levels get their skip here
            self.up_skip.append(Up(w[j + 1], w[j], k, g.upsample, bias=False)
                                if j + 1 < n - 1 else nn.Identity())
            self.up_norms.append(make_norm(g.norm, w[j]))
        self.films = nn.ModuleList(FiLM(dim, c) for c in [w[n - 1], *reversed(w[:n - 1])]) \
            if g.film else None
        # the full-size layer always uses 4×4 kernels: a 3×3 stride-2 transposed conv covers
        # output pixels unevenly (checkerboard), which would show directly in the frames
        self.out_up = Up(w[0], out_channels, 4, g.upsample)
        self.out_skip = Up(w[0], out_channels, 4, g.upsample, bias=False)
        self.out_image = nn.Conv2d(3, out_channels, 3, padding=1, bias=False)
        self.act = nn.LeakyReLU(LEAK)
        for layer in (self.out_up.conv, self.out_skip.conv, self.out_image):
            nn.init.normal_(layer.weight, std=g.head_init_std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def encode(self, target: torch.Tensor) -> TargetFeatures:
        """Target image (B, 3, H, W) → its per-target terms of every decoder scale."""
        cl = _is_channels_last(self)
        x = _fmt(target, cl)
        feats = []
        for conv, norm in zip(self.down, self.down_norms):
            x = self.act(norm(conv(x)))
            feats.append(x)
        n = self.levels
        bottleneck = self.bott_target(feats[n - 1])
        # skips[j] joins the decoder at level j (coarse → fine order below)
        skips: list[torch.Tensor | None] = []
        for j in range(n - 2, -1, -1):
            skips.append(self.up_skip[j](feats[j + 1]) if j + 1 < n - 1 else None)
        skips.append(self.out_skip(feats[0]) + self.out_image(_fmt(target, cl)))
        return TargetFeatures(image=target, bottleneck=bottleneck, skips=skips)

    def decode(self, feats: TargetFeatures,
               d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of B targets + dynamics (B·T, D) → (maps (B·T, C, H, W), last hidden)."""
        cl = _is_channels_last(self)
        n = self.levels
        frames = d.shape[0] // feats.batch
        dmap = self.dyn_map(d).view(d.shape[0], self.dyn_channels, 4, 4)
        x = bcast_add(self.bott_dyn(_fmt(dmap, cl)), feats.bottleneck, frames)
        x = self.bott_norm(x)
        if self.films is not None:
            x = self.films[0](x, d)
        x = self.act(x)
        for i, j in enumerate(range(n - 2, -1, -1)):
            y = self.up[j](x)
            skip = feats.skips[i]
            if skip is not None:
                y = bcast_add(y, skip, frames)
            y = self.up_norms[j](y)
            if self.films is not None:
                y = self.films[i + 1](y, d)
            x = self.act(y)
        out = bcast_add(self.out_up(x), feats.skips[-1], frames)
        return out, x


class Generator(nn.Module):
    """Interface of both generators: ``encode_target`` once, ``render`` per chunk."""

    kind = ""
    # head outputs that ``identity_at_rest`` anchors at zero dynamics
    anchored: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig, out_channels: int) -> None:
        super().__init__()
        self.config = config
        self.resolution = config.resolution
        self.dyn_dim = config.dyn_dim
        self.at_rest = config.generator_cfg.identity_at_rest
        self.trunk = UNetTrunk(config, out_channels)

    def encode_target(self, target: torch.Tensor) -> TargetFeatures:
        """Target image (B, 3, H, W) in [-1, 1] → features reused for every chunk."""
        check_image("target", target, self.resolution)
        feats = self.trunk.encode(target)
        if self.at_rest:
            zero = target.new_zeros(target.shape[0], self.dyn_dim)
            heads = self._heads(*self.trunk.decode(feats, zero))
            feats.rest = {k: heads[k] for k in self.anchored}
        return feats

    def render(self, feats: TargetFeatures, d: torch.Tensor, *,
               return_aux: bool = False,
               ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Dynamics (B, T, D) → frames (B, T, 3, H, W) in [-1, 1] (+ intermediate maps)."""
        check_dynamics(d, self.dyn_dim)
        b, t = d.shape[:2]
        feats = feats.expand(b)
        if t == 0:
            empty = d.new_zeros(b, 0, 3, self.resolution, self.resolution)
            return (empty, {}) if return_aux else empty
        heads = self._heads(*self.trunk.decode(feats, d.reshape(b * t, self.dyn_dim)))
        for name, rest in feats.rest.items():
            heads[name] = bcast_add(heads[name], -rest, t)
        frames, aux = self._compose(feats, heads, t)
        frames = frames.unflatten(0, (b, t))
        if return_aux:
            return frames, {k: v.unflatten(0, (b, t)) for k, v in aux.items()}
        return frames

    def forward(self, target: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Target (B, 3, H, W) + dynamics (B, T, D) → frames (B, T, 3, H, W)."""
        out = self.render(self.encode_target(target), d)
        assert isinstance(out, torch.Tensor)
        return out

    def _heads(self, maps: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trunk's outputs split into named head outputs (before their activations)."""
        raise NotImplementedError

    def _compose(self, feats: TargetFeatures, heads: dict[str, torch.Tensor],
                 frames: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


class SynthGenerator(Generator):
    """The paper's kind: U-Net synthesis, as a residual over the target (identity at init)."""

    kind = "synth"
    anchored = ("residual",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, out_channels=3)
        self.residual = config.generator_cfg.synth_residual

    def _heads(self, maps: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"residual": maps}

    def _compose(self, feats: TargetFeatures, heads: dict[str, torch.Tensor],
                 frames: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        maps = heads["residual"]
        if not self.residual:
            return torch.tanh(maps), {"residual": maps}
        base = _logit(expand_frames(feats.image, frames))
        return torch.tanh(base + maps), {"residual": maps}


class WarpGenerator(Generator):
    """Flow + occlusion mask + residual, composed with the warped target (the default)."""

    kind = "warp"
    # the mask only gates the residual, which is zero at rest anyway, so it stays free
    anchored = ("flow", "residual")

    def __init__(self, config: ModelConfig) -> None:
        # trunk output channels: 1 mask logit + 3 residual; flow comes from the half-size feature
        super().__init__(config, out_channels=4)
        g = config.generator_cfg
        self.max_flow = g.max_flow
        self.flow = nn.Conv2d(self.trunk.widths[0], 2, 3, padding=1)
        # zero flow at init: the warp is then exactly the identity (the trunk still gets
        # gradients through the mask/residual maps, and this layer's weights through its input)
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)
        res = config.resolution
        eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        # identity sampling grid (x, y in [-1, 1]); derived from the resolution, not saved
        self.register_buffer("base_grid",
                             F.affine_grid(eye, [1, 3, res, res], align_corners=False),
                             persistent=False)

    def _heads(self, maps: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        mask_logit, residual = maps.split([1, 3], dim=1)
        return {"flow": self.flow(hidden), "mask": mask_logit, "residual": residual}

    def _compose(self, feats: TargetFeatures, heads: dict[str, torch.Tensor],
                 frames: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        res = self.resolution
        flow = self.max_flow * torch.tanh(heads["flow"])
        # a smooth flow at half size, upsampled: cheaper and less prone to tearing the face
        flow = F.interpolate(flow, size=(res, res), mode="bilinear", align_corners=False)
        grid = self.base_grid.to(flow.dtype) + flow.permute(0, 2, 3, 1)
        image = expand_frames(feats.image, frames).to(flow.dtype)
        warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
        residual = heads["residual"]
        mask = torch.sigmoid(heads["mask"])
        out = torch.tanh(_logit(warped) + (1.0 - mask) * residual)
        return out, {"flow": flow, "mask": mask, "residual": residual, "warped": warped}


GENERATORS: dict[str, type[Generator]] = {"warp": WarpGenerator, "synth": SynthGenerator}


def build_generator(config: ModelConfig) -> Generator:
    """The generator variant the config names (``geowarp`` lives in :mod:`.geowarp`)."""
    if config.generator == "geowarp":
        from .geowarp import GeoWarpGenerator

        return GeoWarpGenerator(config)  # type: ignore[return-value]
    return GENERATORS[config.generator](config)
