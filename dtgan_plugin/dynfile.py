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
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import MediaError
from .stream import DynamicsChunk

FORMAT = "dtgan-dynamics"
FORMAT_VERSION = "1"
SUFFIX = ".dyn.safetensors"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


class DynamicsWriter:
    """Stream dynamics chunks into a ``.dyn.safetensors`` file (temp name, renamed on close)."""

    def __init__(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise MediaError(f"output directory '{self.path.parent}' does not exist",
                             hint="create it first")
        self.meta = {k: str(v) for k, v in (meta or {}).items()}
        self._raw_path = self.path.with_name(f".{self.path.name}.raw-{os.getpid()}")
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
        self._raw.write(vec.numpy().tobytes())
        self.frames += int(vec.shape[0])

    def close(self) -> Path:
        """Write header + data under a temporary name, then rename into place."""
        self._raw.close()
        dim = self.dim or 0
        nbytes = self.frames * dim * 4
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "fps": str(self.fps or 25.0), **self.meta}
        header = {"__metadata__": meta,
                  "vectors": {"dtype": "F32", "shape": [self.frames, dim],
                              "data_offsets": [0, nbytes]}}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # safetensors aligns the data start to 8 bytes
        tmp = _tmp_name(self.path)
        try:
            with open(tmp, "wb") as out, open(self._raw_path, "rb") as raw:
                out.write(struct.pack("<Q", len(blob)))
                out.write(blob)
                shutil.copyfileobj(raw, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, self._raw_path):
                if leftover.exists():
                    leftover.unlink()
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        self._raw.close()
        for leftover in (self._raw_path, _tmp_name(self.path)):
            if leftover.exists():
                leftover.unlink()

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
        self.fps = float(self.meta.get("fps", 25.0))

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
