"""Video readers: decord for files (random access, fastest here), ffmpeg pipes and y4m for the rest.

``open_video(path)`` picks the reader:

* ``"-"`` (stdin), a FIFO or any other non-regular file: streamed. A YUV4MPEG2 stream is parsed
  directly (exact fps such as 30000/1001); anything else, or any stream with ``vf``, goes through
  an ffmpeg process that turns it into y4m. Sequential only, readable once.
* a regular file with ``vf`` (a plain FFmpeg filter chain such as ``"scale=32:32,hflip"``), or an
  extension decord does not handle (``.gif`` …): :class:`FFmpegReader`, ffmpeg decoding to rgb24
  on a pipe. A short probe run of the same command first gives the exact size and frame rate
  after the filters, so the reader knows them before the first frame and a bad filter chain fails
  at open time. Sequential; each ``chunks()`` call restarts ffmpeg.
* a ``.y4m`` file: :class:`Y4MReader` (random access when frame records have a fixed size).
* any other video file: :class:`DecordReader`.

All readers yield :class:`~dtgan_plugin.stream.VideoChunk` of float32 frames in [0, 1], shape
``(T, 3, H, W)``, and never hold more than one chunk: memory does not grow with video length.
``size`` is ``(width, height)`` in FFmpeg's order (``scale=W:H``); ``-1`` for one side keeps the
aspect ratio.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import torch

from dtgan_plugin.errors import MediaError, OptionError
from dtgan_plugin.stream import DEFAULT_CHUNK, PadKind, StreamInfo, VideoChunk

from . import DECORD_EXTENSIONS, IMAGE_EXTENSIONS
from .framepool import FramePool, to_float_into
from .ffmpeg_bin import (StderrDrain, base_cmd, fps_fraction, kill_process, last_meaningful_line,
                         probe_file)
from .y4m import MAGIC as Y4M_MAGIC
from .y4m import Y4MStream, _read_exact, planes_to_rgb

# MPEG-TS and Ogg are left to ffmpeg: decord 0.6 fails on them ("Unable to handle EOF",
# "broken metadata") although they are valid; other files it cannot index fall back likewise.
_DECORD_LIMITS = ("Failed to measure duration", "Unable to handle EOF", "DECORD_REWIND")
_DECORD_PREFIX = re.compile(r"^(\[[\d:]+\]\s*)?\S*\.cc:\d+:\s*(\[[^\]]*\]\s*)?(Error:\s*|ERROR\s*)?")


class _DecordCannotIndex(Exception):
    """decord cannot index a file that ffmpeg may still decode sequentially."""


STDIN = "-"


class FrameRangeError(MediaError, IndexError):
    """A frame index or range outside the video (also an IndexError for Python idioms)."""


_SEQ_PATTERN = re.compile(r"%0?\d*d")


def is_sequence_pattern(path: str | os.PathLike) -> bool:
    """True for an image-sequence name such as ``frames/out_%05d.png`` (``%%`` is a literal %)."""
    return bool(_SEQ_PATTERN.search(os.path.basename(os.fspath(path)).replace("%%", "")))


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the path's extension is a still-image format we read (not a %d sequence)."""
    path = os.fspath(path)
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS and not is_sequence_pattern(path)


def _sequence_files(pattern: str) -> list[str]:
    """Files an image-sequence pattern matches (``%05d`` -> five or more digits)."""
    import glob

    folder, name = os.path.split(pattern)
    regex = re.compile("^" + _SEQ_PATTERN.sub(
        lambda m: r"\d{%s,}" % int(m.group()[1:-1] or 1), re.escape(name).replace("%%", "%")
    ) + "$")
    # re.escape leaves '%' and digits alone, so the substitution above still finds %05d
    return sorted(f for f in glob.glob(os.path.join(glob.escape(folder or "."), "*"))
                  if regex.match(os.path.basename(f)))


# ---------------------------------------------------------------------------------------------
# helpers

def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise OptionError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _normalize_size(size: Any) -> tuple[int, int] | None:
    """Validate ``size``: None, an int (square) or (width, height) with -1 for 'keep aspect'."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise OptionError(f"size must be (width, height), got {size!r}") from None
    if (w < 1 and w != -1) or (h < 1 and h != -1) or (w == -1 and h == -1):
        raise OptionError(f"size must be positive (width, height), one side may be -1; got {size!r}")
    return w, h


def _resolve_size(size: tuple[int, int], src_w: int, src_h: int) -> tuple[int, int]:
    """Fill a -1 side from the source aspect ratio (rounded to the nearest pixel)."""
    w, h = size
    if w == -1:
        w = max(1, round(src_w * h / src_h))
    if h == -1:
        h = max(1, round(src_h * w / src_w))
    return w, h


def _looks_like_text(head: bytes) -> bool:
    """True when a file's first bytes are printable text (a log, a URL list, an HTML error page)."""
    if not head or b"\x00" in head or head.startswith(Y4M_MAGIC):
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\r\n\t\f" for ch in text)


