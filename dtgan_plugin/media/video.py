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

import os
import stat
import sys
from typing import IO

from dtgan_plugin.errors import MediaError, OptionError
from dtgan_plugin.stream import StreamInfo

from . import DECORD_EXTENSIONS, IMAGE_EXTENSIONS
from .decord_reader import DecordReader
from .ffmpeg_bin import base_cmd
from .ffmpeg_reader import FFmpegReader, _Process, _vf_chain
from .reader_base import (STDIN, FrameRangeError, VideoReader, _DecordCannotIndex,
                          _normalize_size, check_input_file, is_image_path, is_sequence_pattern)
from .y4m import MAGIC as Y4M_MAGIC
from .y4m_reader import Y4MReader

__all__ = ["DecordReader", "FFmpegReader", "FrameRangeError", "STDIN", "VideoReader",
           "Y4MReader", "check_input_file", "is_image_path", "is_sequence_pattern", "open_video",
           "open_video_stream", "probe"]


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
