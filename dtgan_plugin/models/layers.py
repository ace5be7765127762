"""Small building blocks shared by the encoder, the generators and the discriminators."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DtganError

LEAK = 0.2


class InputShapeError(DtganError, ValueError):
    """A tensor of the wrong shape or size passed to a model (also a ValueError)."""


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer by name: none, batch, group or instance."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        # 8 groups when they divide evenly: per-sample statistics like InstanceNorm, cheaper on CPU
        groups = 8 if channels % 8 == 0 else 1
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {kind!r}")


def down_conv(c_in: int, c_out: int, kernel: int, *, bias: bool = True) -> nn.Conv2d:
    """A stride-2 conv that halves an even H and W (kernel 3 or 4, padding 1)."""
    return nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1, bias=bias)


class Up(nn.Module):
    """Doubles H and W: a 4×4/3×3 transposed conv, or nearest upsampling + 3×3 conv."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mode: str, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.mode = mode
        if mode == "deconv":
            self.conv: nn.Module = nn.ConvTranspose2d(
                c_in, c_out, kernel, stride=2, padding=1, output_padding=kernel % 2, bias=bias)
        elif mode == "nearest":
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
        else:
            raise ValueError(f"unknown upsample mode {mode!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → (N, C_out, 2H, 2W)."""
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


class FiLM(nn.Module):
    """Feature-wise modulation x·(1 + γ(d)) + β(d), one (γ, β) per channel and frame."""

    def __init__(self, dyn_dim: int, channels: int, init_std: float = 1e-2) -> None:
        super().__init__()
        self.channels = channels
        self.proj = nn.Linear(dyn_dim, 2 * channels)
        # start close to the identity modulation, but not at it, so gradients flow immediately
        nn.init.normal_(self.proj.weight, std=init_std)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W), d (N, D) → (N, C, H, W)."""
        gamma, beta = self.proj(d).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        # one fused pass over x (the (N, C, 1, 1) terms are tiny); ~2.5x faster than x + β first
        return torch.addcmul(beta, x, gamma + 1.0)


def bcast_add(x: torch.Tensor, per_target: torch.Tensor, frames: int) -> torch.Tensor:
    """Add a per-target map (B, C, H, W) to per-frame maps (B·T, C, H, W) without expanding it."""
    if per_target.shape[0] * frames != x.shape[0]:
        raise InputShapeError(f"cannot broadcast {tuple(per_target.shape)} over {tuple(x.shape)}")
    b = per_target.shape[0]
    if frames == 1 or b == 1:
        # plain 4-D broadcasting (over the batch when one target drives every frame)
        return x + per_target
    out = x.unflatten(0, (b, frames)) + per_target.unsqueeze(1)
    return out.flatten(0, 1)


def smoothstep(t):  # type: ignore[no-untyped-def]
    """3t² − 2t³ of ``t`` clipped to [0, 1], for torch tensors and numpy arrays alike."""
    t = t.clip(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def expand_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, ...) → (B·T, ...) by repeating each item T times (a copy only when T > 1)."""
    if frames == 1:
        return x
    return x.unsqueeze(1).expand(x.shape[0], frames, *x.shape[1:]).flatten(0, 1)


def check_dynamics(d: torch.Tensor, dim: int) -> None:
    """Raise InputShapeError unless ``d`` is (B, T, dim) dynamics."""
    if d.dim() != 3 or d.shape[-1] != dim:
        raise InputShapeError(f"dynamics must be (B, T, {dim}), got {tuple(d.shape)}")


def check_frames(name: str, x: torch.Tensor, resolution: int | None = None) -> None:
    """Raise ValueError unless x is (B, T, 3, H, W) at the model's resolution."""
    if x.dim() != 5 or x.shape[2] != 3:
        raise InputShapeError(f"{name} must be (B, T, 3, H, W), got {tuple(x.shape)}")
    if resolution is not None and (x.shape[-1] != resolution or x.shape[-2] != resolution):
        raise InputShapeError(f"{name} must be {resolution}x{resolution} (the model's resolution), "
                         f"got {x.shape[-1]}x{x.shape[-2]}; resize frames before calling")


def check_image(name: str, x: torch.Tensor, resolution: int | None = None,
                channels: int = 3) -> None:
    """Raise ValueError unless x is (B, channels, H, W) at the model's resolution."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise InputShapeError(f"{name} must be (B, {channels}, H, W), got {tuple(x.shape)}")
    if resolution is not None and (x.shape[-1] != resolution or x.shape[-2] != resolution):
        raise InputShapeError(f"{name} must be {resolution}x{resolution} (the model's resolution), "
                         f"got {x.shape[-1]}x{x.shape[-2]}; resize it before calling")
