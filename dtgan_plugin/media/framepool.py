"""A pool of reusable chunk buffers, so a long stream stops allocating once it is running.

Why: every decoded chunk is a float32 tensor of several to hundreds of MB. Allocated fresh,
each one comes from glibc, whose mmap threshold rises after the first big free; from then on
chunk-sized blocks come from the heap, interleaved with the decoder's own small allocations,
and the heap fragments: peak memory climbs over the first thousand frames before it settles
(measured at 256x256, chunks of 32: 350 MiB after 300 frames, 570 MiB after 3,000). Forcing
mmap instead returns each chunk to the OS but faults in fresh pages for every new one (+45%
CPU on a decode-resize-encode graph). A pool, like FFmpeg's ``AVBufferPool``, does neither:
a buffer goes back to the pool when the last tensor viewing it is freed, and the next chunk
reuses it, already paged in.

How a buffer knows it is free: the chunk tensor is ``torch.from_numpy`` of an array whose
base is a :class:`_Lease`. torch keeps that array alive for as long as any view of the storage
lives (slices, permutes, tensors in queues), so the lease dies exactly when the memory is no
longer reachable, and its ``__del__`` hands the buffer back. No caller has to release
anything, and a caller that keeps a chunk forever simply keeps its buffer.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import torch

#: free buffers kept per pool; more than the chunks a graph's bounded queues can hold at once
MAX_FREE = 16


class _Lease:
    """Owns one pooled buffer while some array or tensor uses it; returns it when collected."""

    __slots__ = ("_pool", "_buf", "__array_interface__")

    def __init__(self, pool: "FramePool", buf: np.ndarray) -> None:
        self._pool = pool
        self._buf = buf
        self.__array_interface__ = buf.__array_interface__

    def __del__(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._give_back(self._buf)


class FramePool:
    """Float32 chunk buffers of one shape, reused once every view of them is gone."""

    def __init__(self, shape: tuple[int, ...], *, max_free: int = MAX_FREE) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.max_free = max_free
        self._free: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self.allocated = 0  # buffers created so far (a steady stream stops creating them)

    def acquire(self, n: int | None = None) -> torch.Tensor:
        """A float32 tensor of ``shape`` (or its first ``n`` rows), backed by a pooled buffer."""
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is None:
            buf = np.empty(self.shape, dtype=np.float32)
            self.allocated += 1
        arr = np.asarray(_Lease(self, buf))  # the array's base is the lease
        t = torch.from_numpy(arr)
        return t if n is None or n == self.shape[0] else t[:n]

    def _give_back(self, buf: np.ndarray) -> None:
        # may run on whichever thread dropped the last reference
        with self._lock:
            if not self._closed and len(self._free) < self.max_free:
                self._free.append(buf)

    @property
    def free(self) -> int:
        """Buffers waiting for reuse."""
        return len(self._free)

    def close(self) -> None:
        """Drop the free buffers; buffers still in use are freed normally when their views go."""
        with self._lock:
            self._closed = True
            self._free.clear()


def to_float_into(frames_hwc: torch.Tensor | np.ndarray, out: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> ``out`` float32 (T, 3, H, W) in [0, 1], without temporaries."""
    src = torch.from_numpy(frames_hwc) if isinstance(frames_hwc, np.ndarray) else frames_hwc
    out.copy_(src.permute(0, 3, 1, 2))
    return out.div_(255.0)
