"""``.dyn.safetensors`` files: per-frame dynamics vectors plus where they came from.

A dynamics file is a plain safetensors file with one tensor ``vectors`` of shape ``(T, D)``
(float32) and string metadata: ``format=dtgan-dynamics``, ``format_version``, ``fps``,
``reference_frame``, ``checkpoint`` (the producing model's fingerprint), ``asd_mode``,
``source``. Any safetensors reader can open it.

Writing streams: vectors go to a temporary raw file as they arrive, and :meth:`close` writes
the safetensors header followed by the raw bytes, so memory never holds the whole stream.
Reading streams too, through ``safe_open(...).get_slice``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from . import atomic
from .dynamics_ops import first_nonfinite
from .errors import MediaError
from .stream import DynamicsChunk

FORMAT = "dtgan-dynamics"
FORMAT_VERSION = "1"
#: the file name ending of dynamics files (``dtgan dynamics`` insists on it)
DYN_SUFFIX = ".dyn.safetensors"
#: the frame rates a dynamics file may declare
MAX_FPS = 1000.0
#: vectors read per step when a file is checked for non-finite values on opening
_CHECK_ROWS = 4096


class DynamicsWriter:
    """Stream dynamics chunks into a ``.dyn.safetensors`` file (temp name, renamed on close)."""

    def __init__(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise MediaError(f"output directory '{self.path.parent}' does not exist",
                             hint="create it first")
        self.meta = {k: str(v) for k, v in (meta or {}).items()}
        atomic.clean_stale(self.path.parent, self.path)  # left by a killed earlier run
        self._raw_path = atomic.temp_path(self.path, "raw")
        self._tmp_path: Path | None = None
        self._raw = open(self._raw_path, "wb")
        self.frames = 0
        self.dim: int | None = None
        self.fps: float | None = None

    def write(self, chunk: DynamicsChunk) -> None:
        """Append one chunk of vectors."""
        vec = chunk.vectors.detach().to("cpu", torch.float32).contiguous()
        if vec.ndim != 2:
            raise ValueError(f"dynamics chunk must be (T, D), got {tuple(vec.shape)}")
        if self.dim is None:
            self.dim = int(vec.shape[1])
            self.fps = chunk.fps
            for k, v in chunk.meta.items():
                self.meta.setdefault(k, str(v))
        elif vec.shape[1] != self.dim:
            raise ValueError(f"dynamics width changed from {self.dim} to {vec.shape[1]}")
        try:
            self._raw.write(vec.numpy().tobytes())
        except OSError as err:
            self.abort()
            raise MediaError(atomic.os_error_message(err, self.path),
                             hint="free some space or write elsewhere") from err
        self.frames += int(vec.shape[0])

    def close(self) -> Path:
        """Write header + data under a temporary name, then rename into place."""
        self._raw.close()
        dim = self.dim or 0
        nbytes = self.frames * dim * 4
        fps = 25.0 if self.fps is None else float(self.fps)  # None: no chunk was written
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            self.abort()
            raise MediaError(f"cannot write dynamics at {fps:g} fps to '{self.path}'",
                             hint=f"the source's frame rate must be above 0 and at most "
                                  f"{MAX_FPS:g}")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "fps": repr(fps), **self.meta}
        header = {"__metadata__": meta,
                  "vectors": {"dtype": "F32", "shape": [self.frames, dim],
                              "data_offsets": [0, nbytes]}}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # safetensors aligns the data start to 8 bytes
        tmp = self._tmp_path = atomic.temp_path(self.path)
        try:
            with open(tmp, "wb") as out, open(self._raw_path, "rb") as raw:
                out.write(struct.pack("<Q", len(blob)))
                out.write(blob)
                shutil.copyfileobj(raw, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            atomic.commit(tmp, self.path)
        except OSError as err:
            raise MediaError(atomic.os_error_message(err, self.path),
                             hint="free some space or write elsewhere") from err
        finally:
            for leftover in (tmp, self._raw_path):
                atomic.discard(leftover)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        self._raw.close()
        for leftover in (self._raw_path, self._tmp_path):
            if leftover is not None:
                atomic.discard(leftover)

    def __enter__(self) -> "DynamicsWriter":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class DynamicsFile:
    """A ``.dyn.safetensors`` file opened for streaming reads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from safetensors import safe_open
        from safetensors import SafetensorError  # type: ignore[attr-defined]

        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(f"dynamics file '{self.path}' does not exist",
                             hint="create one with 'dtgan dynamics -s SOURCE -o FILE.dyn.safetensors'")
        if self.path.stat().st_size == 0:
            raise MediaError(f"dynamics file '{self.path}' is empty (0 bytes)")
        try:
            self._f = safe_open(str(self.path), framework="pt")
            self.meta = dict(self._f.metadata() or {})
            keys = list(self._f.keys())
        except (SafetensorError, OSError, ValueError) as err:
            raise MediaError(f"'{self.path}' is not a readable dynamics file: "
                             f"{str(err).splitlines()[0]}") from None
        if self.meta.get("format") != FORMAT or "vectors" not in keys:
            raise MediaError(f"'{self.path}' is a safetensors file but not a dtgan dynamics file",
                             hint="make one with 'dtgan dynamics'")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise MediaError(f"'{self.path}' has dynamics format version "
                             f"{self.meta.get('format_version')!r}; this dtgan reads "
                             f"{FORMAT_VERSION!r}", hint="re-extract it with this version")
        self._slice = self._f.get_slice("vectors")
        shape = self._slice.get_shape()
        self.num_frames, self.dim = int(shape[0]), int(shape[1])
        self.fps = self._check_fps(self.meta.get("fps", "25"))
        self._check_finite()

    def _check_fps(self, text: str) -> float:
        """The declared fps, which must be a number in (0, MAX_FPS]."""
        try:
            fps = float(text)
        except ValueError:
            fps = math.nan
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            raise MediaError(f"dynamics file '{self.path}' declares fps {text!r}; it must be "
                             f"a number above 0 and at most {MAX_FPS:g}",
                             hint="re-extract it with 'dtgan dynamics'")
        return fps

    def _check_finite(self) -> None:
        """MediaError naming the first frame with a NaN or infinite value (read in steps)."""
        for a in range(0, self.num_frames, _CHECK_ROWS):
            bad = first_nonfinite(self._slice[a:a + _CHECK_ROWS])
            if bad is not None:
                raise MediaError(f"dynamics file '{self.path}' has non-finite values (NaN or "
                                 f"infinity) from frame {a + bad}; they would render as "
                                 "black frames", hint="re-extract it with 'dtgan dynamics'")

    def chunks(self, chunk_size: int = 64, start: int = 0,
               stop: int | None = None) -> Iterator[DynamicsChunk]:
        """Yield the vectors in chunks, reading only what each chunk needs."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        meta = {k: v for k, v in self.meta.items() if k not in ("format", "format_version")}
        for a in range(start, stop, chunk_size):
            b = min(a + chunk_size, stop)
            yield DynamicsChunk(self._slice[a:b].to(torch.float32), a, self.fps, meta)

    def read_all(self) -> torch.Tensor:
        """All vectors ``(T, D)`` (small: about 1 KB per frame)."""
        return self._slice[:].to(torch.float32)