def check_input_file(path: str, what: str = "video") -> os.stat_result:
    """Fail early and clearly for a missing, unreadable, directory or zero-byte input."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        hint = "check the path" if os.path.isdir(parent) else f"folder {parent!r} does not exist either"
        raise MediaError(f"{what} file not found: {path!r}", hint=hint) from None
    except PermissionError:
        raise MediaError(f"cannot access {what} {path!r}: permission denied",
                         hint="check the file's permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(f"{path!r} is a directory, not a {what} file",
                         hint="pass a file, or use `dtgan batch` for a folder of videos")
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise MediaError(f"{what} file {path!r} is empty (0 bytes)",
                             hint="the file was not written completely; re-create or re-download it")
        if not os.access(path, os.R_OK):
            raise MediaError(f"cannot read {what} {path!r}: permission denied",
                             hint="check the file's permissions")
    return st


def _clean_decord(text: str) -> str:
    """decord's exception text without its source-file prefixes or raw FFmpeg error numbers."""
    line = last_meaningful_line([_DECORD_PREFIX.sub("", l) for l in text.splitlines()],
                                "unknown error")
    if "av_read_frame failed" in line:
        return "frame data is missing or damaged"
    return line


def _diagnose_unreadable(path: str, detail: str) -> MediaError:
    """Turn a failed open into one clear line, asking ffmpeg for the precise cause."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if _looks_like_text(head):
        return MediaError(f"{path!r} is a text file, not a video",
                          hint="pass the actual video file")
    probe = probe_file(path)
    if probe.audio_codecs and not probe.has_video:
        return MediaError(f"{path!r} has no video stream (audio only)",
                          hint="pass a file with a video track")
    if not probe.has_video and not probe.error:
        return MediaError(f"{path!r} has no video stream",
                          hint="pass a file with a video track")
    cause = probe.error or detail
    lower = " ".join(probe.messages + [detail]).lower()
    if "moov atom not found" in lower:
        return MediaError(f"cannot read video {path!r}: the file is truncated or not an mp4/mov "
                          "(moov atom not found)",
                          hint="re-download or re-encode it; an interrupted write loses the mp4 index")
    if "end of file" in lower:
        return MediaError(f"video {path!r} contains no frames (it ends before the first one)",
                          hint="the file is empty or was cut short; re-create it")
    if "partial file" in lower:
        return MediaError(f"cannot read video {path!r}: the file is truncated ({cause})",
                          hint="re-download or re-encode it")
    if probe.has_video:
        return MediaError(f"cannot decode video {path!r}: the file is truncated or corrupt "
                          f"({detail or cause})",
                          hint="re-download or re-encode it; `ffmpeg -i in.mp4 out.mp4` keeps what is readable")
    return MediaError(f"cannot read video {path!r}: {cause or 'unknown format'}",
                      hint="check that it is a complete video file; ffmpeg -i shows what it holds")


_fd2_lock = threading.Lock()


@contextlib.contextmanager
def _capture_fd2() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (decord logs open errors there).

    The captured lines are handed to the caller; lines that are not decord's are written back
    afterwards, so nothing another thread printed meanwhile is lost, only delayed.
    """
    captured: list[str] = []
    with _fd2_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (some embedded hosts): nothing to silence
            yield captured
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
                captured.extend(line for line in text.splitlines() if line.strip())
                foreign = [line for line in captured if "video_reader.cc" not in line
                           and "/src/" not in line]
                if foreign:
                    try:
                        sys.stderr.write("\n".join(foreign) + "\n")
                    except (AttributeError, ValueError, OSError):
                        pass


# ---------------------------------------------------------------------------------------------
# readers

