"""Edits of dynamics vectors shared by the graph stages and the streaming ``Transferer``.

Plain tensor functions, so ``dtgan.amplify``/``dtgan.smooth`` and
:class:`~dtgan_plugin.api.Transferer` compute exactly the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

#: One-Euro defaults (``dtgan.smooth``'s option defaults and ``Transferer(smooth=True)``'s)
MINCUTOFF = 1.0
BETA = 0.05
DCUTOFF = 1.0
#: largest motion-strength factor either way (``dtgan.amplify``, ``transfer(amplify=)``)
MAX_AMPLIFY = 10.0


def amplify(vectors: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale motion strength: ASD vectors are zero at rest, so scaling them scales the motion."""
    return vectors * factor


def first_nonfinite(vectors: torch.Tensor) -> int | None:
    """Row index of the first vector holding NaN or ±inf, or None when all are finite."""
    bad = ~torch.isfinite(vectors)
    if vectors.ndim > 1:
        bad = bad.flatten(1).any(dim=1)
    if not bool(bad.any()):
        return None
    return int(bad.nonzero()[0, 0])


def _alpha(cutoff: torch.Tensor | float, rate: float) -> Any:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


@dataclass
class OneEuro:
    """Streaming One-Euro filter over ``(T, D)`` vectors: steady poses stay still, fast moves
    stay fast. Each dimension is filtered independently; state carries across calls.

    ``mincutoff`` (Hz) sets the smoothing of slow motion (lower = smoother); ``beta`` how fast
    the cutoff rises with speed (higher = less lag on fast moves); ``dcutoff`` the cutoff of
    the speed estimate.
    """

    mincutoff: float = MINCUTOFF
    beta: float = BETA
    dcutoff: float = DCUTOFF

    def __post_init__(self) -> None:
        self._prev: torch.Tensor | None = None
        self._dprev: torch.Tensor | None = None

    def __call__(self, vectors: torch.Tensor, rate: float) -> torch.Tensor:
        """Filter the next ``(T, D)`` vectors of a stream sampled at ``rate`` frames/s."""
        out = torch.empty_like(vectors)
        prev, dprev = self._prev, self._dprev
        for i, x in enumerate(vectors):
            if prev is None:
                prev, dprev = x.clone(), torch.zeros_like(x)
            else:
                dx = (x - prev) * rate
                a_d = _alpha(self.dcutoff, rate)
                dprev = a_d * dx + (1 - a_d) * dprev
                cutoff = self.mincutoff + self.beta * dprev.abs()
                a = _alpha(cutoff, rate)
                prev = a * x + (1 - a) * prev
            out[i] = prev
        self._prev, self._dprev = prev, dprev
        return out
