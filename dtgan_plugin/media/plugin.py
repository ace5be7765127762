"""Built-in media plugin: registers the video readers and the ffmpeg writer through the hooks.

Registered exactly like a third-party plugin, and consulted the same way: a graph opens every
video input and output with the best match of the registry
(:mod:`dtgan_plugin.graph.openers`), so a plugin's reader or writer for a new extension, or
with a higher priority, takes over. Importing this module stays cheap (no torch, no decord):
the openers import the media modules when they are first called.

Readers (highest priority whose extensions match wins; ``"*"`` matches any path, ``"-"`` stdin):

* ``y4m`` (priority 20; ``.y4m``, ``-``): YUV4MPEG2 parsed directly, exact fps.
* ``decord`` (priority 10; common video containers): :func:`~dtgan_plugin.media.open_video`,
  which uses decord and routes ``vf=`` and files decord cannot index to ffmpeg.
* ``ffmpeg`` (priority 0; ``*``): ffmpeg decodes anything it can read, sequentially.

Writer: ``ffmpeg`` (``.mp4 .mov .m4v .ts .mkv .avi .nut .webm .gif .y4m``, PNG sequences, ``-``;
also used for a path no writer claims, so that VideoWriter names what is wrong with it). The
graph passes ``codec``, ``crf``, ``audio_from``, ``vf``, ``audio_offset`` and ``audio_tempo``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from dtgan_plugin.hooks.hookspecs import hookimpl

from . import DECORD_EXTENSIONS, FFMPEG_VIDEO_EXTENSIONS

ANY = "*"
WRITER_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".ts", ".mkv", ".avi", ".nut",
                                      ".webm", ".gif", ".y4m", ".png", "-")


def open_decord(path: str | os.PathLike, **options: Any):
    """Opener for the ``decord`` reader: decord when it can, ffmpeg for ``vf`` or odd files."""
    from .video import open_video

    return open_video(path, **options)


def open_ffmpeg(path: str | os.PathLike, **options: Any):
    """Opener for the ``ffmpeg`` reader: any file ffmpeg reads, stdin, FIFOs, %d sequences."""
    import stat
    import sys

    from .video import STDIN, FFmpegReader, open_video_stream

    path = os.fspath(path)
    if path == STDIN:
        return open_video_stream(sys.stdin.buffer, name=STDIN, **options)
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True  # a %d pattern or a missing file: FFmpegReader reports it precisely
    if not regular:
        return open_video_stream(open(path, "rb"), name=path, owns_stream=True, **options)
    return FFmpegReader(path, **options)


def open_y4m(path: str | os.PathLike, **options: Any):
    """Opener for the ``y4m`` reader (``.y4m`` files and stdin)."""
    from .video import open_video

    return open_video(path, **options)


def open_writer(path: str | os.PathLike, *, fps: float, width: int, height: int,
                **options: Any):
    """Factory for the ``ffmpeg`` writer: a :class:`~dtgan_plugin.media.writer.VideoWriter`."""
    from .writer import VideoWriter

    return VideoWriter(path, fps=fps, width=width, height=height, **options)


@hookimpl
def dtgan_register_readers(register: Callable[..., None]) -> None:
    """Register the y4m, decord and ffmpeg readers."""
    register("y4m", open_y4m, extensions=(".y4m", "-"), priority=20)
    register("decord", open_decord, extensions=DECORD_EXTENSIONS, priority=10)
    register("ffmpeg", open_ffmpeg, extensions=(ANY, *FFMPEG_VIDEO_EXTENSIONS, "-"), priority=0)


@hookimpl
def dtgan_register_writers(register: Callable[..., None]) -> None:
    """Register the ffmpeg writer (every codec of VideoWriter, stdout included)."""
    register("ffmpeg", open_writer, extensions=WRITER_EXTENSIONS, priority=0)
