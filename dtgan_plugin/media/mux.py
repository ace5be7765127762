"""The one audio muxer: an encoded video plus a source's audio track, stream-copied when the
container takes the codec, re-encoded otherwise, cut to the video's duration.

Used by :class:`~dtgan_plugin.media.writer.VideoWriter` (``audio_from``) and by ``dtgan batch``
(``--keep-audio``).
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from dtgan_plugin.errors import EncodeError

from .ffmpeg_bin import base_cmd, last_meaningful_line, probe_file

# audio codecs each container takes by stream copy; anything else is re-encoded
AUDIO_COPY: dict[str, tuple[frozenset[str] | None, str]] = {
    ".mp4": (frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}), "aac"),
    ".m4v": (frozenset({"aac", "mp3", "alac", "ac3", "eac3"}), "aac"),
    ".mov": (frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be",
                        "pcm_s24le", "pcm_f32le"}), "aac"),
    ".ts": (frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}), "aac"),
    ".avi": (frozenset({"mp3", "ac3", "pcm_s16le", "mp2"}), "libmp3lame"),
    ".webm": (frozenset({"opus", "vorbis"}), "libopus"),
    ".mkv": (None, "aac"),  # Matroska holds nearly any codec
    ".nut": (None, "aac"),
}


def atempo_factors(tempo: float) -> list[float]:
    """FFmpeg ``atempo`` factors whose product is ``tempo`` (none for 1.0).

    Each factor stays within [0.5, 2]: beyond 2 atempo drops samples instead of overlapping
    them, so larger changes are chained, as FFmpeg's documentation advises.
    """
    factors: list[float] = []
    while tempo > 2.0:
        factors.append(2.0)
        tempo /= 2.0
    while tempo < 0.5:
        factors.append(0.5)
        tempo /= 0.5
    if abs(tempo - 1.0) > 1e-9:
        factors.append(tempo)
    return factors


def source_audio_codec(source: str | os.PathLike) -> str | None:
    """The codec of ``source``'s first audio track, or None when it has none."""
    codecs = probe_file(os.path.abspath(source)).audio_codecs
    return codecs[0] if codecs else None


def _command(video: Path, source: str, out: Path, acodec: str, duration: Fraction,
             offset: float, tempo: float, ext: str) -> list[str]:
    import ffmpeg  # ffmpeg-python builds the argument list, we run it ourselves

    v = ffmpeg.input(str(Path(video).absolute()))
    a_kw = {"ss": f"{offset:.6f}"} if offset > 0 else {}
    a = ffmpeg.input(os.path.abspath(source), **a_kw)["a"]
    for factor in atempo_factors(tempo):
        a = a.filter("atempo", f"{factor:.9g}")
    kw: dict[str, Any] = {"vcodec": "copy", "acodec": acodec, "t": f"{float(duration):.6f}"}
    if ext in (".mp4", ".m4v", ".mov"):
        kw["movflags"] = "+faststart"
    return ffmpeg.output(v["v"], a, str(Path(out).absolute()), **kw).compile(
        cmd=base_cmd() + ["-nostdin"], overwrite_output=True)


def mux_audio(video: Path, source: str | os.PathLike, out: Path, *, duration: Fraction,
              audio_codec: str | None, offset: float = 0.0, tempo: float = 1.0,
              what: str | None = None, hint: str = "drop audio_from, or convert the audio first"
              ) -> None:
    """Write ``out`` = ``video``'s picture + ``source``'s first audio track, ``duration`` long.

    ``audio_codec`` is the source's (see :func:`source_audio_codec`); the audio is copied when
    the container takes it and no tempo change is asked, re-encoded otherwise. EncodeError
    names ``what`` (default: the output) and the cause.
    """
    ext = Path(out).suffix.lower()
    allowed, fallback = AUDIO_COPY.get(ext, (frozenset(), "aac"))
    # a tempo change re-encodes: a stream copy cannot be filtered
    copy_ok = (allowed is None or audio_codec in allowed) and tempo == 1.0
    reason = ""
    for acodec in (["copy", fallback] if copy_ok else [fallback]):
        cmd = _command(video, os.fspath(source), out, acodec, duration, offset, tempo, ext)
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode == 0:
            return
        reason = last_meaningful_line(proc.stderr.decode("utf-8", "replace").splitlines(),
                                      f"exit status {proc.returncode}")
        if "no space left" in reason.lower():
            raise EncodeError(f"no space left on device writing {str(out)!r}",
                              hint="free some disk space or write elsewhere")
    label = what or repr(str(out))
    raise EncodeError(f"adding the audio of {os.fspath(source)!r} to {label} failed: {reason}",
                      hint=hint)


__all__ = ["AUDIO_COPY", "atempo_factors", "mux_audio", "source_audio_codec"]
