"""The per-frame parameter vector of synthfaces: names, valid ranges, expression classes.

Also the small argument checks every part of the package shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import OptionError

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

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise OptionError(f"{name} must be an integer >= {lo}, got {value!r}")


def _prob(name: str, value: float | bool) -> float:
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise OptionError(f"{name} must be a probability in [0, 1] or a bool, got {value!r}")
    return p


def _as_index_array(indices: Sequence[int] | Tensor) -> np.ndarray:
    if isinstance(indices, Tensor):
        return indices.detach().cpu().long().reshape(-1).numpy()
    return np.asarray(list(indices), dtype=np.int64).reshape(-1)


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
