"""``synthfaces``: procedural cartoon faces with exact, per-frame ground truth.

A deterministic, vectorised torch renderer of cartoon faces (DESIGN.md §8). Every face is an
:class:`Identity` (head shape, skin, hair, eyes, nose, mouth, background, accessories) and
every frame a vector of :data:`PARAM_NAMES` (expression and head motion). Because the pixels
are a pure function of (identity, parameters), **identity B rendered with the dynamics of clip
A** is exact ground truth for cross-identity transfer::

    >>> g = torch.Generator().manual_seed(0)
    >>> faces = sample_identities(2, g)
    >>> params, labels = sample_dynamics(1, 16, g, classes=["happy"])
    >>> truth = render(faces[1:], params, 64)     # B moving like clip A: (1, 16, 3, 64, 64)

Shapes are drawn as signed-distance fields on a coordinate grid and anti-aliased with a
smoothstep across about one pixel, so they stay smooth at any resolution. Small features are
evaluated only inside their bounding box (exactly: outside it their masks are zero), which is
what makes the renderer fast enough to feed training on the fly.

Coordinates: image ``y`` runs from -1 (top) to 1 (bottom), ``x`` from ``-W/H`` to ``W/H``.
Face coordinates ``(u, v)`` are the image coordinates around the head centre with the head
motion (shift, roll, scale) undone, in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import OptionError

__all__ = [
    "PARAM_NAMES", "PARAM_RANGES", "EXPRESSION_PARAMS", "MOTION_PARAMS", "CLASS_NAMES",
    "LANDMARK_NAMES", "SPLITS", "Identity", "sample_identities", "identities_for",
    "apex_vectors", "sample_dynamics", "clip_dynamics", "neutral_params", "render",
    "render_pair", "render_neutral", "landmarks", "split_of", "split_identities",
    "SynthFaceClips",
]

#: Per-frame parameters, in the order of the last axis of a ``(N, T, P)`` params tensor.
PARAM_NAMES: tuple[str, ...] = (
    "smile",         # -1 frown (corners down) .. 1 smile (corners up, wider mouth)
    "mouth_open",    # 0 closed .. 1 jaw dropped
    "lip_stretch",   # -1 pucker (narrow "O") .. 1 horizontal stretch (fear)
    "brows_up",      # -1 lowered .. 1 raised
    "brows_knit",    # -1 inner ends raised (sad) .. 1 inner ends lowered and drawn in (anger)
    "blink",         # 0 open .. 1 eyelids closed
    "eye_squint",    # -1 eyes wide open .. 1 squinting
    "nose_wrinkle",  # 0 .. 1 nose wrinkled, upper lip raised (disgust)
    "shift_x",       # head translation, image units (1 = half the image height)
    "shift_y",
    "roll",          # in-plane head rotation, radians
    "nod",           # -1 head up .. 1 head down (features shift and compress vertically)
    "scale",         # relative head size change (0 = as at rest)
)
NUM_PARAMS = len(PARAM_NAMES)
EXPRESSION_PARAMS: tuple[str, ...] = PARAM_NAMES[:8]
MOTION_PARAMS: tuple[str, ...] = PARAM_NAMES[8:]
#: Valid (low, high) of every parameter; the renderer clamps to these.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "smile": (-1.0, 1.0), "mouth_open": (0.0, 1.0), "lip_stretch": (-1.0, 1.0),
    "brows_up": (-1.0, 1.0), "brows_knit": (-1.0, 1.0), "blink": (0.0, 1.0),
    "eye_squint": (-1.0, 1.0), "nose_wrinkle": (0.0, 1.0), "shift_x": (-0.3, 0.3),
    "shift_y": (-0.3, 0.3), "roll": (-0.5, 0.5), "nod": (-1.0, 1.0), "scale": (-0.3, 0.3),
}
_PI = {name: i for i, name in enumerate(PARAM_NAMES)}
_LOW = torch.tensor([PARAM_RANGES[n][0] for n in PARAM_NAMES])
_HIGH = torch.tensor([PARAM_RANGES[n][1] for n in PARAM_NAMES])

#: The six basic expressions, in label order.
CLASS_NAMES: tuple[str, ...] = ("happy", "sad", "surprise", "anger", "disgust", "fear")

# Apex of each expression (parameters not named are 0). Head motion that goes with an
# expression (sad: head down, surprise: head back) is part of the apex, so it moves with it.
_APEX: dict[str, dict[str, float]] = {
    "happy": {"smile": 1.0, "mouth_open": 0.35, "lip_stretch": 0.15, "brows_up": 0.15,
              "eye_squint": 0.45, "nod": -0.1},
    "sad": {"smile": -0.85, "lip_stretch": -0.1, "brows_up": 0.1, "brows_knit": -1.0,
            "eye_squint": 0.35, "nod": 0.45},
    "surprise": {"mouth_open": 0.95, "lip_stretch": -0.6, "brows_up": 1.0,
                 "eye_squint": -0.9, "nod": -0.25},
    "anger": {"smile": -0.4, "mouth_open": 0.05, "lip_stretch": 0.25, "brows_up": -0.6,
              "brows_knit": 1.0, "eye_squint": 0.5, "nose_wrinkle": 0.25, "nod": 0.15},
    "disgust": {"smile": -0.55, "mouth_open": 0.12, "brows_up": -0.3, "brows_knit": 0.45,
                "eye_squint": 0.75, "nose_wrinkle": 1.0, "nod": -0.15, "roll": 0.06},
    "fear": {"smile": -0.25, "mouth_open": 0.45, "lip_stretch": 1.0, "brows_up": 0.8,
             "brows_knit": -0.6, "eye_squint": -0.75, "nod": 0.1},
}

#: Named points returned by :func:`landmarks` ("left" is the image's left).
LANDMARK_NAMES: tuple[str, ...] = (
    "head_center", "left_eye", "right_eye", "left_brow", "right_brow", "nose_tip",
    "mouth_left", "mouth_right", "mouth_top", "mouth_bottom", "chin",
)

SPLITS: tuple[str, ...] = ("train", "val", "test")

# where the head sits at rest and how big it is, in image units: a tight, aligned face crop
_HEAD_Y = 0.0
_FACE_SCALE = 1.22
_SHOULDER_Y = 0.86


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

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


class _Cols:
    """Hands out consecutive columns of a uniform matrix, so each field has fixed columns."""

    def __init__(self, u: Tensor) -> None:
        self.u, self.i = u, 0

    def take(self, k: int = 1) -> Tensor:
        out = self.u[:, self.i:self.i + k]
        self.i += k
        return out[:, 0] if k == 1 else out

    def range(self, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * self.take()

    def flag(self, p: float) -> Tensor:
        return (self.take() < p).float()

    def choice(self, probs: Tensor) -> Tensor:
        cdf = probs.cumsum(0) / probs.sum()
        return torch.searchsorted(cdf, self.take().contiguous(), right=True).clamp_(
            max=len(probs) - 1)


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


# --------------------------------------------------------------------------------------------
# Counter-based randomness: uniforms that are a pure function of (seed, stream, keys)
# --------------------------------------------------------------------------------------------

_STREAM_IDENTITY, _STREAM_DYNAMICS, _STREAM_PAIR = 1, 2, 3
_U64 = np.uint64


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 arrays (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _hash_uniforms(seed: int, stream: int, keys: Sequence[np.ndarray], k: int) -> Tensor:
    """A ``(N, k)`` float32 matrix of uniforms in [0, 1) keyed by ``(seed, stream, *keys)``."""
    n = len(keys[0])
    h = np.full(n, _splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0],
                dtype=np.uint64)
    h = _splitmix(h ^ _U64(stream))
    for key in keys:
        h = _splitmix(h ^ key.astype(np.int64).view(np.uint64))
    cols = np.arange(1, k + 1, dtype=np.uint64)
    z = _splitmix(h[:, None] ^ (cols[None, :] * _U64(0xD1B54A32D192ED03)))
    u = (z >> _U64(40)).astype(np.float64) * (1.0 / (1 << 24))  # 24 bits: exact in float32
    return torch.from_numpy(u.astype(np.float32))


def _as_index_array(indices: Sequence[int] | Tensor) -> np.ndarray:
    if isinstance(indices, Tensor):
        return indices.detach().cpu().long().reshape(-1).numpy()
    return np.asarray(list(indices), dtype=np.int64).reshape(-1)


# --------------------------------------------------------------------------------------------
# Dynamics
# --------------------------------------------------------------------------------------------

def apex_vectors() -> Tensor:
    """The ``(6, P)`` apex parameters of :data:`CLASS_NAMES` (row order = label)."""
    out = torch.zeros(len(CLASS_NAMES), NUM_PARAMS)
    for c, name in enumerate(CLASS_NAMES):
        for pname, value in _APEX[name].items():
            out[c, _PI[pname]] = value
    return out


def neutral_params(n: int, frames: int = 1) -> Tensor:
    """``(n, frames, P)`` zeros: the neutral face at rest (every parameter's rest value is 0)."""
    return torch.zeros(n, frames, NUM_PARAMS)


def _class_index(value: int | str) -> int:
    if isinstance(value, str):
        try:
            return CLASS_NAMES.index(value.lower())
        except ValueError:
            raise OptionError(f"unknown expression class {value!r}",
                              hint=f"use one of {', '.join(CLASS_NAMES)}") from None
    if not 0 <= int(value) < len(CLASS_NAMES):
        raise OptionError(f"expression class {value} out of range",
                          hint=f"use 0..{len(CLASS_NAMES) - 1} or a name")
    return int(value)


def _resolve_classes(classes: Any, n: int) -> Tensor | None:
    if classes is None:
        return None
    if isinstance(classes, (int, str)):
        classes = [classes] * n
    if isinstance(classes, Tensor):
        classes = classes.reshape(-1).tolist()
    out = torch.tensor([_class_index(c) for c in classes], dtype=torch.long)
    if len(out) != n:
        raise OptionError(f"classes has {len(out)} entries for {n} clips",
                          hint="pass one class per clip, or a single class for all")
    return out


def _prob(name: str, value: float | bool) -> float:
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise OptionError(f"{name} must be a probability in [0, 1] or a bool, got {value!r}")
    return p


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


#: uniforms per clip (see :func:`_dynamics_from_uniforms`); part of the format
_DYN_COLS = 64
_MOTION_MAX = {"shift_x": 0.035, "shift_y": 0.025, "roll": 0.06, "nod": 0.25, "scale": 0.03}


def _envelope(tau: Tensor, t0: Tensor, d_on: Tensor, hold: Tensor, d_off: Tensor) -> Tensor:
    """Onset–apex–offset intensity over time: 0 before ``t0``, 1 at the apex, back to 0."""
    up = _smoothstep((tau - t0) / d_on)
    down = 1 - _smoothstep((tau - t0 - d_on - hold) / d_off)
    return up * down


def _dynamics_from_uniforms(u: Tensor, frames: int, classes: Tensor | None, reverse: float,
                            speed_change: float, concat: float
                            ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Map ``(N, _DYN_COLS)`` uniforms to per-frame params ``(N, T, P)`` (fixed columns)."""
    n = u.shape[0]
    c = _Cols(u.float())
    k = len(CLASS_NAMES)
    drawn = (c.take() * k).long().clamp_(max=k - 1)
    labels = drawn if classes is None else classes
    intensity = c.range(0.6, 1.0)
    jitter = 0.08 * (2 * c.take(8) - 1)
    timing = c.take(4)
    motion = c.take(30).reshape(n, 5, 2, 3)
    blinks = c.take(6).reshape(n, 2, 3)
    r_rev, r_speed, speed_u, r_cat, second_u, second_int = (c.take() for _ in range(6))
    timing2 = c.take(4)
    assert c.i <= _DYN_COLS, c.i

    apex = apex_vectors()
    tau = torch.linspace(0, 1, frames) if frames > 1 else torch.zeros(1)
    tau = tau.unsqueeze(0)  # (1, T)

    def timings(t: Tensor, fit: bool) -> tuple[Tensor, ...]:
        t0 = 0.15 * t[:, 0]
        d_on = 0.15 + 0.25 * t[:, 1]
        hold = 0.10 + 0.25 * t[:, 2]
        d_off = 0.15 + 0.25 * t[:, 3]
        if fit:  # a concatenated half must be back to neutral before the next one starts
            total = t0 + d_on + hold + d_off
            f = torch.where(total > 0.95, 0.95 / total, torch.ones_like(total))
            t0, d_on, hold, d_off = t0 * f, d_on * f, hold * f, d_off * f
        return tuple(x.unsqueeze(1) for x in (t0, d_on, hold, d_off))

    def apex_of(lbl: Tensor, strength: Tensor, jit: Tensor) -> Tensor:
        a = apex[lbl] * strength.unsqueeze(1)
        a[:, :len(EXPRESSION_PARAMS)] += jit
        a[:, _PI["blink"]] = 0.0  # blinks are drawn separately, as events
        return a

    is_cat = r_cat < concat
    is_speed = r_speed < speed_change
    is_rev = r_rev < reverse
    speed = torch.where(is_speed, torch.exp((2 * speed_u - 1) * math.log(2.0)),
                        torch.ones(n))
    # the second expression of a concatenated clip is always a different class
    second = (labels + 1 + (second_u * (k - 1)).long().clamp_(max=k - 2)) % k
    second = torch.where(is_cat, second, torch.full_like(second, -1))

    t_plain = tau * speed.unsqueeze(1)
    env_plain = _envelope(t_plain, *timings(timing, fit=False))
    env_a = _envelope(tau * 2 * speed.unsqueeze(1), *timings(timing, fit=True))
    env_b = _envelope((tau - 0.5).clamp(min=0) * 2 * speed.unsqueeze(1),
                      *timings(timing2, fit=True))
    env1 = torch.where(is_cat.unsqueeze(1), env_a, env_plain)
    env2 = torch.where(is_cat.unsqueeze(1), env_b, torch.zeros_like(env_b))
    apex1 = apex_of(labels, intensity, jitter)
    apex2 = apex_of(second.clamp(min=0), 0.6 + 0.4 * second_int, jitter)
    params = env1.unsqueeze(2) * apex1.unsqueeze(1) + env2.unsqueeze(2) * apex2.unsqueeze(1)

    # smooth head motion: two sinusoids per motion parameter, anchored at 0 on frame 0
    for m, name in enumerate(MOTION_PARAMS):
        amp = _MOTION_MAX[name] * motion[:, m, :, 0]
        freq = 0.3 + 1.2 * motion[:, m, :, 1]
        phase = 2 * math.pi * motion[:, m, :, 2]
        wave = torch.sin(2 * math.pi * freq.unsqueeze(2) * tau.unsqueeze(1)
                         + phase.unsqueeze(2)) - torch.sin(phase).unsqueeze(2)
        params[:, :, _PI[name]] += (amp.unsqueeze(2) * wave).sum(1) * (
            1 - 2 * (motion[:, m, 0, 2] > 0.5).float()).unsqueeze(1)

    # blinks are events in frames, not clip fractions: a blink lasts ~3-4 frames at 25 fps
    t_idx = torch.arange(frames, dtype=torch.float32).unsqueeze(0)
    blink = torch.zeros(n, frames)
    for b, p_blink in enumerate((0.6, 0.25)):
        present = blinks[:, b, 0] < p_blink
        half = 1.2 + 1.0 * blinks[:, b, 2]
        lo, hi = half + 0.5, torch.full_like(half, frames - 1.0)
        centre = lo + (hi - lo).clamp(min=0) * blinks[:, b, 1]
        ok = present & (hi >= lo)
        prof = _smoothstep(1 - (t_idx - centre.unsqueeze(1)).abs() / half.unsqueeze(1))
        blink = torch.maximum(blink, prof * ok.float().unsqueeze(1))
    params[:, :, _PI["blink"]] = torch.maximum(params[:, :, _PI["blink"]], blink)

    params = torch.where(is_rev.view(n, 1, 1), params.flip(1), params)
    params = torch.maximum(torch.minimum(params, _HIGH), _LOW)
    meta = {"second_label": second, "reversed": is_rev, "speed": speed, "concat": is_cat}
    return params, labels.clone(), meta


def sample_dynamics(n_clips: int, frames: int, generator: torch.Generator | None = None, *,
                    classes: Sequence[int | str] | Tensor | int | str | None = None,
                    reverse: float | bool = False, speed_change: float | bool = False,
                    concat: float | bool = False, return_meta: bool = False,
                    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Random expression clips: ``(params (N, T, P), labels (N,))``.

    Each clip goes neutral → apex → back (onset, apex, offset at random speeds and apex
    intensities) for one of the six expressions, with random blinks and smooth small head
    motion. Frame 0 is exactly neutral (all zeros) unless the clip is reversed.

    ``classes`` fixes the expression per clip (names or labels; one value for all).
    ``reverse``, ``speed_change`` and ``concat`` are probabilities (``True`` = always) of the
    "arbitrary dynamics" variants: time-reversed, played 0.5–2× faster, and two expressions
    one after the other (``labels`` is then the first one's; ``return_meta=True`` adds a dict
    with ``second_label`` (-1 if none), ``reversed``, ``speed`` and ``concat`` per clip).
    """
    _check_int("n_clips", n_clips, 1)
    _check_int("frames", frames, 1)
    u = torch.rand(n_clips, _DYN_COLS, generator=generator)
    params, labels, meta = _dynamics_from_uniforms(
        u, frames, _resolve_classes(classes, n_clips), _prob("reverse", reverse),
        _prob("speed_change", speed_change), _prob("concat", concat))
    return (params, labels, meta) if return_meta else (params, labels)


def clip_dynamics(seed: int, identity_indices: Sequence[int] | Tensor,
                  clip_indices: Sequence[int] | Tensor, frames: int, *,
                  classes: Sequence[int | str] | Tensor | None = None,
                  reverse: float = 0.0, speed_change: float = 0.0, concat: float = 0.0,
                  ) -> tuple[Tensor, Tensor]:
    """The dynamics of clip ``j`` of identity ``i`` in world ``seed``, for each pair ``(i, j)``.

    Like :func:`sample_dynamics`, but each clip is a pure function of ``(seed, i, j)``.
    Without ``classes`` the class cycles with ``(i + j) % 6`` so every identity shows every
    expression.
    """
    ids, clips = _as_index_array(identity_indices), _as_index_array(clip_indices)
    if len(ids) != len(clips):
        raise OptionError("identity_indices and clip_indices must have the same length")
    _check_int("frames", frames, 1)
    cls = _resolve_classes(classes, len(ids))
    if cls is None:
        cls = torch.from_numpy((ids + clips) % len(CLASS_NAMES)).long()
    u = _hash_uniforms(seed, _STREAM_DYNAMICS, [ids, clips], _DYN_COLS)
    params, labels, _ = _dynamics_from_uniforms(u, frames, cls, _prob("reverse", reverse),
                                                _prob("speed_change", speed_change),
                                                _prob("concat", concat))
    return params, labels


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise OptionError(f"{name} must be an integer >= {lo}, got {value!r}")


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = size
    else:
        h = w = size
    for name, v in (("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 4 <= v <= 8192:
            raise OptionError(f"render size {name} must be an integer in 4..8192, got {v!r}",
                              hint="pass size=64 or size=(H, W)")
    return int(h), int(w)


def _cos_sin(angle: Tensor) -> tuple[Tensor, Tensor]:
    """cos and sin of per-item angles, via float64 so that the float32 results do not depend
    on whether the batch was long enough for the vectorised code path."""
    a = angle.double() if angle.device.type == "cpu" else angle  # (MPS has no float64)
    return torch.cos(a).to(angle.dtype), torch.sin(a).to(angle.dtype)


def _col(t: Tensor) -> Tensor:
    return t.reshape(-1, 1, 1)


def _rgb(t: Tensor) -> Tensor:
    return t.reshape(-1, 3, 1, 1)


class _Items:
    """Per-item (face x frame) scalars, shaped ``(B, 1, 1)`` to broadcast over a pixel grid."""

    def __init__(self, idn: Identity, p: Tensor) -> None:
        self.idn = idn
        for f in fields(idn):
            value = getattr(idn, f.name)
            setattr(self, f.name, _rgb(value) if f.name in _COLOUR_FIELDS else _col(value))
        self.p = {name: _col(p[:, i]) for i, name in enumerate(PARAM_NAMES)}
        q = self.p
        self.scale = _FACE_SCALE * (1 + q["scale"])
        self.cx = q["shift_x"]
        self.cy = _HEAD_Y + q["shift_y"]
        self.cos, self.sin = _cos_sin(q["roll"])
        # nodding moves the inner features (not the head outline) down, like a pitch
        self.nod_dv = 0.07 * q["nod"]
        # derived feature geometry, shared by drawing, bounding boxes and landmarks
        smile, open_ = q["smile"], q["mouth_open"]
        self.ew = 0.105 * self.eye_size
        self.eh0 = 0.64 * self.ew
        squint = q["eye_squint"]
        self.eye_open = ((1 - q["blink"]) * (1 - 0.5 * squint.clamp(min=0))
                         * (1 + 0.4 * (-squint).clamp(min=0))
                         * (1 + 0.12 * q["brows_up"].clamp(min=0)))
        self.brow_len = 1.05 * self.ew
        self.brow_x = self.eye_spacing - 0.025 * q["brows_knit"].clamp(min=0)
        self.brow_y = self.eye_height - self.eh0 - 0.065 - 0.06 * q["brows_up"]
        self.brow_angle = 0.32 * q["brows_knit"]
        self.mouth_y = self.mouth_height - 0.02 * q["nose_wrinkle"]
        self.mouth_w = (self.mouth_width * (1 + 0.18 * smile.clamp(min=0)
                                            + 0.3 * q["lip_stretch"] - 0.12 * open_)
                        ).clamp(min=0.3 * self.mouth_width)
        self.mouth_curve = -0.075 * smile
        self.h_top = 0.05 * open_ + 0.03 * q["nose_wrinkle"]
        self.h_bot = 0.15 * open_
        self.nose_y = self.nose_height - 0.02 * q["nose_wrinkle"]
        self.glass_r = 1.38 * self.ew

    def to_image(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Face coordinates → image coordinates (inverse of :meth:`_Grid.face`)."""
        s = self.scale
        return (self.cx + s * (u * self.cos - v * self.sin),
                self.cy + s * (u * self.sin + v * self.cos))

    def subset(self, index: Tensor) -> "_Items":
        """The items at ``index`` (a 1-D long tensor)."""
        p = torch.cat([self.p[name] for name in PARAM_NAMES], 1).reshape(-1, NUM_PARAMS)
        return _Items(self.idn[index], p[index])


class _Grid:
    """Pixel-centre coordinates of an ``H x W`` image, and crops of it."""

    def __init__(self, h: int, w: int, device: torch.device) -> None:
        self.h, self.w, self.aspect = h, w, w / h
        self.xs = ((torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1) * (
            w / h)
        self.ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
        self.px = 2.0 / h  # one pixel in image units

    def pixels(self, x0: float, x1: float, y0: float, y1: float
               ) -> tuple[int, int, int, int] | None:
        """Pixel bounds ``(i0, i1, j0, j1)`` of an image-space box, with a 2-pixel margin."""
        # pixel j's centre is at ((j + .5) / w * 2 - 1) * aspect; the margin covers the AA ramp
        j0 = max(math.floor((x0 / self.aspect + 1) / 2 * self.w - 0.5) - 2, 0)
        j1 = min(math.ceil((x1 / self.aspect + 1) / 2 * self.w - 0.5) + 3, self.w)
        i0 = max(math.floor((y0 + 1) / 2 * self.h - 0.5) - 2, 0)
        i1 = min(math.ceil((y1 + 1) / 2 * self.h - 0.5) + 3, self.h)
        return (i0, i1, j0, j1) if i0 < i1 and j0 < j1 else None

    def box(self, it: _Items, u0: Tensor, u1: Tensor, v0: Tensor, v1: Tensor
            ) -> tuple[int, int, int, int] | None:
        """Pixel bounds covering the face-space box ``[u0,u1] x [v0,v1]`` on every item."""
        shape = torch.broadcast_shapes(u0.shape, u1.shape, v0.shape, v1.shape)
        u0, u1, v0, v1 = (t.expand(shape) for t in (u0, u1, v0, v1))
        x, y = it.to_image(torch.stack([u0, u1, u0, u1]), torch.stack([v0, v0, v1, v1]))
        return self.pixels(float(x.min()), float(x.max()), float(y.min()), float(y.max()))

    def face(self, it: _Items, box: tuple[int, int, int, int]) -> tuple[Tensor, Tensor]:
        """Face coordinates ``(u, v)`` of each pixel in ``box``, ``(B, h, w)`` each."""
        i0, i1, j0, j1 = box
        px = self.xs[j0:j1].view(1, 1, -1) - it.cx
        py = self.ys[i0:i1].view(1, -1, 1) - it.cy
        inv = 1 / it.scale
        u = (px * it.cos + py * it.sin).mul_(inv)
        v = (py * it.cos - px * it.sin).mul_(inv)
        return u, v


def _hypot(x: Tensor, y: Tensor) -> Tensor:
    """``sqrt(x² + y²)``; about twice as fast as ``torch.hypot`` on CPU (no overflow care needed
    at these magnitudes)."""
    return (x * x).addcmul_(y, y).sqrt_()


def _cov(d: Tensor, k: Tensor | float) -> Tensor:
    """Coverage of the region ``d < 0``: a smoothstep across one pixel (``k`` = 1/pixel size).

    Overwrites ``d`` (it is always a temporary), which saves an allocation per shape.
    """
    t = d.mul_(-k).add_(0.5).clamp_(0, 1)
    s = t * t
    return t.mul_(-2.0).add_(3.0).mul_(s)


def _sd_ellipse(x: Tensor, y: Tensor, a: Tensor, b: Tensor, *, thin: bool = False) -> Tensor:
    """Approximate signed distance to an axis-aligned ellipse (gradient-normalised).

    ``thin=True`` also bounds it by the distance to the bounding box, which the gradient
    approximation badly underestimates for very flat ellipses (a closing eyelid).
    """
    ia, ib = 1 / a, 1 / b
    xa, yb = x * ia, y * ib
    k0 = _hypot(xa, yb)
    k1 = _hypot(xa.mul_(ia), yb.mul_(ib)).clamp_(min=1e-6)
    d = (k0 - 1).mul_(k0).div_(k1)
    if thin:
        d = torch.maximum(d, torch.maximum(x.abs().sub_(a), y.abs().sub_(b)))
    return d


def _over(img: Tensor, mask: Tensor, colour: Tensor) -> None:
    """Composite ``colour`` (``(B,C,1,1)`` or ``(B,C,h,w)``) over ``img`` with coverage ``mask``."""
    img.lerp_(colour.expand_as(img), mask.unsqueeze(1))


def _const(rgb: tuple[float, float, float], n: int, device: torch.device) -> Tensor:
    return torch.tensor(rgb, device=device).view(1, 3, 1, 1).expand(n, 3, 1, 1)


def _rgba(colour: Tensor) -> Tensor:
    """``(N,3,...)`` colour → ``(N,4,...)`` with alpha 1, for painting premultiplied layers."""
    return torch.cat([colour, torch.ones_like(colour[:, :1])], 1)


# the per-identity head layer covers this face-space box (every identity's hair, hat, neck)
_CANON_U = 0.8
_CANON_V0, _CANON_V1 = -1.14, 1.3
_SUPERSAMPLE = 2


def _head_layer(idn: Identity, h_out: int) -> tuple[Tensor, tuple[float, float, float, float]]:
    """Everything rigid on the head, premultiplied RGBA ``(N, 4, hc, wc)`` in face space.

    Hair, ears, face, neck, blush, hat and earrings depend on the identity only, so they are
    drawn once per identity (at twice the output resolution) and warped to each frame's pose.
    Each part is evaluated only inside its bounding box. Returns the layer and its face-space
    extent ``(u0, u1, v0, v1)`` (outer pixel edges).
    """
    dev = idn.device
    px = 2.0 / h_out / _FACE_SCALE / _SUPERSAMPLE
    wc = math.ceil(2 * _CANON_U / px)
    hc = math.ceil((_CANON_V1 - _CANON_V0) / px)
    u0, v0 = -_CANON_U, _CANON_V0
    n = len(idn)
    u_all = (u0 + (torch.arange(wc, device=dev, dtype=torch.float32) + 0.5) * px)
    v_all = (v0 + (torch.arange(hc, device=dev, dtype=torch.float32) + 0.5) * px)
    k = 1.0 / (px * _SUPERSAMPLE)  # the AA ramp spans one output pixel
    layer = torch.zeros(n, 4, hc, wc, device=dev)
    one = torch.ones(1, 1, 1, 1, device=dev)
    a, b = _col(idn.head_w), _col(idn.head_h)
    vol = _col(idn.hair_volume)
    hair, skin = _rgb(idn.hair), _rgb(idn.skin)
    ey = _col(idn.eye_height)

    def part(u_hi: Tensor | float, v_lo: Tensor | float, v_hi: Tensor | float):
        """The layer, u and v inside the box |u| <= u_hi, v_lo <= v <= v_hi (all faces)."""
        u_hi = float(u_hi.max()) if isinstance(u_hi, Tensor) else u_hi
        v_lo = float(v_lo.min()) if isinstance(v_lo, Tensor) else v_lo
        v_hi = float(v_hi.max()) if isinstance(v_hi, Tensor) else v_hi
        c0 = max(0, math.floor((-u_hi - u0) / px) - 3)
        c1 = min(wc, math.ceil((u_hi - u0) / px) + 3)
        r0 = max(0, math.floor((v_lo - v0) / px) - 3)
        r1 = min(hc, math.ceil((v_hi - v0) / px) + 3)
        uu = u_all[c0:c1].view(1, 1, -1).expand(n, r1 - r0, c1 - c0)
        vv = v_all[r0:r1].view(1, -1, 1).expand(n, r1 - r0, c1 - c0)
        return layer[:, :, r0:r1, c0:c1], uu, vv

    def paint(view: Tensor, mask: Tensor, colour: Tensor) -> None:
        """Premultiplied "over": colour with coverage ``mask``, alpha towards 1."""
        m = mask.unsqueeze(1)
        view[:, :3].lerp_(colour.expand_as(view[:, :3]), m)
        view[:, 3:].lerp_(one.expand_as(view[:, 3:]), m)

    # back hair: an ellipse over the top, straight sides below, cut at the hair length
    hair_w = a + 0.05 + 0.07 * vol
    hair_h = b * 1.03 + 0.05 * vol
    v_cut = b * (-0.3 + 1.55 * _col(idn.hair_length))
    view, u, v = part(hair_w, -hair_h, v_cut + 0.07)
    d = _sd_ellipse(u, v.clamp(max=0), hair_w, hair_h)
    uh = u / hair_w
    d = torch.maximum(d, uh.mul_(uh).mul_(-0.06).add_(v).sub_(v_cut))
    paint(view, _cov(d, k), hair * 0.85)
    # neck, down past the collar
    view, u, v = part(0.36 * a, 0.2, _CANON_V1)
    d = torch.maximum(u.abs() - 0.36 * a, torch.maximum(0.2 - v, v - (_CANON_V1 - 0.05)))
    paint(view, _cov(d, k), skin * 0.8)
    # ears (mirrored with |u|)
    view, u, v = part(a * 0.97 + 0.07, ey, ey + 0.2)
    d = _sd_ellipse(u.abs() - a * 0.97, v - (ey + 0.1), torch.full_like(a, 0.065),
                    torch.full_like(a, 0.1))
    paint(view, _cov(d, k), skin * 0.92)
    # face: an ellipse whose lower half narrows into the jaw, shaded towards the rim
    view, u, v = part(a, -b, b)
    lower = (v / b).clamp_(0, 1)
    uu = u / lower.mul_(lower).mul_(-0.28 * _col(idn.jaw)).add_(1)
    rim = (_hypot(uu / a, v / b) - 0.55).clamp_(0, 0.45).mul_(1 / 0.45)
    shade = rim.mul_(rim).mul_(-0.16).add_(1)
    paint(view, _cov(_sd_ellipse(uu, v, a, b), k), skin * shade.unsqueeze(1))
    # cheek blush: soft blobs below the eyes (premultiplied, so scaled by the face's alpha)
    view, u, v = part(_col(idn.eye_spacing) + 0.11, ey + 0.11, ey + 0.29)
    r = _hypot(u.abs() - (_col(idn.eye_spacing) + 0.02), v - (ey + 0.2))
    soft = r.mul_(-1 / 0.085).add_(1).clamp_(0, 1)
    _over(view[:, :3], soft.mul_(soft).mul_(0.25 * _col(idn.blush)),
          _const((0.93, 0.42, 0.42), n, dev) * view[:, 3:])
    # hair cap: inside a slightly larger ellipse and above a (wavy, tilted) hairline
    tilt = _col(idn.hair_part)
    cap_w, cap_h = a + 0.025 + 0.05 * vol, b + 0.03 + 0.05 * vol
    line_lo = -b * (0.92 - 0.62 * _col(idn.fringe))
    view, u, v = part(cap_w, -cap_h, line_lo + 0.1 * tilt.abs() * cap_w + 0.03)
    hairline = (torch.sin(u * 30 + 3 * tilt).mul_(0.025 * _col(idn.hair_wave))
                .add_(u * (0.1 * tilt)).add_(line_lo))
    d = _sd_ellipse(u, v, cap_w, cap_h)
    paint(view, _cov(torch.maximum(d, v - hairline), k), hair)
    hat = _col(idn.hat)
    if bool((hat > 0).any()):
        view, u, v = part(a * 1.32, -(b * 1.42 + 0.1), -b * 0.72 + 0.05)
        au = u.abs()
        crown = torch.maximum(au - a * 0.9, torch.maximum(-b * 1.5 - v, v + b * 0.72))
        top = _sd_ellipse(u, v + b * 1.42, a * 0.9, torch.full_like(a, 0.1))
        crown = torch.maximum(torch.minimum(crown, top), v + b * 0.72)
        brim = _sd_ellipse(u, v + b * 0.72, a * 1.32, torch.full_like(a, 0.05))
        hat_colour = _rgb(idn.hat_colour)
        paint(view, _cov(torch.minimum(crown, brim), k).mul_(hat), hat_colour)
        band = torch.maximum(crown, (v + b * 0.86).abs_().sub_(0.045))
        paint(view, _cov(band, k).mul_(hat), hat_colour * 0.45)
    rings = _col(idn.earrings)
    if bool((rings > 0).any()):
        view, u, v = part(a * 0.98 + 0.03, ey + 0.2, ey + 0.26)
        d = _hypot(u.abs() - a * 0.98, v - (ey + 0.23)).sub_(0.024)
        paint(view, _cov(d, k).mul_(rings), _const((0.95, 0.80, 0.30), n, dev))
    return layer, (u0, u0 + wc * px, v0, v0 + hc * px)


_SHOULDER_TOP = _SHOULDER_Y - 0.04


def _static_layers(idn: Identity, grid: _Grid) -> tuple[Tensor, Tensor, int]:
    """Per-identity background ``(N,3,H,W)`` and shoulders (premultiplied RGBA of the rows
    from the returned index down); neither moves with the head."""
    x = grid.xs.view(1, 1, -1)
    y = grid.ys.view(1, -1, 1)
    ang = _col(idn.bg_angle)
    t = (0.5 + 0.4 * (x * torch.cos(ang) + y * torch.sin(ang))).clamp_(0, 1)
    c1, c2 = _rgb(idn.bg_colour), _rgb(idn.bg_colour2)
    bg = c1 + (c2 - c1) * t.unsqueeze(1)
    f = _col(idn.bg_freq) * math.pi
    stripes = torch.sin(f * (x * torch.sin(ang) - y * torch.cos(ang)))
    dots = torch.sin(f * 1.5 * x) * torch.sin(f * 1.5 * y)
    pattern = torch.where(_col(idn.bg_pattern) == 1, stripes,
                          torch.where(_col(idn.bg_pattern) == 2, dots, torch.zeros_like(dots)))
    bg = bg.mul_(1 + _col(idn.bg_amp).unsqueeze(1) * pattern.unsqueeze(1)).clamp_(0, 1)
    # shoulders: a wide ellipse at the bottom, with a V collar showing the neck
    r0 = max(0, math.floor((_SHOULDER_TOP + 1) / 2 * grid.h - 0.5) - 2)
    ys = y[:, r0:]
    n = len(idn)
    k = 1 / grid.px
    sx = 1.9 * _col(idn.head_w)
    d = _sd_ellipse(x.expand(n, grid.h - r0, grid.w), ys - (_SHOULDER_Y + 0.42), sx,
                    torch.full_like(sx, 0.46))
    layer = torch.zeros(n, 4, grid.h - r0, grid.w, device=bg.device)
    _over(layer, _cov(d.clone(), k), _rgba(_rgb(idn.shirt)))
    collar = torch.maximum(x.abs() * 1.3 - (ys - _SHOULDER_Y + 0.02), d)
    _over(layer[:, :3], _cov(collar, k), _rgb(idn.skin) * 0.78 * layer[:, 3:])
    return bg, layer, r0


def _draw_features(img: Tensor, it: _Items, grid: _Grid, crop: bool) -> None:
    """Draw the moving features (eyes, brows, glasses, nose, mouth) onto ``img`` in place."""
    q = it.p
    n, dev = img.shape[0], img.device
    k = it.scale / grid.px  # 1 / (pixel size in face units)
    full = (0, grid.h, 0, grid.w)

    def region(items: _Items, u0: Tensor, u1: Tensor, v0: Tensor, v1: Tensor):
        # the feature space is the face space shifted down by the nod
        return grid.box(items, u0, u1, v0 + items.nod_dv, v1 + items.nod_dv) if crop else full

    # ---- eyes and brows (mirrored with |u|)
    ey = it.eye_height
    u_max = torch.maximum(it.eye_spacing + it.ew, it.brow_x + it.brow_len) + 0.03
    top = it.brow_y - it.brow_len * 0.35 - it.brow_thickness - 0.03
    box = region(it, -u_max, u_max, top, ey + it.eh0 * 1.6 + 0.02)
    if box is not None:
        i0, i1, j0, j1 = box
        view = img[:, :, i0:i1, j0:j1]
        u, v = grid.face(it, box)
        vf = v.sub_(it.nod_dv)
        au = u.abs_()
        du, dv = au - it.eye_spacing, vf - ey
        eh = (it.eh0 * it.eye_open).clamp(min=2e-3)
        d_white = _sd_ellipse(du, dv, it.ew, eh, thin=True)
        m_white = _cov(d_white.clone(), k)
        _over(view, m_white, _const((0.97, 0.97, 0.95), n, dev))
        r_eye = _hypot(du, dv)
        _over(view, _cov(r_eye - it.eh0 * 0.82, k).mul_(m_white), it.eye_colour)
        _over(view, _cov(r_eye.sub_(it.eh0 * 0.38), k).mul_(m_white),
              _const((0.04, 0.04, 0.04), n, dev))
        hl = _hypot(du + it.eh0 * 0.25, dv + it.eh0 * 0.3).sub_(it.eh0 * 0.16)
        _over(view, _cov(hl, k).mul_(m_white), _const((1.0, 1.0, 1.0), n, dev))
        # the lid line: thicker on the upper lid, and as the eye closes
        lid_w = (dv < 0).float().mul_(0.006).add_(0.007 + 0.006 * q["blink"])
        _over(view, _cov(d_white.abs_().sub_(lid_w), k), _const((0.1, 0.1, 0.1), n, dev))
        # brows: arched capsules rotated about their centre (knit lowers the inner ends)
        cos, sin = _cos_sin(it.brow_angle)
        bu, bv = au.sub_(it.brow_x), vf.sub_(it.brow_y)
        along = bu * cos - bv * sin
        across = bu.mul_(sin).add_(bv.mul_(cos))
        rel = along / it.brow_len
        across.add_((1 - rel * rel).clamp_(min=0).mul_(0.028))
        thick = it.brow_thickness * (1 - 0.35 * rel.clamp_(0, 1))
        d_brow = _hypot(along.abs_().sub_(it.brow_len).clamp_(min=0), across).sub_(thick)
        _over(view, _cov(d_brow, k), _rgb(it.idn.hair) * 0.6 + 0.03)

    # ---- glasses, only on the frames of faces that wear them
    sel = (it.glasses.reshape(-1) > 0).nonzero().reshape(-1)
    if len(sel):
        gi = it.subset(sel) if len(sel) < n else it
        gr, gy = gi.glass_r, gi.eye_height
        box = region(gi, -(gi.head_w + 0.03), gi.head_w + 0.03, gy - gr - 0.03, gy + gr + 0.03)
        if box is not None:
            i0, i1, j0, j1 = box
            sub = img[sel, :, i0:i1, j0:j1] if len(sel) < n else img[:, :, i0:i1, j0:j1]
            u, v = grid.face(gi, box)
            gv = v.sub_(gi.nod_dv + gy + 0.005)
            au = u.abs_()
            rg = _hypot(au - gi.eye_spacing, gv)
            kg = gi.scale / grid.px
            _over(sub, _cov(rg - gr, kg).mul_(0.18), _const((0.75, 0.88, 1.0), len(sel), dev))
            frame = (rg - gr).abs_().sub_(0.012)
            bridge = _hypot((au - (gi.eye_spacing - gr)).clamp_(min=0), gv + 0.02) - 0.011
            arm_mid = (gi.eye_spacing + gr + gi.head_w) / 2
            arm_half = (gi.head_w - gi.eye_spacing - gr) / 2
            arm = _hypot(au.sub_(arm_mid).abs_().sub_(arm_half).clamp_(min=0), gv) - 0.01
            d_g = torch.minimum(torch.minimum(frame, bridge), arm)
            _over(sub, _cov(d_g, kg), gi.glasses_colour)
            if len(sel) < n:  # advanced indexing copied the frames: write them back
                img[sel, :, i0:i1, j0:j1] = sub

    # ---- nose: a soft shadowed bulb with two nostrils, wrinkle lines above when disgusted
    ns = it.nose_size
    box = region(it, torch.full_like(ns, -0.11), torch.full_like(ns, 0.11),
                 it.nose_y - 0.11, it.nose_y + 0.03 * ns + 0.02)
    if box is not None:
        i0, i1, j0, j1 = box
        view = img[:, :, i0:i1, j0:j1]
        u, v = grid.face(it, box)
        vf = v.sub_(it.nod_dv + it.nose_y)
        au = u.abs()
        _over(view, _cov(_sd_ellipse(u, vf, 0.042 * ns, 0.03 * ns), k).mul_(0.55),
              it.skin * 0.72)
        d_nostril = _hypot(au - 0.024 * ns, vf - 0.014 * ns).sub_(0.011 * ns)
        _over(view, _cov(d_nostril, k).mul_(0.8), it.skin * 0.4)
        # faint wrinkles are dropped per face (not per batch), so a frame never depends on
        # which other frames share its batch
        wr = q["nose_wrinkle"] * (q["nose_wrinkle"] > 0.01)
        if bool((wr > 0).any()):
            wu, wv = au.sub_(0.05), vf.add_(0.07)
            d_w = _hypot((wu * 0.8 + wv * 0.6).abs_().sub_(0.025).clamp_(min=0),
                              wv * 0.8 - wu * 0.6).sub_(0.007)
            _over(view, _cov(d_w, k).mul_(wr), it.skin * 0.55)

    # ---- mouth: a lens between an upper and a lower curve that bend with the smile
    mw = it.mouth_w
    bend = it.mouth_curve * 1.5
    box = region(it, -(mw + 0.03), mw + 0.03,
                 it.mouth_y + bend.clamp(max=0) - it.h_top - 0.03,
                 it.mouth_y + bend.clamp(min=0) + it.h_bot + 0.035)
    if box is not None:
        i0, i1, j0, j1 = box
        view = img[:, :, i0:i1, j0:j1]
        mu, v = grid.face(it, box)
        mv = v.sub_(it.nod_dv + it.mouth_y)
        s = (mu / mw).square_()
        centre = s.clamp(max=1.5).mul_(it.mouth_curve)
        env = s.neg_().add_(1).clamp_(min=0).sqrt_()
        top_edge = centre - it.h_top * env
        bot_edge = centre + it.h_bot * env
        d_mouth = torch.maximum(mu.abs_().sub_(mw), torch.maximum(top_edge - mv, mv - bot_edge))
        lip_w = (mv > centre).float().mul_(0.006).add_(0.014)
        _over(view, _cov(d_mouth.abs().sub_(lip_w), k), it.lip_colour)
        m_in = _cov(d_mouth, k)
        _over(view, m_in, _const((0.32, 0.06, 0.08), n, dev))
        tongue = _cov(bot_edge.sub_(env.mul_(0.45 * it.h_bot)).sub_(mv), k)
        _over(view, tongue.mul_(m_in), _const((0.82, 0.38, 0.42), n, dev))
        teeth = _cov(mv.sub_(top_edge).sub_(0.028), k)
        _over(view, teeth.mul_(m_in), _const((0.97, 0.96, 0.9), n, dev))


def _broadcast(identity: Identity, params: Tensor) -> tuple[Identity, Tensor]:
    if not isinstance(identity, Identity):
        raise OptionError(f"identity must be an Identity, got {type(identity).__name__}",
                          hint="make one with sample_identities or identities_for")
    if not isinstance(params, Tensor) or params.dim() != 3 or params.shape[2] != NUM_PARAMS:
        shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise OptionError(f"params must be a tensor of shape (N, T, {NUM_PARAMS}), got {shape}",
                          hint="see PARAM_NAMES; sample_dynamics returns such a tensor")
    n_id, n_p = len(identity), params.shape[0]
    if n_id != n_p:
        if n_id == 1:
            identity = identity[torch.zeros(n_p, dtype=torch.long)]
        elif n_p == 1:
            params = params.expand(n_id, -1, -1)
        else:
            raise OptionError(f"{n_id} identities but params for {n_p} clips",
                              hint="pass as many of each, or one of either to broadcast")
    return identity, params


def _pose_flow(it: _Items, grid: _Grid, extent: tuple[float, float, float, float]) -> Tensor:
    """``grid_sample`` coordinates ``(B, H, W, 2)`` of each output pixel in the head layer."""
    u0, u1, v0, v1 = extent
    uc, uh, vc, vh = (u0 + u1) / 2, (u1 - u0) / 2, (v0 + v1) / 2, (v1 - v0) / 2
    c, s, inv = it.cos, it.sin, 1 / it.scale
    x = grid.xs.view(1, 1, -1) - it.cx
    y = grid.ys.view(1, -1, 1) - it.cy
    flow = torch.empty(len(c), grid.h, grid.w, 2, device=c.device)
    # u = ((x - cx) c + (y - cy) s) / S,  v = ((y - cy) c - (x - cx) s) / S, normalised to
    # [-1, 1] over the layer; each term is small, only the sum is a full-size tensor
    torch.add(x * (c * inv / uh), y * (s * inv / uh) - uc / uh, out=flow[..., 0])
    torch.add(x * (-s * inv / vh), y * (c * inv / vh) - vc / vh, out=flow[..., 1])
    return flow


def _chunks(n: int, t: int, per: int) -> list[tuple[int, int, int, int]]:
    """Split ``n`` clips of ``t`` frames into (n0, n1, t0, t1) blocks of about ``per`` frames:
    whole clips together, or the frames of one clip in pieces."""
    if t <= per:
        k = per // t
        return [(n0, min(n0 + k, n), 0, t) for n0 in range(0, n, k)]
    return [(i, i + 1, t0, min(t0 + per, t)) for i in range(n) for t0 in range(0, t, per)]


def render(identity: Identity, params: Tensor, size: int | tuple[int, int] = 64, *,
           crop: bool = True, chunk_pixels: int = 1 << 19) -> Tensor:
    """Render faces: ``(N, T, 3, H, W)`` float32 in [0, 1].

    ``identity`` has ``N`` faces and ``params`` is ``(N, T, P)`` (either may have ``N = 1``
    and is then broadcast). Frame ``t`` of face ``n`` depends only on ``identity[n]`` and
    ``params[n, t]``, so ``render(B, params_A)`` is B moving exactly like clip A.
    ``crop=False`` evaluates the features on the whole image (slower; same pixels).
    Work goes in blocks of about ``chunk_pixels`` pixels, which bounds the memory used
    beyond the output and keeps the working set in cache.
    """
    identity, params = _broadcast(identity, params)
    h, w = _size_hw(size)
    _check_int("chunk_pixels", chunk_pixels, 1)
    device = identity.device
    n, t = params.shape[:2]
    params = params.to(device=device, dtype=torch.float32)
    params = torch.maximum(torch.minimum(params, _HIGH.to(device)), _LOW.to(device))
    grid = _Grid(h, w, device)
    out = torch.empty(n, t, 3, h, w, device=device)
    cached: tuple[int, int] | None = None
    with torch.no_grad():
        for n0, n1, t0, t1 in _chunks(n, t, max(1, chunk_pixels // (h * w))):
            if cached != (n0, n1):  # identity-only layers, once per identity
                idn = identity[n0:n1]
                bg, shoulders, r0 = _static_layers(idn, grid)
                head, extent = _head_layer(idn, h)
                cached = (n0, n1)
            k, tc = n1 - n0, t1 - t0
            img = out[n0:n1, t0:t1]
            img.copy_(bg.unsqueeze(1).expand(k, tc, 3, h, w))
            face_of = torch.arange(k, device=device).repeat_interleave(tc)
            it = _Items(idn[face_of], params[n0:n1, t0:t1].reshape(k * tc, NUM_PARAMS))
            # the rigid head: one bilinear warp of the identity's layer per frame
            flow = _pose_flow(it, grid, extent)
            warped = F.grid_sample(head, flow.view(k, tc * h, w, 2), mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
            warped = warped.view(k, 4, tc, h, w).transpose(1, 2)
            img.mul_(1 - warped[:, :, 3:]).add_(warped[:, :, :3])
            rows = img[:, :, :, r0:]
            rows.mul_(1 - shoulders[:, None, 3:]).add_(shoulders[:, None, :3])
            _draw_features(img.view(k * tc, 3, h, w), it, grid, crop)
        out.clamp_(0, 1)
    return out


def render_pair(identity_b: Identity, params_a: Tensor, size: int | tuple[int, int] = 64
                ) -> Tensor:
    """Cross-identity ground truth: identity B moving with clip A's params (= ``render``)."""
    return render(identity_b, params_a, size)


def render_neutral(identity: Identity, size: int | tuple[int, int] = 64) -> Tensor:
    """The neutral, at-rest face of each identity: ``(N, 3, H, W)`` (a clip's frame 0)."""
    return render(identity, neutral_params(len(identity)).to(identity.device), size)[:, 0]


def landmarks(identity: Identity, params: Tensor, size: int | tuple[int, int] = 64) -> Tensor:
    """Pixel coordinates ``(N, T, K, 2)`` (x, y) of :data:`LANDMARK_NAMES` on rendered frames.

    Exact, from the same geometry as :func:`render`; useful as ground-truth keypoints (e.g.
    for landmark-warping baselines or to check motion). Computed (and returned) on the CPU.
    """
    identity, params = _broadcast(identity, params)
    identity, params = identity.to("cpu"), params.detach().cpu()
    h, w = _size_hw(size)
    n, t = params.shape[:2]
    p = torch.maximum(torch.minimum(params.float(), _HIGH), _LOW).reshape(n * t, NUM_PARAMS)
    idn = identity[torch.arange(n).repeat_interleave(t)]
    it = _Items(idn, p)
    flat = lambda x: x.reshape(-1)  # noqa: E731
    es, ey, nd = flat(it.eye_spacing), flat(it.eye_height), flat(it.nod_dv)
    zero = torch.zeros_like(es)
    my = flat(it.mouth_y) + nd
    mc = flat(it.mouth_curve)
    pts_u = [zero, -es, es, -flat(it.brow_x), flat(it.brow_x), zero, -flat(it.mouth_w),
             flat(it.mouth_w), zero, zero, zero]
    pts_v = [zero, ey + nd, ey + nd, flat(it.brow_y) + nd, flat(it.brow_y) + nd,
             flat(it.nose_y) + nd, my + mc, my + mc, my - flat(it.h_top) - 0.014,
             my + flat(it.h_bot) + 0.02, flat(it.head_h)]
    u = torch.stack(pts_u, 1).reshape(n * t, -1, 1)
    v = torch.stack(pts_v, 1).reshape(n * t, -1, 1)
    x, y = it.to_image(u, v)
    col = ((x / (w / h) + 1) / 2 * w - 0.5).reshape(n, t, -1)
    row = ((y + 1) / 2 * h - 0.5).reshape(n, t, -1)
    return torch.stack([col, row], -1)


# --------------------------------------------------------------------------------------------
# Splits and the dataset
# --------------------------------------------------------------------------------------------

def split_of(identity_index: int) -> str:
    """The split of an identity: ``i % 10 == 0`` → test, ``== 1`` → val, else train (80/10/10).

    It depends on the index alone, so an identity keeps its split whatever the dataset size.
    """
    r = int(identity_index) % 10
    return "test" if r == 0 else "val" if r == 1 else "train"


def split_identities(num_identities: int, split: str) -> list[int]:
    """Indices of the identities of ``split`` among ``range(num_identities)``."""
    if split not in SPLITS:
        raise OptionError(f"unknown split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
    _check_int("num_identities", num_identities, 1)
    return [i for i in range(num_identities) if split_of(i) == split]


class SynthFaceClips(torch.utils.data.Dataset):
    """Clips of procedural faces, rendered on the fly, with exact cross-identity truth.

    Item ``k`` is clip ``k % clips_per_identity`` of the ``k // clips_per_identity``-th
    identity of ``split`` (identities are split 80/10/10 by :func:`split_of`, so held-out
    faces never appear in training). Each item is a dict:

    * ``source`` ``(T,3,H,W)``: the clip; ``params`` ``(T,P)``; ``label``: expression class;
    * ``target`` ``(3,H,W)``: for a cross pair the neutral face of another identity of the
      same split, for a self pair frame 0 of the clip;
    * ``truth`` ``(T,3,H,W)``: the target identity moving like the source (= ``source`` for
      self pairs) — exact, rendered from the same params;
    * ``source_id``, ``target_id``, ``clip``, ``is_cross``, ``has_truth`` (always True).

    Everything is a pure function of ``(seed, index)``. ``cross_pairs`` is a bool or the
    fraction of cross pairs (True = 0.5). ``reverse``, ``speed_change`` and ``concat`` are
    probabilities of "arbitrary dynamics" variants (see :func:`sample_dynamics`).
    For training, :meth:`sample_batch` renders a whole batch in one vectorised call;
    ``device`` is where rendering happens and the returned tensors live.
    """

    def __init__(self, num_identities: int, clips_per_identity: int = 6, T: int = 16,
                 size: int | tuple[int, int] = 64, seed: int = 0, split: str = "train",
                 cross_pairs: bool | float = True, *, classes: Sequence[int | str] | None = None,
                 reverse: float = 0.0, speed_change: float = 0.0, concat: float = 0.0,
                 device: str | torch.device = "cpu") -> None:
        _check_int("num_identities", num_identities, 1)
        _check_int("clips_per_identity", clips_per_identity, 1)
        _check_int("T", T, 1)
        _check_int("seed", seed, 0)
        self.size = _size_hw(size)
        self.num_identities, self.clips_per_identity, self.T = num_identities, clips_per_identity, T
        self.seed, self.split = seed, split
        self.ids = split_identities(num_identities, split)
        if not self.ids:
            need = {"test": 1, "val": 2, "train": 3}[split]
            raise OptionError(f"split '{split}' has no identities among {num_identities}",
                              hint=f"use num_identities >= {need}")
        self.cross_fraction = (0.5 if cross_pairs is True else
                               _prob("cross_pairs", float(cross_pairs)))
        self.classes = (None if classes is None else
                        [_class_index(c) for c in classes])
        if self.classes is not None and not self.classes:
            raise OptionError("classes is empty", hint="pass None for all six expressions")
        self.variants = {"reverse": _prob("reverse", reverse),
                         "speed_change": _prob("speed_change", speed_change),
                         "concat": _prob("concat", concat)}
        self.device = torch.device(device)
        self._idn = identities_for(seed, self.ids).to(self.device)
        self._pos = {i: p for p, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids) * self.clips_per_identity

    @property
    def identities(self) -> Identity:
        """The identities of this split, in the order of :attr:`ids`."""
        return self._idn

    def _labels_for(self, src: np.ndarray, clip: np.ndarray) -> Tensor | None:
        if self.classes is None:
            return None
        return torch.tensor([self.classes[(i + j) % len(self.classes)]
                             for i, j in zip(src.tolist(), clip.tolist())], dtype=torch.long)

    def _pairs(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source ids, target ids, is_cross) of dataset items, a function of (seed, index)."""
        n = len(self.ids)
        pos = index // self.clips_per_identity
        u = _hash_uniforms(self.seed, _STREAM_PAIR, [index], 2).numpy()
        cross = (u[:, 0] < self.cross_fraction) & (n > 1)
        offset = 1 + np.minimum((u[:, 1] * max(n - 1, 1)).astype(np.int64), max(n - 2, 0))
        tpos = np.where(cross, (pos + offset) % n, pos)
        ids = np.asarray(self.ids, dtype=np.int64)
        return ids[pos], ids[tpos], cross

    def get_batch(self, indices: Sequence[int] | Tensor) -> dict[str, Tensor]:
        """Items ``indices`` rendered together, as batched tensors (the collated items)."""
        index = _as_index_array(indices)
        if len(index) == 0:
            raise OptionError("get_batch needs at least one index")
        if index.min() < -len(self) or index.max() >= len(self):
            raise IndexError(f"index out of range for a dataset of {len(self)} clips")
        index = index % len(self)
        src, tgt, cross = self._pairs(index)
        clip = index % self.clips_per_identity
        params, labels = clip_dynamics(self.seed, src, clip, self.T,
                                       classes=self._labels_for(src, clip), **self.variants)
        return self._assemble(src, tgt, torch.from_numpy(cross), params, labels,
                              torch.from_numpy(clip))

    def _assemble(self, src: np.ndarray, tgt: np.ndarray, cross: Tensor, params: Tensor,
                  labels: Tensor, clip: Tensor) -> dict[str, Tensor]:
        pos_s = torch.tensor([self._pos[int(i)] for i in src], dtype=torch.long)
        pos_t = torch.tensor([self._pos[int(i)] for i in tgt], dtype=torch.long)
        source = render(self._idn[pos_s], params, self.size)
        truth = source.clone()
        target = source[:, 0].clone()
        if bool(cross.any()):
            sel = cross.nonzero().reshape(-1)
            # one call renders the neutral target (frame 0) and the truth, so the target's
            # identity layers are drawn once
            idn_t = self._idn[pos_t[sel]]
            both = render(idn_t, torch.cat([neutral_params(len(sel), 1), params[sel]], 1),
                          self.size)
            target[sel] = both[:, 0]
            truth[sel] = both[:, 1:]
        out = {"source": source, "target": target, "truth": truth, "label": labels,
               "params": params, "source_id": torch.from_numpy(src.copy()),
               "target_id": torch.from_numpy(tgt.copy()), "clip": clip, "is_cross": cross,
               "has_truth": torch.ones(len(src), dtype=torch.bool)}
        return {k: v.to(self.device) for k, v in out.items()}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"dataset index must be an int, got {type(index).__name__}")
        batch = self.get_batch([int(index)])
        return {k: v[0] for k, v in batch.items()}

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None, *,
                     cross_fraction: float | None = None, fresh: bool = True
                     ) -> dict[str, Tensor]:
        """A random batch, rendered in one vectorised call (keys as :meth:`get_batch`).

        With ``fresh=True`` (default, for training) every clip gets new random dynamics from
        ``generator`` on a random identity of the split, so the motions never repeat; with
        ``fresh=False`` it draws dataset items. ``clip`` is -1 for fresh clips.
        """
        _check_int("batch_size", batch_size, 1)
        if not fresh:
            return self.get_batch(torch.randint(len(self), (batch_size,), generator=generator))
        cf = self.cross_fraction if cross_fraction is None else _prob("cross_fraction",
                                                                      cross_fraction)
        n = len(self.ids)
        pos = torch.randint(n, (batch_size,), generator=generator)
        cross = (torch.rand(batch_size, generator=generator) < cf) & (n > 1)
        off = 1 + torch.randint(max(n - 1, 1), (batch_size,), generator=generator)
        tpos = torch.where(cross, (pos + off) % n, pos)
        classes = None
        if self.classes is not None:
            pick = torch.randint(len(self.classes), (batch_size,), generator=generator)
            classes = torch.tensor(self.classes)[pick]
        params, labels = sample_dynamics(batch_size, self.T, generator, classes=classes,
                                         **self.variants)
        ids = np.asarray(self.ids, dtype=np.int64)
        return self._assemble(ids[pos.numpy()], ids[tpos.numpy()], cross, params, labels,
                              torch.full((batch_size,), -1, dtype=torch.long))
