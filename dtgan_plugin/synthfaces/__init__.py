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

The package, one job per module:

* sampling — :mod:`.params` (the parameter vector), :mod:`.counter` (counter-based
  randomness), :mod:`.identity` (faces), :mod:`.dynamics` (expression clips),
  :mod:`.splits` (train/val/test identities);
* rendering — :mod:`.renderer` (entry points), :mod:`.geometry` (pose, grid, feature sizes),
  :mod:`.sdf` (shape primitives), :mod:`.layers` (identity-only layers), :mod:`.features`
  (eyes, brows, glasses, nose, mouth); :mod:`.landmarks` (exact landmarks);
* :mod:`.dataset` — :class:`SynthFaceClips`, clips rendered on the fly for training.
"""

from __future__ import annotations

import torch  # noqa: F401  (the doctest above uses it)

from .dataset import SynthFaceClips
from .dynamics import apex_vectors, clip_dynamics, neutral_params, sample_dynamics
from .identity import Identity, identities_for, sample_identities
from .landmarks import (LANDMARK68_GROUPS, LANDMARK_NAMES, clip_landmarks68, landmarks,
                        landmarks68)
from .params import (CLASS_NAMES, EXPRESSION_PARAMS, MOTION_PARAMS, NUM_PARAMS, PARAM_NAMES,
                     PARAM_RANGES, SPLITS)
from .renderer import render, render_neutral, render_pair
from .splits import split_identities, split_of

__all__ = [
    "PARAM_NAMES", "PARAM_RANGES", "EXPRESSION_PARAMS", "MOTION_PARAMS", "CLASS_NAMES",
    "LANDMARK_NAMES", "SPLITS", "Identity", "sample_identities", "identities_for",
    "apex_vectors", "sample_dynamics", "clip_dynamics", "neutral_params", "render",
    "render_pair", "render_neutral", "landmarks", "split_of", "split_identities",
    "SynthFaceClips", "NUM_PARAMS", "LANDMARK68_GROUPS", "landmarks68", "clip_landmarks68",
]
