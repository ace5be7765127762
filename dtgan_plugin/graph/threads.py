"""Torch's intra-op thread count during a graph run (process-wide, shared by concurrent runs)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from ..system import available_cpus

_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


def auto_threads(n_processes: int) -> int:
    """Torch threads for a run: the CPUs left after one per ffmpeg process, at least 1.

    Stages run concurrently with decoders and encoders; on a small machine, torch's
    intra-op threads would otherwise spin against them (measured on 2 cores: the pipeline
    ran ~25% faster with one torch thread than with two).
    """
    return max(1, min(torch.get_num_threads(), available_cpus() - n_processes))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads for the duration (None: leave them), then restore.

    torch's setting is process-wide: concurrent runs share the first one's value and the
    last to finish restores the original.
    """
    global _threads_users, _threads_saved
    if n is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(max(1, n))
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)
