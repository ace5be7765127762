"""The ffmpeg reader: any file ffmpeg decodes, with an optional filter chain, as rgb24 on a
pipe; and the ffmpeg child process helper the stream readers share."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import IO

import numpy as np

from dtgan_plugin.errors import MediaError
from dtgan_plugin.stream import DEFAULT_CHUNK, PadKind, StreamInfo, VideoChunk

from .framepool import FramePool, to_float_into
from .ffmpeg_bin import StderrDrain, base_cmd, kill_process, last_meaningful_line, probe_file
from .y4m import MAGIC as Y4M_MAGIC
from .y4m import _read_exact
from .reader_base import (VideoReader, _check_chunk_size, _diagnose_unreadable, _normalize_size,
                          _sequence_files, check_input_file, is_sequence_pattern)


class _Process:
    """An ffmpeg child with its stderr drained and, optionally, a thread feeding its stdin."""

    def __init__(self, cmd: list[str], *, feed: IO[bytes] | None = None,
                 prefix: bytes = b"", hint: str = "check the input and the vf= filter chain") -> None:
        self.cmd = cmd
        self.hint = hint
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.drain = StderrDrain(self.proc.stderr)
        self._feeder = None
        if feed is not None:
            self._feeder = threading.Thread(target=self._feed, args=(feed, prefix),
                                            name="ffmpeg-feed", daemon=True)
            self._feeder.start()

    def _feed(self, src: IO[bytes], prefix: bytes) -> None:
        dst = self.proc.stdin
        try:
            if prefix:
                dst.write(prefix)
            read = getattr(src, "read1", src.read)
            while True:
                block = read(1 << 16)
                if not block:
                    break
                dst.write(block)
        except (BrokenPipeError, ValueError, OSError):
            pass  # ffmpeg stopped reading (finished or failed): its exit status tells which
        finally:
            with contextlib.suppress(OSError, ValueError):
                dst.close()

    @property
    def stdout(self) -> IO[bytes]:
        return self.proc.stdout

    def finish(self, what: str) -> None:
        """Wait for a clean exit after stdout ended; MediaError with ffmpeg's reason otherwise."""
        rc = self.proc.wait()
        self.drain.join()
        if rc != 0:
            raise MediaError(f"ffmpeg failed reading {what}: "
                             f"{self.drain.message(f'exit status {rc}')}", hint=self.hint)

    def error(self, what: str) -> MediaError:
        """The failure ffmpeg reported (after it exited)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.drain.join()
        return MediaError(f"ffmpeg failed reading {what}: "
                          f"{self.drain.message('it produced no frames')}", hint=self.hint)

    def kill(self) -> None:
        kill_process(self.proc)
        self.drain.join(1.0)


def _vf_chain(vf: str | None, size: tuple[int, int] | None) -> str | None:
    parts = [p for p in (vf.strip() if vf else None,) if p]
    if size is not None:
        parts.append(f"scale={size[0]}:{size[1]}")
    return ",".join(parts) or None


#: output options for raw packed RGB on ffmpeg's stdout, what _pipe_chunks reads
_RGB24 = ("-f", "rawvideo", "-pix_fmt", "rgb24")


def _decode_cmd(path: str, vf: str | None, out: Sequence[str]) -> list[str]:
    """ffmpeg decoding ``path`` (video only, through ``vf``) with output options ``out`` to stdout."""
    cmd = base_cmd() + ["-nostdin", "-i", path]
    if vf:
        cmd += ["-vf", vf]
    return cmd + ["-an", "-sn", "-dn", *out, "pipe:1"]


def _pipe_chunks(proc: "_Process", what: str, info: StreamInfo, chunk_size: int, start: int,
                 stop: int | None, *, vf: str | None = None,
                 expect: int | None = None) -> Iterator[VideoChunk]:
    """Chunks of the rgb24 frames an ffmpeg process writes to its stdout, in pooled buffers.

    Frames before ``start`` are decoded and dropped; reading ends at ``stop`` or at the end of
    the stream, which must be a clean ffmpeg exit (otherwise ffmpeg's own reason is raised).
    ``expect`` is the frame count the caller knows (decord's index): fewer frames is an error.
    """
    w, h = info.width, info.height
    frame_bytes = w * h * 3
    buf = np.empty((chunk_size, h, w, 3), dtype=np.uint8)
    pool = FramePool((chunk_size, 3, h, w))
    index = 0
    try:
        while stop is None or index < stop:
            want = chunk_size if stop is None else min(chunk_size, stop - index)
            view = memoryview(buf.reshape(-1))[: want * frame_bytes]
            got = _read_exact(proc.stdout, view)
            n, rest = divmod(got, frame_bytes)
            if rest:
                proc.finish(what)  # raises ffmpeg's own reason if it failed
                raise MediaError(f"ffmpeg output for {what} ended mid-frame",
                                 hint="the filter chain changed the frame size mid-stream; "
                                      "end it with scale=W:H")
            lo = max(0, start - index)
            if n > lo:
                frames = to_float_into(buf[lo:n], pool.acquire(n - lo))
                yield VideoChunk(frames, start=index + lo, fps=info.fps)
            index += n
            if n < want:
                break
        if stop is None or index < stop:
            proc.finish(what)
            if index == 0:
                raise MediaError(f"{what} produced no frames"
                                 + (f" with vf={vf!r}" if vf else ""),
                                 hint="check the filter chain and the input")
            if expect is not None and index < expect:
                raise MediaError(f"{what} ended after {index} of its {expect} frames: the "
                                 "file is truncated or corrupt",
                                 hint="re-download or re-encode it; `ffmpeg -i in.mp4 out.mp4` "
                                      "keeps what is readable")
    finally:
        pool.close()


class FFmpegReader(VideoReader):
    """ffmpeg decodes a file (through an optional filter chain) to rgb24 frames on a pipe.

    Sequential access only; each :meth:`chunks` call starts a fresh ffmpeg, so the file can be
    read more than once. Size and fps (after the filters) come from a one-frame probe run.
    """

    reader_name = "ffmpeg"

    def __init__(self, path: str, *, size: tuple[int, int] | int | None = None,
                 vf: str | None = None) -> None:
        super().__init__(path)
        self._proc: _Process | None = None
        if is_sequence_pattern(path):
            if not _sequence_files(path):
                raise MediaError(f"no files match the image-sequence pattern {path!r}",
                                 hint="check the folder and the %0Nd width (out_%05d.png)")
        else:
            check_input_file(path)
        probe = probe_file(os.path.abspath(path))
        if not probe.has_video:
            if probe.error and is_sequence_pattern(path):
                raise MediaError(f"cannot read image sequence {path!r}: {probe.error}",
                                 hint="check that the files are images of one size")
            if probe.error:
                raise _diagnose_unreadable(path, probe.error)
            raise MediaError(f"{path!r} has no video stream", hint="pass a file with a video track")
        # ffmpeg's scale also reads -1 as "keep the aspect ratio", like our decord path
        self.vf = _vf_chain(vf, _normalize_size(size))
        self._input = os.path.abspath(path)
        header = self._probe_header()
        # ffmpeg's durations are approximate and filters may drop or add frames: the count is
        # known only at the end of the stream
        self.info = StreamInfo(kind=PadKind.VIDEO, fps=float(header.fps), width=header.width,
                               height=header.height, num_frames=None,
                               meta={"reader": self.reader_name, "path": path, "vf": self.vf,
                                     "fps_fraction": f"{header.fps.numerator}/{header.fps.denominator}"})

    def _probe_header(self):
        """Run the decode for one frame as y4m: its header holds the exact post-filter W, H, F."""
        cmd = _decode_cmd(self._input, self.vf, ["-frames:v", "1", "-f", "yuv4mpegpipe",
                                                 "-pix_fmt", "yuv444p", "-strict", "-1"])
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise MediaError(f"ffmpeg timed out opening {self.path!r}",
                             hint="check the input and the vf= filter chain") from None
        from .y4m import parse_header

        line = proc.stdout.split(b"\n", 1)[0]
        if proc.returncode != 0 or not line.startswith(Y4M_MAGIC):
            reason = last_meaningful_line(proc.stderr.decode("utf-8", "replace").splitlines(),
                                          "it produced no frames")
            where = f" with vf={self.vf!r}" if self.vf else ""
            raise MediaError(f"ffmpeg cannot decode {self.path!r}{where}: {reason}",
                             hint="fix the filter chain (same syntax as ffmpeg -vf)" if self.vf
                             else "check that it is a complete video file")
        return parse_header(line + b"\n")

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, start: int = 0,
               stop: int | None = None) -> Iterator[VideoChunk]:
        """Yield consecutive frames ``[start, stop)``; decoding restarts from the beginning."""
        _check_chunk_size(chunk_size)
        self._check_open()
        start, stop = self._check_range(start, stop)
        if self._proc is not None:
            self._proc.kill()
        proc = _Process(_decode_cmd(self._input, self.vf, _RGB24))
        self._proc = proc
        try:
            yield from _pipe_chunks(proc, repr(self.path), self.info, chunk_size, start, stop,
                                    vf=self.vf)
        finally:
            proc.kill()
            if self._proc is proc:
                self._proc = None

    def close(self) -> None:
        """Stop ffmpeg if it runs; idempotent."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        super().close()