class VideoReader:
    """Base of every reader: stream info, chunked streaming, optional random access."""

    #: whether :meth:`frame` and :meth:`get_batch` work
    random_access: bool = False
    #: the reader's registry name
    reader_name: str = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.info: StreamInfo = StreamInfo(kind=PadKind.VIDEO)
        self._closed = False
        self._has_audio: bool | None = None

    # -- metadata --------------------------------------------------------------------------
    @property
    def has_audio(self) -> bool:
        """True when the source file has at least one audio stream (False for pipes)."""
        if self._has_audio is None:
            self._has_audio = (self.path != STDIN and os.path.isfile(self.path)
                               and bool(probe_file(self.path).audio_codecs))
        return self._has_audio

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self.info.fps

    @property
    def num_frames(self) -> int | None:
        """Frame count, or None when unknown until the end (pipes)."""
        return self.info.num_frames

    def __len__(self) -> int:
        if self.info.num_frames is None:
            raise TypeError(f"the length of {self.path!r} is unknown until it has been read")
        return self.info.num_frames

    def __repr__(self) -> str:
        i = self.info
        return (f"{type(self).__name__}({self.path!r}, {i.width}x{i.height}, fps={i.fps:.6g}, "
                f"frames={i.num_frames})")

    # -- access ----------------------------------------------------------------------------
    def _no_random_access(self) -> MediaError:
        return MediaError(f"{self.reader_name} reader for {self.path!r} is sequential: random "
                          "access is not available",
                          hint="use chunks(), or open a regular file without vf= for random access")

    def frame(self, index: int) -> torch.Tensor:
        """Frame ``index`` as float32 (3, H, W) in [0, 1] (negative indices count from the end)."""
        return self.get_batch([index])[0]

    def get_batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` as float32 (N, 3, H, W) in [0, 1]."""
        raise self._no_random_access()

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, start: int = 0,
               stop: int | None = None) -> Iterator[VideoChunk]:
        """Yield consecutive frames ``[start, stop)`` as chunks of at most ``chunk_size``."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[VideoChunk]:
        return self.chunks()

    def _check_range(self, start: int, stop: int | None) -> tuple[int, int | None]:
        n = self.info.num_frames
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise OptionError(f"start must be a non-negative integer, got {start!r}")
        if stop is not None:
            if isinstance(stop, bool) or not isinstance(stop, int) or stop < start:
                raise OptionError(f"stop must be an integer >= start ({start}), got {stop!r}")
            if n is not None:
                stop = min(stop, n)
        if n is not None and start > n:
            raise FrameRangeError(f"start frame {start} is beyond the end of {self.path!r} "
                                  f"({n} frames)", hint=f"use start < {n}")
        return start, stop

    def _normalize_indices(self, indices: Sequence[int]) -> list[int]:
        n = self.info.num_frames
        assert n is not None
        out = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise OptionError(f"frame indices must be integers, got {i!r}")
            j = int(i) + n if i < 0 else int(i)
            if not 0 <= j < n:
                raise FrameRangeError(f"frame {int(i)} is out of range for {self.path!r} "
                                      f"({n} frames)", hint=f"use an index in 0..{n - 1}")
            out.append(j)
        return out

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Release the decoder (and any ffmpeg process); idempotent."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise MediaError(f"reader for {self.path!r} is closed", hint="open the video again")

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class DecordReader(VideoReader):
    """decord-backed reader for video files: random access, resize on decode, chunked streaming.

    decord indexes the file (frame count, fps, size) and serves random access (:meth:`frame`,
    :meth:`get_batch`). Sequential streaming from the start (:meth:`chunks`, what graphs and
    ``dtgan transfer`` use) goes through an ffmpeg process instead (``stream="ffmpeg"``, the
    default), for two measured reasons: decord's threaded decoder keeps frames it has decoded
    ahead in unbounded queues whenever the consumer does real work per chunk, so its memory
    grows with the length of the video (256x256, one torch op per chunk of 32: 350 MiB after
    300 frames, 580 MiB after 3,000, 710 MiB after 9,000), while ffmpeg's stays flat; and a
    separate process decodes on another core while Python works on the previous chunk. The
    frames are bit-identical to decord's. ``stream="decord"`` keeps decord for everything.
    """

    random_access = True
    reader_name = "decord"

    def __init__(self, path: str, *, size: tuple[int, int] | int | None = None,
                 num_threads: int = 0, stream: str = "ffmpeg") -> None:
        super().__init__(path)
        if stream not in ("ffmpeg", "decord"):
            raise OptionError(f"stream must be 'ffmpeg' or 'decord', got {stream!r}")
        self.stream = stream
        self._vr = None
        self._per_frame = False
        size = _normalize_size(size)
        check_input_file(path)
        import decord  # heavy import, only when a video is really opened

        decord.logging.set_level(decord.logging.QUIET)
        # an absolute path keeps names like "a:b.mp4" from being taken as a protocol
        target = os.path.abspath(path)
        try:
            with _capture_fd2() as noise:
                if size is not None and -1 not in size:
                    vr = decord.VideoReader(target, width=size[0], height=size[1],
                                            num_threads=num_threads)
                else:
                    vr = decord.VideoReader(target, num_threads=num_threads)
                    if size is not None and len(vr):
                        # decord keeps the source size for a -1 side; we keep the aspect ratio
                        src_h, src_w = vr[0].shape[:2]
                        w, h = _resolve_size(size, src_w, src_h)
                        vr = decord.VideoReader(target, width=w, height=h, num_threads=num_threads)
                n = len(vr)
                if n:
                    first = vr[0].shape  # decoding one frame proves the stream is decodable
                    vr.seek(0)
        except (RuntimeError, decord.DECORDError) as err:
            text = "\n".join(list(noise) + str(err).splitlines())
            if any(marker in text for marker in _DECORD_LIMITS):
                raise _DecordCannotIndex(text) from None
            raise _diagnose_unreadable(path, _clean_decord(text)) from None
        if n == 0:
            raise MediaError(f"video {path!r} contains no frames", hint="pass a non-empty video")
        fps = float(fps_fraction(vr.get_avg_fps())) if vr.get_avg_fps() > 0 else 25.0
        self._vr = vr
        self.info = StreamInfo(kind=PadKind.VIDEO, fps=fps, width=int(first[1]),
                               height=int(first[0]), num_frames=n,
                               meta={"reader": self.reader_name, "path": path})

    def _decode(self, indices: list[int]) -> torch.Tensor:
        import decord
        from torch.utils.dlpack import from_dlpack

        self._check_open()
        try:
            if not self._per_frame:
                try:
                    nd = self._vr.get_batch(indices)
                except decord.DECORDError as err:
                    # decord 0.6 get_batch fails for some frame sizes (widths 8, 16, 24, 48 at
                    # some heights: "DECORDArrayCopyFromTo") while single frames decode fine
                    if "DECORDArrayCopyFromTo" not in str(err):
                        raise
                    self._per_frame = True
                else:
                    # DLPack hands decord's buffer to torch without the copy asnumpy() makes
                    return from_dlpack(nd.to_dlpack()).permute(0, 3, 1, 2).to(
                        torch.float32, memory_format=torch.contiguous_format).div_(255.0)
            h, w = self.info.height, self.info.width
            out = torch.empty((len(indices), 3, h, w))
            for k, i in enumerate(indices):
                frame = self._vr[i].asnumpy()
                if frame.shape[-1] != 3:
                    # the same bug: rows come padded to the decoder's line size but the shape
                    # claims (H, W, C'); the first W pixels of each padded row are the frame
                    frame = frame.reshape(frame.shape[0], -1, 3)[:, :w]
                if frame.shape != (h, w, 3):
                    raise RuntimeError(f"decord returned a frame shaped {frame.shape}")
                out[k].copy_(torch.from_numpy(frame).permute(2, 0, 1))
            return out.div_(255.0)
        except (RuntimeError, decord.DECORDError) as err:
            raise MediaError(
                f"decoding frames {indices[0]}..{indices[-1]} of {self.path!r} failed: the file "
                f"is truncated or corrupt ({_clean_decord(str(err))})",
                hint="re-download or re-encode it; `ffmpeg -i in.mp4 out.mp4` keeps what is readable",
            ) from None

    def get_batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` as float32 (N, 3, H, W) in [0, 1]."""
        idx = self._normalize_indices(indices)
        if not idx:
            return torch.empty((0, 3, self.info.height, self.info.width))
        return self._decode(idx)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK, start: int = 0,
               stop: int | None = None) -> Iterator[VideoChunk]:
        """Yield consecutive frames ``[start, stop)`` as chunks of at most ``chunk_size``.

        From the start of the file the frames are streamed by an ffmpeg process (see the
        class docstring); from a later ``start``, decord seeks there and decodes in batches.
        """
        _check_chunk_size(chunk_size)
        self._check_open()
        start, stop = self._check_range(start, stop)
        end = self.info.num_frames if stop is None else stop
        if self.stream == "ffmpeg" and start < chunk_size:
            yield from self._stream(chunk_size, start, end)
            return
        for s in range(start, end, chunk_size):
            e = min(end, s + chunk_size)
            yield VideoChunk(self._decode(list(range(s, e))), start=s, fps=self.info.fps)

    def _stream(self, chunk_size: int, start: int, end: int) -> Iterator[VideoChunk]:
        """Sequential frames from an ffmpeg pipe, identical to decord's (same size, bilinear)."""
        w, h = self.info.width, self.info.height
        # decord scales with libavfilter's default (bilinear); the ffmpeg CLI's default is
        # bicubic. The explicit scale also pins the geometry decord reported (rotation, odd
        # sizes), so the raw frames can never be misread. Measured bit-exact against decord.
        cmd = _decode_cmd(os.path.abspath(self.path), f"scale={w}:{h}:flags=bilinear",
                          ["-fps_mode", "passthrough", "-frames:v", str(end), *_RGB24])
        proc = _Process(cmd, hint="check that it is a complete video file")
        try:
            yield from _pipe_chunks(proc, repr(self.path), self.info, chunk_size, start, end,
                                    expect=self.info.num_frames)
        finally:
            proc.kill()

    def close(self) -> None:
        """Release the decoder; idempotent."""
        self._vr = None
        super().close()


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


