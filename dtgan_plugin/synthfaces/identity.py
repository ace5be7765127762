"""Face identities: the :class:`Identity` batch and how identities are sampled."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from ..errors import OptionError
from .counter import _STREAM_IDENTITY, _Cols, _hash_uniforms
from .params import _as_index_array, _check_int

@dataclass
class Identity:
    """Appearance parameters of ``N`` faces; every field is a tensor with leading dim ``N``.

    Scalars are ``(N,)``, colours ``(N, 3)`` RGB in [0, 1], flags ``(N,)`` of 0.0 or 1.0.
    Index with ``faces[i]`` / ``faces[a:b]`` / ``faces[index_tensor]`` (always keeps the
    batch dim), concatenate with :meth:`cat`, serialise with :meth:`to_dict`.
    """

    head_w: Tensor         # head half-width
    head_h: Tensor         # head half-height
    jaw: Tensor            # 0 round .. 1 narrow jaw
    skin: Tensor
    hair: Tensor
    hair_length: Tensor    # 0 short .. 1 shoulder length
    fringe: Tensor         # 0 high hairline .. 1 low fringe
    hair_volume: Tensor
    hair_wave: Tensor      # amplitude of the wavy fringe edge
    hair_part: Tensor      # -1 .. 1 tilt of the fringe (side parting)
    eye_size: Tensor
    eye_spacing: Tensor    # horizontal distance of each eye from the face centre
    eye_height: Tensor     # vertical eye position (face units; negative is up)
    eye_colour: Tensor
    brow_thickness: Tensor
    nose_size: Tensor
    nose_height: Tensor
    mouth_width: Tensor    # half-width of the mouth at rest
    mouth_height: Tensor
    lip_colour: Tensor
    blush: Tensor          # cheek blush strength
    bg_colour: Tensor
    bg_colour2: Tensor     # the gradient's other end
    bg_angle: Tensor       # gradient direction, radians
    bg_pattern: Tensor     # 0 plain, 1 stripes, 2 dots
    bg_freq: Tensor
    bg_amp: Tensor
    shirt: Tensor
    glasses: Tensor
    glasses_colour: Tensor
    hat: Tensor
    hat_colour: Tensor
    earrings: Tensor

    def __len__(self) -> int:
        return int(self.head_w.shape[0])

    def __getitem__(self, index: Any) -> "Identity":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Identity(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> "Identity":
        """A copy on ``device``."""
        return Identity(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def device(self) -> torch.device:
        """The device the parameters live on."""
        return self.head_w.device

    @classmethod
    def cat(cls, items: Sequence["Identity"]) -> "Identity":
        """Concatenate several batches of identities."""
        if not items:
            raise OptionError("Identity.cat needs at least one Identity")
        return cls(**{f.name: torch.cat([getattr(i, f.name) for i in items])
                      for f in fields(cls)})

    def to_dict(self, index: int | None = None) -> dict[str, Any]:
        """JSON-ready values: lists over the batch, or one face's values with ``index``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            value = value if index is None else value[index]
            out[f.name] = value.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Identity":
        """Inverse of :meth:`to_dict` (a single face's dict gives a batch of one)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise OptionError(f"identity parameters lack {', '.join(missing)}",
                              hint="pass a dict written by Identity.to_dict")
        values = {}
        for n in names:
            t = torch.as_tensor(data[n], dtype=torch.float32)
            single = t.dim() == 0 or (t.dim() == 1 and n in _COLOUR_FIELDS and t.shape[0] == 3)
            values[n] = t.unsqueeze(0) if single else t
        return cls(**values)


_COLOUR_FIELDS = frozenset({"skin", "hair", "eye_colour", "lip_colour", "bg_colour",
                            "bg_colour2", "shirt", "glasses_colour", "hat_colour"})

_SKIN = torch.tensor([[1.00, 0.87, 0.77], [0.97, 0.77, 0.63], [0.85, 0.62, 0.46],
                      [0.66, 0.45, 0.31], [0.45, 0.30, 0.21]])
_HAIR = torch.tensor([[0.08, 0.07, 0.07], [0.24, 0.14, 0.08], [0.45, 0.29, 0.14],
                      [0.86, 0.70, 0.40], [0.66, 0.26, 0.10], [0.60, 0.60, 0.62],
                      [0.90, 0.90, 0.88], [0.20, 0.34, 0.72], [0.86, 0.42, 0.62]])
# common colours drawn more often than the dyed ones
_HAIR_P = torch.tensor([0.22, 0.22, 0.16, 0.12, 0.08, 0.07, 0.05, 0.04, 0.04])
_EYES = torch.tensor([[0.36, 0.20, 0.10], [0.14, 0.09, 0.05], [0.24, 0.45, 0.78],
                      [0.28, 0.55, 0.30], [0.50, 0.56, 0.62], [0.56, 0.44, 0.18]])
_FRAMES = torch.tensor([[0.08, 0.08, 0.08], [0.45, 0.25, 0.10], [0.70, 0.12, 0.15],
                        [0.15, 0.25, 0.60], [0.75, 0.65, 0.35]])

#: number of uniforms one identity consumes (see :func:`_identity_from_uniforms`)
_ID_COLS = 64


def _palette(cols: _Cols, table: Tensor, jitter: float, probs: Tensor | None = None) -> Tensor:
    idx = cols.choice(probs if probs is not None else torch.ones(len(table)))
    return (table[idx] + jitter * (2 * cols.take(3) - 1)).clamp_(0, 1)


def _identity_from_uniforms(u: Tensor) -> Identity:
    """Map a ``(N, _ID_COLS)`` matrix of uniforms in [0, 1) to identities (fixed columns)."""
    c = _Cols(u.float())
    d: dict[str, Tensor] = {}
    d["head_w"] = c.range(0.44, 0.54)
    d["head_h"] = c.range(0.58, 0.67)
    d["jaw"] = c.range(0.0, 1.0)
    # skin: a continuous walk along the palette, with a little per-channel jitter
    t = c.take() * (len(_SKIN) - 1)
    lo = t.floor().long().clamp(max=len(_SKIN) - 2)
    frac = (t - lo).unsqueeze(1)
    d["skin"] = (_SKIN[lo] * (1 - frac) + _SKIN[lo + 1] * frac
                 + 0.03 * (2 * c.take(3) - 1)).clamp_(0, 1)
    d["hair"] = _palette(c, _HAIR, 0.05, _HAIR_P)
    short = c.take() < 0.5
    length = c.take()
    d["hair_length"] = torch.where(short, 0.3 * length, 0.45 + 0.55 * length)
    d["fringe"] = c.range(0.0, 1.0)
    d["hair_volume"] = c.range(0.0, 1.0)
    d["hair_wave"] = c.range(0.0, 1.0)
    d["hair_part"] = c.range(-1.0, 1.0)
    d["eye_size"] = c.range(0.85, 1.2)
    d["eye_spacing"] = c.range(0.19, 0.25)
    d["eye_height"] = c.range(-0.1, -0.03)
    d["eye_colour"] = _palette(c, _EYES, 0.04)
    d["brow_thickness"] = c.range(0.017, 0.03)
    d["nose_size"] = c.range(0.8, 1.3)
    d["nose_height"] = c.range(0.12, 0.18)
    d["mouth_width"] = c.range(0.12, 0.17)
    d["mouth_height"] = c.range(0.33, 0.39)
    lip_red = c.range(0.0, 1.0).unsqueeze(1)
    d["lip_colour"] = (d["skin"] * torch.tensor([0.80, 0.52, 0.52]) * (1 - lip_red)
                       + torch.tensor([0.72, 0.18, 0.22]) * lip_red).clamp_(0, 1)
    d["blush"] = c.range(0.0, 1.0)
    d["bg_colour"] = 0.12 + 0.83 * c.take(3)
    d["bg_colour2"] = (d["bg_colour"] + 0.5 * (c.take(3) - 0.5)).clamp_(0, 1)
    d["bg_angle"] = c.range(0.0, 2 * math.pi)
    d["bg_pattern"] = c.choice(torch.tensor([0.4, 0.3, 0.3])).float()
    d["bg_freq"] = c.range(2.0, 5.0)
    d["bg_amp"] = c.range(0.04, 0.12)
    d["shirt"] = 0.08 + 0.84 * c.take(3)
    d["glasses"] = c.flag(0.3)
    d["glasses_colour"] = _palette(c, _FRAMES, 0.04)
    d["hat"] = c.flag(0.15)
    d["hat_colour"] = 0.08 + 0.84 * c.take(3)
    d["earrings"] = c.flag(0.2)
    assert c.i <= _ID_COLS, c.i  # the layout is part of the format: columns never move
    return Identity(**d)


def sample_identities(n: int, generator: torch.Generator | None = None) -> Identity:
    """``n`` random identities drawn from ``generator`` (deterministic for a seeded one)."""
    _check_int("n", n, 1)
    u = torch.rand(n, _ID_COLS, generator=generator)
    return _identity_from_uniforms(u)


def identities_for(seed: int, indices: Sequence[int] | Tensor) -> Identity:
    """Identity number ``i`` of the world ``seed``, for each ``i`` (independent of the others).

    Identity ``(seed, i)`` is the same whichever batch it is drawn in; this is what datasets,
    ``dtgan data synth`` and the evaluation use to name a face by its index.
    """
    idx = _as_index_array(indices)
    return _identity_from_uniforms(_hash_uniforms(seed, _STREAM_IDENTITY, [idx], _ID_COLS))
