"""The YUV4MPEG2 reader: pipes (stdin, FIFOs, ffmpeg's stdout) and ``.y4m`` files."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import torch

from dtgan_plugin.errors import MediaError
from dtgan_plugin.stream import DEFAULT_CHUNK, PadKind, StreamInfo, VideoChunk

from .ffmpeg_reader import _Process
from .reader_base import STDIN, VideoReader, _check_chunk_size
from .y4m import Y4MStream, _read_exact, planes_to_rgb


class Y4MReader(VideoReader):
    """Reader for YUV4MPEG2 data: a pipe (stdin, FIFO, ffmpeg's stdout) or a ``.y4m`` file.

    Files whose frame records all have the same size (what ffmpeg writes) get random access.
    """

    reader_name = "y4m"

    def __init__(self, stream: IO[bytes], *, name: str, prefix: bytes = b"",
                 process: _Process | None = None, owns_stream: bool = False,
                 info_meta: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self._stream = stream
        self._owns = owns_stream
        self._process = process
        self._consumed = False
        try:
            self._y4m = Y4MStream(stream, name=repr(name) if name != STDIN else "stdin",
                                  prefix=prefix)
        except MediaError:
            if process is not None:
                # stdout ended early: if ffmpeg failed, its reason is the one worth showing
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.proc.wait(timeout=10)
                failed = process.proc.returncode not in (None, 0)
                err = process.error("stdin" if name == STDIN else repr(name)) if failed else None
                process.kill()
                if err is not None:
                    raise err from None
            raise
        hdr = self._y4m.header
        self._data_offset = hdr.header_len
        self._record = len(b"FRAME\n") + hdr.frame_bytes
        num_frames = None
        self._seekable = False  # fixed-size frame records: random access
        self._rewindable = (process is None and owns_stream
                            and stat.S_ISREG(os.fstat(stream.fileno()).st_mode))
        if self._rewindable:
            size = os.fstat(stream.fileno()).st_size
            body = size - hdr.header_len
            if body % self._record == 0:
                num_frames = body // self._record
                self._seekable = True
                self.random_access = True
        meta = {"reader": self.reader_name, "path": name,
                "fps_fraction": f"{hdr.fps.numerator}/{hdr.fps.denominator}",
                "colorspace": hdr.colorspace}
        meta.update(info_meta or {})
        self.info = StreamInfo(kind=PadKind.VIDEO, fps=float(hdr.fps), width=hdr.width,
                               height=hdr.height, num_frames=num_frames, meta=meta)
        if num_frames == 0:
            raise MediaError(f"video {name!r} contains no frames", hint="pass a non-empty video")

    @property
    def header(self):
        """The parsed y4m header (exact fps as a Fraction in ``header.fps``)."""
        return self._y4m.header

    def get_batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` (fixed-record ``.y4m`` files only)."""
        if not self._seekable:
            raise self._no_random_access()
        self._check_open()
        idx = self._normalize_indices(indices)
        fb = self._y4m.header.frame_bytes
        raw = np.empty((len(idx), fb), dtype=np.uint8)
        for k, i in enumerate(idx):
            self._stream.seek(self._data_offset + i * self._record)
            self._y4m.frames_read = i
            if not self._y4m.skip_frame_line() or _read_exact(self._stream, memoryview(raw[k])) != fb:
                raise MediaError(f"{self.path!r}: y4m frame {i} is truncated",
                                 hint="re-create the file")
        return planes_to_rgb(raw, self._y4m.header)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, start: int = 0,
               stop: int | None = None) -> Iterator[VideoChunk]:
        """Yield consecutive frames ``[start, stop)``; a pipe can be read only once."""
        _check_chunk_size(chunk_size)
        self._check_open()
        start, stop = self._check_range(start, stop)
        index = 0
        if self._seekable:
            self._stream.seek(self._data_offset + start * self._record)
            self._y4m.frames_read = index = start
        elif self._rewindable:  # a file with per-frame parameters: read again from the top
            self._stream.seek(self._data_offset)
            self._y4m.frames_read = 0
        elif self._consumed:
            raise MediaError(f"{self.path if self.path != STDIN else 'stdin'} can be read only "
                             "once", hint="open it again, or save it to a file for several passes")
        self._consumed = True
        try:
            while stop is None or index < stop:
                want = chunk_size if stop is None else min(chunk_size, stop - index)
                if index < start:  # pipes cannot seek: decode-free skip of raw records
                    want = min(want, start - index)
                    raw = self._y4m.read_raw(want)
                    if raw is None:
                        break
                    index += raw.shape[0]
                    continue
                frames = self._y4m.read(want)
                if frames is None:
                    break
                yield VideoChunk(frames, start=index, fps=self.info.fps)
                index += frames.shape[0]
                if frames.shape[0] < want:
                    break
            if self._process is not None and (stop is None or index < stop):
                self._process.finish(repr(self.path) if self.path != STDIN else "stdin")
            if index == 0 and start == 0 and (stop is None or stop > 0):
                raise MediaError(f"{'stdin' if self.path == STDIN else repr(self.path)} "
                                 "contains no frames", hint="check the command feeding it")
        finally:
            if self._process is not None and not self._seekable:
                self._process.kill()

    def close(self) -> None:
        """Close the stream and stop the ffmpeg feeding it; idempotent."""
        if self._process is not None:
            self._process.kill()
            self._process = None
        if self._owns and self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
        super().close()

