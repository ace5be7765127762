"""Video writer: RGB frames piped into an ffmpeg process (command built with ffmpeg-python).

Codecs (``codec="auto"`` picks by extension):

======== ============================ =================== ==========================================
codec    encoder                      containers          notes
======== ============================ =================== ==========================================
h264     libx264, yuv420p             .mp4 .m4v .mov .ts  crf 18, preset veryfast; odd sizes are
                                      (.mkv .avi)         padded by one black column/row (4:2:0
                                                          needs even sizes); +faststart for mp4/mov
h264rgb  libx264rgb, rgb24, qp 0      .mkv .mp4 .mov      lossless RGB (few players; for pipelines)
ffv1     ffv1, bgr0, intra-only       .mkv .avi .nut      lossless; **the default for .mkv/.avi**,
                                                          since Matroska is the usual intermediate
vp9      libvpx-vp9, yuv420p          .webm (.mkv .mp4)   crf 32 with b:v 0; preset = deadline
                                                          (realtime, good, best), default good
gif      palettegen + paletteuse      .gif                one global palette (ffmpeg keeps the clip's
                                                          frames until the end: GIFs are short)
png      png, rgb24                   out_%05d.png        an image sequence numbered from 1
y4m      yuv4mpegpipe, yuv420p        .y4m, "-"           raw frames for another program
======== ============================ =================== ==========================================

Path ``"-"`` writes to stdout: y4m by default; h264, h264rgb, ffv1 and vp9 as Matroska, gif as
GIF, png as an image2pipe stream. Files are written to a temporary name beside the target
(:func:`dtgan_plugin.atomic.temp_path`; stale ones of dead runs are removed first) and renamed
into place by :meth:`VideoWriter.close`; an abort or an exception inside
``with`` leaves nothing behind. ``audio_from`` copies a source's audio in a second, stream-copy
mux at close (re-encoded only when the container cannot hold the codec); the output then lasts
exactly as long as its video, whether the audio is longer or shorter.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dtgan_plugin.errors import EncodeError, MediaError, OptionError
from dtgan_plugin.stream import VideoChunk

from dtgan_plugin.atomic import clean_stale, commit, discard, temp_path

from .ffmpeg_bin import (StderrDrain, base_cmd, fps_fraction, fps_str, kill_process,
                         last_meaningful_line)
# atempo_factors is re-exported: callers imported it from here before media.mux existed
from .mux import atempo_factors, mux_audio, source_audio_codec  # noqa: F401
from .video import is_sequence_pattern

STDOUT = "-"
#: float scratch for the uint8 conversion, per band of rows
_SCRATCH_BYTES = 4 << 20
CODECS: tuple[str, ...] = ("auto", "h264", "h264rgb", "ffv1", "vp9", "gif", "png", "y4m")

#: extension -> codec chosen by ``codec="auto"``
AUTO_CODEC: dict[str, str] = {
    ".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".ts": "h264",
    ".mkv": "ffv1", ".avi": "ffv1", ".nut": "ffv1",
    ".webm": "vp9", ".gif": "gif", ".y4m": "y4m", ".png": "png",
}
#: codec -> containers it may be written to
CONTAINERS: dict[str, tuple[str, ...]] = {
    "h264": (".mp4", ".m4v", ".mov", ".ts", ".mkv", ".avi", ".nut"),
    "h264rgb": (".mkv", ".mp4", ".mov", ".nut"),
    "ffv1": (".mkv", ".avi", ".nut"),
    "vp9": (".webm", ".mkv", ".mp4"),
    "gif": (".gif",),
    "png": (".png",),
    "y4m": (".y4m",),
}
WRITER_EXTENSIONS: tuple[str, ...] = tuple(sorted(AUTO_CODEC)) + (STDOUT,)
_STDOUT_FORMAT = {"y4m": "yuv4mpegpipe", "gif": "gif", "png": "image2pipe"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
VP9_DEADLINES = ("realtime", "good", "best")
_NO_AUDIO = ("gif", "png", "y4m")
_PATTERN = re.compile(r"%0?\d*d")


def _is_pattern(name: str) -> bool:
    """True for an image-sequence name such as ``out_%05d.png`` (``%%`` is a literal percent)."""
    return is_sequence_pattern(name)


def resolve_codec(path: str, codec: str = "auto") -> str:
    """The concrete codec for ``path`` (``auto`` by extension); OptionError for bad combinations."""
    if codec not in CODECS:
        raise OptionError(f"unknown codec {codec!r}", hint=f"choose one of {', '.join(CODECS)}")
    if path == STDOUT:
        if codec in ("auto", "y4m"):
            return "y4m"
        return codec
    ext = os.path.splitext(path)[1].lower()
    if codec == "auto":
        if _is_pattern(os.path.basename(path)) and ext == ".png":
            return "png"
        if ext == ".png":
            raise OptionError(f"{path!r}: a video written as PNG frames needs a frame-number "
                              "pattern such as out_%05d.png",
                              hint="add %05d to the name, or use write_image for a single frame")
        if ext not in AUTO_CODEC:
            raise OptionError(f"cannot choose a codec for extension {ext or '(none)'!r}",
                              hint=f"use one of {', '.join(sorted(AUTO_CODEC))} or pass codec=")
        return AUTO_CODEC[ext]
    allowed = CONTAINERS[codec]
    if ext not in allowed:
        raise OptionError(f"codec {codec} cannot be written to a {ext or 'extension-less'} file",
                          hint=f"use {' or '.join(allowed)} for {codec}, or codec=auto")
    if codec == "png" and not _is_pattern(os.path.basename(path)):
        raise OptionError(f"{path!r}: codec png writes an image sequence and needs a pattern "
                          "such as out_%05d.png", hint="add %05d to the file name")
    return codec


class VideoWriter:
    """Encode RGB frames with ffmpeg into ``path`` (or ``"-"``, stdout), atomically.

    ``write`` takes a :class:`VideoChunk` or a tensor ``(T, 3, H, W)`` (float in [0, 1] or uint8;
    ``(3, H, W)`` for one frame); ``close`` finishes and renames into place; ``abort`` kills
    ffmpeg and removes the partial output. As a context manager it closes on success and aborts
    on an exception.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float | Fraction | str, width: int,
                 height: int, codec: str = "auto", crf: int | None = None,
                 preset: str | None = None, audio_from: str | os.PathLike | None = None,
                 vf: str | None = None, overwrite: bool = True, pix_fmt: str | None = None,
                 options: dict[str, Any] | None = None, audio_offset: float = 0.0,
                 audio_tempo: float = 1.0) -> None:
        self._proc: subprocess.Popen | None = None
        self._drain: StderrDrain | None = None
        self._state = "new"
        self._temps: list[Path] = []
        self._u8: torch.Tensor | None = None
        self._scratch: torch.Tensor | None = None
        self._planar: torch.Tensor | None = None
        self.frames_written = 0
        raw_path = os.fspath(path)
        self.to_stdout = raw_path == STDOUT
        self.path = Path(raw_path) if not self.to_stdout else Path(STDOUT)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise OptionError(f"{name} must be a positive integer, got {value!r}")
        self.width, self.height = int(width), int(height)
        try:
            self.fps = fps_fraction(fps)
        except MediaError as err:
            raise OptionError(str(err)) from None
        self.codec = resolve_codec(raw_path, codec)
        self.vf = vf.strip() if isinstance(vf, str) and vf.strip() else None
        if vf is not None and not isinstance(vf, str):
            raise OptionError(f"vf must be an FFmpeg filter chain string, got {vf!r}")
        self.crf, self.preset = self._check_quality(crf, preset)
        self.pix_fmt = pix_fmt
        self.options = dict(options or {})
        self.overwrite = overwrite
        self._audio_codec: str | None = None
        self.audio_from = os.fspath(audio_from) if audio_from is not None else None
        if isinstance(audio_offset, bool) or not isinstance(audio_offset, (int, float)) \
                or not math.isfinite(audio_offset) or audio_offset < 0:
            raise OptionError(f"audio_offset must be seconds >= 0, got {audio_offset!r}")
        # where in audio_from the video's first frame is (a trimmed start skips that much audio)
        self.audio_offset = float(audio_offset)
        if isinstance(audio_tempo, bool) or not isinstance(audio_tempo, (int, float)) \
                or not math.isfinite(audio_tempo) or audio_tempo <= 0:
            raise OptionError(f"audio_tempo must be a speed factor > 0, got {audio_tempo!r}")
        # how much faster the video plays than audio_from (dtgan.retime's speed)
        self.audio_tempo = float(audio_tempo)
        if not self.to_stdout:
            self._check_output_path()
        if self.audio_from is not None:
            self._check_audio()
        if self.vf:
            self._validate_vf()
        self._start()

    # -- validation --------------------------------------------------------------------------
    def _check_quality(self, crf: int | None, preset: str | None) -> tuple[int | None, str | None]:
        codec = self.codec
        if crf is not None:
            limits = {"h264": 51, "vp9": 63}
            if codec not in limits:
                raise OptionError(f"crf applies to h264 and vp9, not {codec}",
                                  hint="drop crf, or choose codec h264 or vp9")
            if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= limits[codec]:
                raise OptionError(f"crf for {codec} must be an integer 0..{limits[codec]}, got {crf!r}")
            crf = int(crf)
        if preset is not None:
            choices = {"h264": X264_PRESETS, "h264rgb": X264_PRESETS, "vp9": VP9_DEADLINES}
            if codec not in choices:
                raise OptionError(f"preset applies to h264, h264rgb and vp9, not {codec}",
                                  hint="drop preset")
            if preset not in choices[codec]:
                raise OptionError(f"preset {preset!r} is not valid for {codec}",
                                  hint=f"choose one of {', '.join(choices[codec])}")
        return crf, preset

    def _check_output_path(self) -> None:
        parent = self.path.parent
        if not parent.is_dir():
            raise MediaError(f"output folder {str(parent)!r} does not exist",
                             hint="create it first (mkdir -p) or choose another output path")
        if self.codec != "png":
            if self.path.is_dir():
                raise MediaError(f"output {str(self.path)!r} is a directory",
                                 hint="give a file name such as out.mp4")
            if self.path.exists() and not self.overwrite:
                raise MediaError(f"output {str(self.path)!r} already exists",
                                 hint="choose another name or allow overwriting (overwrite=True / -y)")
            if not os.access(parent, os.W_OK):
                raise MediaError(f"cannot write to folder {str(parent)!r}: permission denied",
                                 hint="choose a writable output folder")
        elif not self.overwrite:
            first = parent / (self.path.name.replace("%%", "\0") % 1).replace("\0", "%")
            if first.exists():
                raise MediaError(f"output frame {str(first)!r} already exists",
                                 hint="choose another pattern or allow overwriting")

    def _check_audio(self) -> None:
        if self.codec in _NO_AUDIO or self.to_stdout:
            where = "stdout" if self.to_stdout else f"{self.codec} output"
            raise OptionError(f"{where} cannot carry audio, but audio_from was given",
                              hint="write an .mp4/.mkv/.webm file, or drop audio_from")
        src = self.audio_from
        assert src is not None
        if not os.path.isfile(src):
            raise MediaError(f"audio source not found: {src!r}", hint="check the audio_from path")
        # a source without audio is fine: the output is video only
        self._audio_codec = source_audio_codec(src)

    def _validate_vf(self) -> None:
        """Run the filter chain on one synthetic frame so a typo fails now, not mid-encode."""
        src = (f"color=c=black:s={self.width}x{self.height}:r={fps_str(self.fps)}:d="
               f"{max(0.1, float(3 / self.fps)):.4f}")
        cmd = base_cmd() + ["-nostdin", "-f", "lavfi", "-i", src, "-vf", self.vf, "-f", "null", "-"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise OptionError(f"filter chain vf={self.vf!r} did not finish on a test frame",
                              hint="check the filter chain") from None
        if proc.returncode != 0:
            reason = last_meaningful_line(proc.stderr.decode("utf-8", "replace").splitlines(),
                                          "invalid filter chain")
            raise OptionError(f"invalid filter chain vf={self.vf!r}: {reason}",
                              hint="use FFmpeg -vf syntax, e.g. scale=256:256,hflip")

    # -- command -----------------------------------------------------------------------------
    def _filter_chain(self) -> str | None:
        parts = [self.vf] if self.vf else []
        if self.codec == "h264" and (self.pix_fmt or "yuv420p") in ("yuv420p", "yuvj420p", "nv12"):
            parts.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")  # 4:2:0 needs even sizes
        if self.codec == "gif":
            parts.append("split[dtgan_a][dtgan_b];[dtgan_a]palettegen[dtgan_p];"
                         "[dtgan_b][dtgan_p]paletteuse")
        return ",".join(parts) or None

    def _output_kwargs(self, ext: str) -> dict[str, Any]:
        c = self.codec
        kw: dict[str, Any] = {}
        if c == "h264":
            kw.update(vcodec="libx264", pix_fmt=self.pix_fmt or "yuv420p", crf=self.crf if self.crf is not None else 18,
                      preset=self.preset or "veryfast")
            # swscale converts RGB with BT.601; say so, or players guess BT.709 for HD sizes
            kw.update(colorspace="smpte170m", color_primaries="smpte170m", color_trc="smpte170m")
        elif c == "h264rgb":
            kw.update(vcodec="libx264rgb", pix_fmt=self.pix_fmt or "rgb24", qp=0,
                      preset=self.preset or "veryfast")
        elif c == "ffv1":
            kw.update(vcodec="ffv1", pix_fmt=self.pix_fmt or "bgr0", level=3, g=1, slicecrc=1)
        elif c == "vp9":
            kw.update(vcodec="libvpx-vp9", pix_fmt=self.pix_fmt or "yuv420p",
                      crf=self.crf if self.crf is not None else 32, deadline=self.preset or "good",
                      **{"b:v": 0, "cpu-used": 4, "row-mt": 1})
            kw.update(colorspace="smpte170m", color_primaries="smpte170m", color_trc="smpte170m")
        elif c == "gif":
            kw.update(vcodec="gif", loop=0)
        elif c == "png":
            kw.update(vcodec="png", pix_fmt=self.pix_fmt or "rgb24")
            if not self.to_stdout:
                kw.update(format="image2")
        elif c == "y4m":
            kw.update(pix_fmt=self.pix_fmt or "yuv420p")
            if self.pix_fmt and self.pix_fmt not in ("yuv420p", "yuv422p", "yuv444p", "gray"):
                kw.update(strict=-1)  # high bit depths are y4m extensions
        if ext in (".mp4", ".m4v", ".mov") and not self.to_stdout:
            kw["movflags"] = "+faststart"
        if self.to_stdout:
            kw["format"] = _STDOUT_FORMAT.get(c, "matroska")
        elif c == "y4m":
            kw["format"] = "yuv4mpegpipe"
        chain = self._filter_chain()
        if chain:
            kw["vf"] = chain
        kw["an"] = None
        kw.update(self.options)
        return kw

    def build_command(self, target: str) -> list[str]:
        """The ffmpeg argument list that encodes rawvideo from stdin into ``target``."""
        import ffmpeg  # ffmpeg-python: builds the argument list, we run it ourselves

        ext = self.path.suffix.lower()
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24",
                             s=f"{self.width}x{self.height}", framerate=fps_str(self.fps))
        out = ffmpeg.output(video, target, **self._output_kwargs(ext))
        return out.compile(cmd=base_cmd(), overwrite_output=True)

    def _start(self) -> None:
        if self.to_stdout:
            target = "pipe:1"
            if sys.stdout is not None and hasattr(sys.stdout, "isatty") and os.isatty(1):
                raise MediaError("refusing to write video data to a terminal",
                                 hint="redirect stdout to a file or pipe it: ... -o - | ffmpeg -i - ...")
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stdout.flush()  # our own buffered text must not land inside the video stream
            stdout = None
        elif self.codec == "png":
            staging = self.path.parent / _PATTERN.sub('', self.path.stem)
            clean_stale(self.path.parent, staging)
            tmpdir = temp_path(staging)
            tmpdir.mkdir()
            self._temps.append(tmpdir)
            target = str((tmpdir / self.path.name).absolute())
            stdout = subprocess.DEVNULL
        else:
            clean_stale(self.path.parent, self.path)
            tmp = temp_path(self.path)
            self._temps.append(tmp)
            target = str(tmp.absolute())
            stdout = subprocess.DEVNULL
        self._target = target
        self.command = self.build_command(target)
        self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=stdout,
                                      stderr=subprocess.PIPE)
        self._drain = StderrDrain(self._proc.stderr)
        self._state = "open"

    # -- writing -----------------------------------------------------------------------------
    def _check_frames(self, frames: Any) -> torch.Tensor:
        """Validate what write() got and return it as a CPU tensor (T, 3, H, W)."""
        if isinstance(frames, VideoChunk):
            frames = frames.frames
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(frames)
        if not isinstance(frames, torch.Tensor):
            raise MediaError(f"write() takes a VideoChunk or a tensor (T, 3, H, W), got "
                             f"{type(frames).__name__}")
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise MediaError(f"write() expects frames shaped (T, 3, H, W), got {tuple(frames.shape)}",
                             hint="frames are RGB, channels first")
        h, w = int(frames.shape[2]), int(frames.shape[3])
        if (h, w) != (self.height, self.width):
            raise MediaError(f"frame size {w}x{h} does not match the writer's "
                             f"{self.width}x{self.height}",
                             hint="resize the frames, or open the writer with their width/height")
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise MediaError(f"write() expects float frames in [0, 1] or uint8, got {frames.dtype}")
        frames = frames.detach()
        return frames.cpu() if frames.device.type != "cpu" else frames

    def _frame_bytes(self, frame: torch.Tensor) -> memoryview:
        """One (3, H, W) frame as packed rgb24 bytes, converted in reused buffers.

        Frame by frame, a band of rows at a time, into the same small buffers: no chunk-sized
        temporaries, whose varying sizes fragment the heap of a long-running pipeline. The
        float scratch holds a band of rows (about 4 MiB), not a frame: at 4K a frame-sized one
        would be 95 MiB more. The arithmetic runs on the planar band, where every pass reads
        and writes contiguous memory, and only the 8-bit result is interleaved: rounding the
        interleaved view directly, each pass read the frame with a stride of a whole plane:
        13.4–14.2 against 2.3–2.8 ms a frame at 512x512 (``benchmarks/test_bench_decode.py -k
        conversion``).
        """
        if self._u8 is None:
            self._u8 = torch.empty((self.height, self.width, 3), dtype=torch.uint8)
            band = max(1, min(self.height, _SCRATCH_BYTES // (self.width * 3 * 4)))
            self._scratch = torch.empty((3, band, self.width), dtype=torch.float32)
            self._planar = torch.empty((3, band, self.width), dtype=torch.uint8)
        assert self._scratch is not None and self._planar is not None
        if frame.dtype == torch.uint8:
            self._u8.copy_(frame.permute(1, 2, 0))
            return memoryview(self._u8.numpy()).cast("B")
        # numpy for the per-pixel arithmetic: these ops are too small for torch's thread pool,
        # which only adds contention with the stages running beside the writer
        chw = frame.numpy()
        band = self._scratch.shape[1]
        for r0 in range(0, self.height, band):
            rows = chw[:, r0:r0 + band]
            n = rows.shape[1]
            scratch = self._scratch.numpy()[:, :n]
            np.multiply(rows, np.float32(255.0), out=scratch)  # float32, as torch would
            # +0.5 then truncation rounds to nearest; fmax/fmin (not clip) turn NaN into 0
            np.add(scratch, np.float32(0.5), out=scratch)
            np.fmax(scratch, np.float32(0.0), out=scratch)
            np.fmin(scratch, np.float32(255.0), out=scratch)
            planar = self._planar[:, :n]
            np.copyto(planar.numpy(), scratch, casting="unsafe")
            self._u8[r0:r0 + n].copy_(planar.permute(1, 2, 0))
        return memoryview(self._u8.numpy()).cast("B")

    def write(self, frames: VideoChunk | torch.Tensor) -> None:
        """Encode frames: a VideoChunk or a tensor (T, 3, H, W) / (3, H, W), float [0, 1] or uint8."""
        if self._state != "open":
            raise EncodeError(f"writer for {self._label()} is {self._state}; it cannot take frames",
                              hint="open a new VideoWriter")
        batch = self._check_frames(frames)
        assert self._proc is not None and self._proc.stdin is not None
        for frame in batch:
            data = self._frame_bytes(frame)
            try:
                self._proc.stdin.write(data)
            except (BrokenPipeError, ConnectionResetError, OSError, ValueError) as err:
                reason = self._failure_reason(f"ffmpeg stopped reading ({type(err).__name__})")
                self.abort()
                raise self._encode_error(reason) from None
            self.frames_written += 1

    def _failure_reason(self, default: str) -> str:
        proc, drain = self._proc, self._drain
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if drain is not None:
            drain.join(2.0)
            return drain.message(default)
        return default

    def _encode_error(self, reason: str) -> EncodeError:
        """The error for a failed encode, naming the cause when it is not the codec's."""
        # the cause is often a few lines above ffmpeg's last line ("Conversion failed!")
        seen = list(self._drain.lines) if self._drain is not None else []
        lower = " ".join([reason, *seen[-20:]]).lower()
        if "no space left" in lower or "disk quota" in lower:
            return EncodeError(f"no space left on device writing {self._label()}",
                               hint="free some disk space or write elsewhere")
        if self.to_stdout and ("broken pipe" in lower or "connection reset" in lower):
            return EncodeError("broken pipe: the reader of stdout went away",
                               hint="keep the program reading dtgan's output running")
        if "broken pipe" in lower:
            return EncodeError(f"broken pipe writing {self._label()}: {reason}",
                               hint="the output went away while it was written")
        return EncodeError(f"encoding {self._label()} failed: {reason}",
                           hint="check the codec options and the vf= filter chain")

    @property
    def temp_path(self) -> Path | None:
        """Where the output is being written until :meth:`close` renames it (None for stdout)."""
        return self._temps[0] if self._temps else None

    def _label(self) -> str:
        return "stdout" if self.to_stdout else repr(str(self.path))

    # -- finishing ---------------------------------------------------------------------------
    def close(self) -> Path:
        """Finish encoding, check ffmpeg's exit status and rename the output into place."""
        if self._state == "closed":
            return self.path
        if self._state != "open":
            raise EncodeError(f"writer for {self._label()} was aborted; nothing was written")
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        if self.frames_written == 0:
            self.abort()
            raise EncodeError(f"no frames were written to {self._label()}",
                              hint="the input produced no frames; check it")
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the exit status below tells what happened
        try:
            rc = proc.wait()
        except BaseException:  # Ctrl-C while ffmpeg finishes: leave nothing behind
            self.abort()
            raise
        assert self._drain is not None
        self._drain.join()
        if rc != 0:
            reason = self._drain.message(f"ffmpeg exited with status {rc}")
            self.abort()
            raise self._encode_error(reason)
        try:
            if not self.to_stdout:
                self._finalize()
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._proc = None
        return self.path

    def _finalize(self) -> None:
        if self.codec == "png":
            tmpdir = self._temps[0]
            for item in sorted(tmpdir.iterdir()):
                os.replace(item, self.path.parent / item.name)
            discard(tmpdir)
            self._temps.clear()
            return
        video_tmp = self._temps[0]
        if self._audio_codec is not None:
            muxed = temp_path(self.path)
            self._temps.append(muxed)
            mux_audio(video_tmp, self.audio_from or "", muxed,
                      duration=Fraction(self.frames_written) / self.fps,
                      audio_codec=self._audio_codec, offset=self.audio_offset,
                      tempo=self.audio_tempo, what=self._label())
            discard(video_tmp)
            self._temps.remove(video_tmp)
            video_tmp = muxed
        if not self.overwrite and self.path.exists():
            raise MediaError(f"output {str(self.path)!r} appeared while writing",
                             hint="choose another name or allow overwriting")
        commit(video_tmp, self.path)
        self._temps.clear()

    def abort(self) -> None:
        """Kill ffmpeg and remove every partial output; idempotent."""
        if self._state == "closed":
            return
        kill_process(self._proc)
        if self._drain is not None:
            self._drain.join(1.0)
        self._proc = None
        for tmp in self._temps:
            with contextlib.suppress(OSError):
                discard(tmp)
        self._temps.clear()
        self._state = "aborted"

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close() must not leave ffmpeg running or a partial file
        if getattr(self, "_state", "closed") == "open":
            with contextlib.suppress(Exception):
                self.abort()

    def __repr__(self) -> str:
        return (f"VideoWriter({self._label()}, codec={self.codec}, {self.width}x{self.height}, "
                f"fps={fps_str(self.fps)}, frames_written={self.frames_written}, {self._state})")


def open_writer(path: str | os.PathLike, *, fps: float, width: int, height: int,
                **options: Any) -> VideoWriter:
    """Factory registered with the plugin system: ``VideoWriter(path, fps=…, width=…, height=…)``."""
    return VideoWriter(path, fps=fps, width=width, height=height, **options)


__all__ = ["VideoWriter", "open_writer", "resolve_codec", "atempo_factors", "CODECS", "AUTO_CODEC",
           "CONTAINERS",
           "WRITER_EXTENSIONS"]
