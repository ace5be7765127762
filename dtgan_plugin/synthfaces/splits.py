"""The 80/10/10 train/val/test split of identity indices."""

from __future__ import annotations

from ..errors import OptionError
from .params import SPLITS, _check_int

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
