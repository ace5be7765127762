"""DTGAN: the dynamics encoder and the generator as one module, plus its fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .config import ModelConfig
from .encoder import DynamicsEncoder
from .generators import Generator, build_generator
from .layers import check_frames, check_image


class DTGAN(nn.Module):
    """Dynamics Transfer GAN for inference: ``.encoder`` (ASD) and ``.generator``.

    Frames and images are in [-1, 1] at ``config.resolution``. The discriminators are built
    separately (:func:`~dtgan_plugin.models.build_discriminators`) since only training needs
    them.

    Example::

        model = build_model(ModelConfig())
        # target (B, 3, 64, 64) and source (B, T, 3, 64, 64) in [-1, 1]
        video = model(target, source)           # (B, T, 3, 64, 64)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DynamicsEncoder(config)
        self.generator: Generator = build_generator(config)
        self._fp_key: tuple[Any, ...] | None = None
        self._fp: str = ""

    @property
    def resolution(self) -> int:
        """Square frame size the model works at."""
        return self.config.resolution

    @property
    def dyn_dim(self) -> int:
        """Size D of one dynamics vector."""
        return self.config.dyn_dim

    @property
    def uses_landmarks(self) -> bool:
        """True when the encoder reads landmarks (and geowarp the target's landmarks)."""
        return self.config.uses_landmarks

    @property
    def needs_target_landmarks(self) -> bool:
        """True when the generator needs the target's landmarks."""
        return bool(getattr(self.generator, "needs_landmarks", False))

    def dynamics(self, source: torch.Tensor, reference_index: int = 0) -> torch.Tensor:
        """Dynamics (B, T, D) of whole source clips (B, T, 3, H, W), or of their landmarks
        (B, T, 68, 2) for a landmark model, against one of their frames."""
        return self.encoder.extract(source, reference_index)

    def forward(self, target: torch.Tensor, source: torch.Tensor,
                reference_index: int = 0, *,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """Target (B, 3, H, W) moved like source → frames (B, T, 3, H, W).

        ``source`` is frames (B, T, 3, H, W), or landmarks (B, T, 68, 2) for a landmark model;
        ``target_landmarks`` (B, 68, 2) in the target's pixels is needed by ``geowarp``.
        """
        check_image("target", target, self.resolution)
        if not self.uses_landmarks:
            check_frames("source", source, self.resolution)
        d = self.dynamics(source, reference_index)
        if self.needs_target_landmarks:
            return self.generator(target, d, target_landmarks)
        return self.generator(target, d)

    def to_channels_last(self) -> "DTGAN":
        """Switch conv weights to channels-last (faster on CPU with oneDNN); returns self."""
        return self.to(memory_format=torch.channels_last)

    def fingerprint(self) -> str:
        """A short sha256 of the config and weights (float32 values), naming this model.

        Dynamics carry it so a generator can refuse vectors made by another encoder. Cached
        until a weight changes (in-place updates bump the tensors' version counters).
        """
        state = self.state_dict()
        key = tuple((k, v.data_ptr(), v._version, v.dtype, str(v.device))
                    for k, v in state.items())
        if key != self._fp_key:
            self._fp = weights_fingerprint(self.config, state)
            self._fp_key = key
        return self._fp


def weights_fingerprint(config: ModelConfig, state: Mapping[str, torch.Tensor]) -> str:
    """sha256 (16 hex digits) of the config JSON and every tensor's name, shape and values."""
    h = hashlib.sha256(config.to_json().encode())
    for name in sorted(state):
        t = state[name].detach()
        if t.is_floating_point():
            # equal values hash alike whatever dtype/device hold them (fp16 → fp32 is exact)
            t = t.to(torch.float32)
        t = t.to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def build_model(config: ModelConfig | Mapping[str, Any] | None = None) -> DTGAN:
    """A freshly initialised DTGAN from a config (a ModelConfig, a dict, or None for defaults)."""
    if config is None:
        config = ModelConfig()
    elif isinstance(config, Mapping):
        config = ModelConfig.from_dict(config)
    elif not isinstance(config, ModelConfig):
        raise ConfigError(f"build_model needs a ModelConfig or a dict, got {type(config).__name__}")
    return DTGAN(config)
