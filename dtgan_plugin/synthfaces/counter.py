"""Counter-based randomness: uniforms that are a pure function of ``(seed, stream, keys)``.

Identities, dynamics and dataset pairings each read fixed columns of such a matrix, so a
face or clip is the same whichever batch it is drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

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


class _Cols:
    """Hands out consecutive columns of a uniform matrix, so each field has fixed columns."""

    def __init__(self, u: Tensor) -> None:
        self.u, self.i = u, 0

    def take(self, k: int = 1) -> Tensor:
        """The next ``k`` columns (one column as ``(N,)``)."""
        out = self.u[:, self.i:self.i + k]
        self.i += k
        return out[:, 0] if k == 1 else out

    def range(self, lo: float, hi: float) -> Tensor:
        """The next column mapped to ``[lo, hi)``."""
        return lo + (hi - lo) * self.take()

    def flag(self, p: float) -> Tensor:
        """The next column as 1.0 with probability ``p``, else 0.0."""
        return (self.take() < p).float()

    def choice(self, probs: Tensor) -> Tensor:
        """The next column as an index drawn with (unnormalised) ``probs``."""
        cdf = probs.cumsum(0) / probs.sum()
        return torch.searchsorted(cdf, self.take().contiguous(), right=True).clamp_(
            max=len(probs) - 1)