# ---------------------------------------------------------------------------------------------
# entry points

def open_video_stream(stream: IO[bytes], *, name: str = STDIN,
                      size: tuple[int, int] | int | None = None, vf: str | None = None,
                      owns_stream: bool = False) -> VideoReader:
    """Read a video from a binary stream (stdin, a FIFO, a socket): y4m parsed directly, anything
    else (or any ``vf``/``size``) decoded by an ffmpeg process into y4m first."""
    head = b""
    while len(head) < len(Y4M_MAGIC):  # raw pipes may return short reads
        more = stream.read(len(Y4M_MAGIC) - len(head))
        if not more:
            break
        head += more
    label = "stdin" if name == STDIN else repr(name)
    if not head:
        raise MediaError(f"{label} is empty: no video data arrived",
                         hint="check the command that feeds the pipe")
    chain = _vf_chain(vf, _normalize_size(size))
    if head == Y4M_MAGIC and chain is None:
        return Y4MReader(stream, name=name, prefix=head, owns_stream=owns_stream)
    cmd = base_cmd() + ["-i", "pipe:0"]
    if chain:
        cmd += ["-vf", chain]
    cmd += ["-an", "-sn", "-dn", "-f", "yuv4mpegpipe", "-pix_fmt", "yuv444p", "-strict", "-1",
            "pipe:1"]
    proc = _Process(cmd, feed=stream, prefix=head,
                    hint="pipe y4m (ffmpeg ... -f yuv4mpegpipe -) or a streamable container "
                         "(mkv, nut, mpegts); an mp4 cannot be piped unless made with "
                         "-movflags +faststart")
    return Y4MReader(proc.stdout, name=name, process=proc, info_meta={"vf": chain})


