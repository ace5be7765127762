"""The shared part of the video readers: input checks, size handling, decord diagnostics and
the :class:`VideoReader` base class (see :mod:`dtgan_plugin.media.video` for the readers)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from dtgan_plugin.errors import MediaError, OptionError
from dtgan_plugin.stream import DEFAULT_CHUNK, PadKind, StreamInfo, VideoChunk

from . import IMAGE_EXTENSIONS
from .ffmpeg_bin import last_meaningful_line, probe_file
from .y4m import MAGIC as Y4M_MAGIC


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