def open_video(path: str | os.PathLike, *, size: tuple[int, int] | int | None = None,
               vf: str | None = None) -> VideoReader:
    """Open a video file, ``"-"`` (stdin) or a FIFO for reading; see the module docstring."""
    path = os.fspath(path)
    if vf is not None and not isinstance(vf, str):
        raise OptionError(f"vf must be an FFmpeg filter chain string, got {vf!r}")
    if vf is not None and not vf.strip():
        vf = None
    if path == STDIN:
        return open_video_stream(sys.stdin.buffer, name=STDIN, size=size, vf=vf)
    if is_image_path(path):
        raise MediaError(f"{path!r} is an image, not a video",
                         hint="pass it where an image is expected (e.g. the transfer target)")
    if is_sequence_pattern(path) and os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        return FFmpegReader(path, size=size, vf=vf)  # ffmpeg's image2 demuxer reads %d patterns
    st = check_input_file(path)
    if not stat.S_ISREG(st.st_mode):
        return open_video_stream(open(path, "rb"), name=path, size=size, vf=vf, owns_stream=True)
    ext = os.path.splitext(path)[1].lower()
    if vf is None and ext == ".y4m":
        fh = open(path, "rb")
        head = fh.read(len(Y4M_MAGIC))
        if head == Y4M_MAGIC and size is None:
            try:
                return Y4MReader(fh, name=path, prefix=head, owns_stream=True)
            except BaseException:
                fh.close()
                raise
        fh.close()
        return FFmpegReader(path, size=size)
    if vf is None and ext in DECORD_EXTENSIONS:
        try:
            return DecordReader(path, size=size)
        except _DecordCannotIndex:
            pass  # valid for ffmpeg (a streamed mkv without duration): read it sequentially
    return FFmpegReader(path, size=size, vf=vf)


def probe(path: str | os.PathLike) -> StreamInfo:
    """What a file holds (kind, size, fps, frame count) without decoding it."""
    path = os.fspath(path)
    if path == STDIN:
        raise MediaError("stdin cannot be probed without consuming it",
                         hint="open it with open_video('-') and read .info")
    if is_image_path(path):
        from .image import probe_image

        return probe_image(path)
    with open_video(path) as reader:
        return reader.info
