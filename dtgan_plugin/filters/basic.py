"""Built-in geometry and timing stages, registered like any third-party plugin.

``dtgan.resize``, ``dtgan.crop``, ``dtgan.flip``, ``dtgan.trim``, ``dtgan.fps``,
``dtgan.stack`` and ``dtgan.split``. They work on the graph's device with torch ops, stream
chunk by chunk, and never modify their input tensors in place (a packet may be shared by
several consumers when a stream fans out).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..hooks.hookspecs import hookimpl
from ..stream import (AUDIO_OFFSET, AUDIO_TEMPO, DEFAULT_CHUNK, ImagePacket, Packet, PadKind,
                      StreamInfo, VideoChunk, check_frame_size, frames_per_chunk)
from .base import Filter, Option, Pad

_VIDEO_IN = (Pad("in", PadKind.VIDEO),)
_VIDEO_OUT = (Pad("out", PadKind.VIDEO),)
#: geometry stages work on images too; the output keeps the input's kind
_FRAMES = (PadKind.VIDEO, PadKind.IMAGE)


def _budget_slices(chunk: VideoChunk, out_size: Callable[[int, int], tuple[int, int]],
                   chunk_size: int, stage: str) -> Iterator[tuple[int, torch.Tensor]]:
    """Slices ``(offset, frames)`` of ``chunk`` whose output (of ``out_size``) fits the budget."""
    w, h = out_size(int(chunk.frames.shape[-1]), int(chunk.frames.shape[-2]))
    check_frame_size(w, h, stage)
    n = frames_per_chunk(chunk_size, w, h)
    for a in range(0, len(chunk), n):
        yield a, chunk.frames[a:a + n]


def _map_frames(it: Iterator[Packet], fn: Callable[[torch.Tensor], torch.Tensor],
                stage: str, out_size: Callable[[int, int], tuple[int, int]] | None = None,
                chunk_size: int = DEFAULT_CHUNK) -> Iterator[Packet]:
    """Apply ``fn`` to the ``(T, 3, H, W)`` frames of video chunks and images alike.

    With ``out_size`` (output ``(w, h)`` from the input's), a chunk whose output would pass the
    chunk byte budget is cut first, so an upscale never holds more than the budget at once.
    """
    for packet in it:
        if isinstance(packet, VideoChunk) and out_size is not None:
            chunk = packet
            del packet
            for a, part in _budget_slices(chunk, out_size, chunk_size, stage):
                piece = VideoChunk(fn(part), chunk.start + a, chunk.fps)
                del part
                yield piece
                del piece
            del chunk
            continue
        if isinstance(packet, VideoChunk):
            out: Packet = VideoChunk(fn(packet.frames), packet.start, packet.fps)
        elif isinstance(packet, ImagePacket):
            out = ImagePacket(fn(packet.image[None])[0])
        else:
            raise TypeError(f"{stage}: expected video or an image, got {type(packet).__name__}")
        # hold neither packet while waiting: a chunk is freed as soon as its consumers are done
        del packet
        yield out
        del out


def _video_chunks(it: Iterator[Packet], stage: str) -> Iterator[VideoChunk]:
    """Yield the video chunks of ``it``, refusing any other packet type."""
    for packet in it:
        if not isinstance(packet, VideoChunk):
            raise TypeError(f"{stage}: expected a video chunk, got {type(packet).__name__}")
        yield packet
        del packet  # not held while the next one is awaited


class FrameBuffer:
    """Pull frames from a chunk iterator and hand them out in any count (re-chunking).

    Holds at most one input chunk plus the frames asked for, so memory stays bounded.
    """

    def __init__(self, chunks: Iterator[VideoChunk]) -> None:
        self._chunks = chunks
        self._pending: list[torch.Tensor] = []
        self._count = 0
        self.exhausted = False
        self.fps: float | None = None

    def _pull(self) -> bool:
        if self.exhausted:
            return False
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.exhausted = True
            return False
        self.fps = chunk.fps
        if len(chunk):
            self._pending.append(chunk.frames)
            self._count += len(chunk)
        return True

    def available(self, want: int) -> int:
        """Frames available without blocking beyond what is needed to reach ``want``."""
        while self._count < want and self._pull():
            pass
        return min(self._count, want)

    def take(self, n: int) -> torch.Tensor | None:
        """Remove and return the next ``min(n, available)`` frames, or None at end of stream."""
        n = self.available(n)
        if n == 0:
            return None
        frames = torch.cat(self._pending) if len(self._pending) > 1 else self._pending[0]
        out, rest = frames[:n], frames[n:]
        self._pending = [rest] if len(rest) else []
        self._count -= n
        return out


# --------------------------------------------------------------------------------------- resize

_MODES = ("bilinear", "bicubic", "nearest", "area")


def scaled_size(in_w: int, in_h: int, w: int, h: int, *, stage: str = "dtgan.resize"
                ) -> tuple[int, int]:
    """FFmpeg ``scale`` size rules: 0 keeps the input size, -1 keeps the aspect ratio, -2 too
    but rounded to an even number (what yuv420p encoders need)."""

    def derive(other_new: int, other_in: int, this_in: int, flag: int) -> int:
        value = this_in * other_new / other_in
        if flag == -2:
            return max(2, int(round(value / 2)) * 2)
        return max(1, int(round(value)))

    if w < 0 and h < 0:
        raise OptionError(f"{stage}: w and h are both negative",
                          hint="give at least one size, e.g. w=256:h=-1")
    out_w = in_w if w == 0 else w
    out_h = in_h if h == 0 else h
    if w < 0:
        out_w = derive(out_h, in_h, in_w, w)
    if h < 0:
        out_h = derive(out_w, in_w, in_h, h)
    return out_w, out_h


class Resize(Filter):
    """Scale frames to a new size (like FFmpeg's ``scale``)."""

    name = "dtgan.resize"
    description = ("Resize video frames (or an image). Positional order is w:h like FFmpeg's "
                   "scale; 0 keeps the input size, -1 keeps the aspect ratio, -2 keeps it with "
                   "an even size.")
    inputs = _VIDEO_IN
    outputs = _VIDEO_OUT
    kind_follows_input: ClassVar[tuple[PadKind, ...]] = _FRAMES
    options = (
        Option("w", int, -1, "output width in pixels (0 = input, -1/-2 = keep aspect)", min=-2),
        Option("h", int, -1, "output height in pixels (0 = input, -1/-2 = keep aspect)", min=-2),
        Option("mode", str, "bilinear", "interpolation", choices=_MODES),
        Option("antialias", bool, True,
               "low-pass before downscaling (bilinear and bicubic only)"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.opts["w"] < 0 and self.opts["h"] < 0:
            raise OptionError(f"{self.name}: w and h are both negative",
                              hint="give at least one size, e.g. w=256:h=-1")

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Output size from the input size and the w/h rules."""
        info = infos[0]
        if not info.width or not info.height:
            return info  # unknown input size: resolved per chunk in run
        w, h = scaled_size(info.width, info.height, self.opts["w"], self.opts["h"])
        check_frame_size(w, h, self.name)
        return info.with_(width=w, height=h)

    def out_size(self, in_w: int, in_h: int) -> tuple[int, int]:
        """The output ``(w, h)`` for an input size."""
        return scaled_size(in_w, in_h, self.opts["w"], self.opts["h"])

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """Resize a ``(T, 3, H, W)`` tensor with the configured mode."""
        in_h, in_w = int(frames.shape[-2]), int(frames.shape[-1])
        w, h = scaled_size(in_w, in_h, self.opts["w"], self.opts["h"])
        if (w, h) == (in_w, in_h):
            return frames
        mode = self.opts["mode"]
        kwargs: dict[str, Any] = {}
        if mode in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": bool(self.opts["antialias"])}
        out = F.interpolate(frames, size=(h, w), mode=mode, **kwargs)
        if mode == "bicubic":
            out = out.clamp_(0.0, 1.0)  # bicubic overshoots at edges
        return out

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Resize every chunk (or the image), re-cut so no output chunk passes the byte budget."""
        return _map_frames(inputs[0], self.resize, self.name, out_size=self.out_size,
                           chunk_size=self.ctx.chunk_size)


# ----------------------------------------------------------------------------------------- crop

class Crop(Filter):
    """Cut a rectangle out of every frame (like FFmpeg's ``crop``)."""

    name = "dtgan.crop"
    description = ("Crop frames (or an image) to w x h at (x, y); the rectangle is centred "
                   "when x or y is -1. Positional order is w:h:x:y like FFmpeg's crop.")
    inputs = _VIDEO_IN
    outputs = _VIDEO_OUT
    kind_follows_input: ClassVar[tuple[PadKind, ...]] = _FRAMES
    options = (
        Option("w", int, 0, "width of the rectangle (0 = input width)", min=0),
        Option("h", int, 0, "height of the rectangle (0 = input height)", min=0),
        Option("x", int, -1, "left edge (-1 = centred)", min=-1),
        Option("y", int, -1, "top edge (-1 = centred)", min=-1),
    )

    def rect(self, in_w: int, in_h: int) -> tuple[int, int, int, int]:
        """The ``(x, y, w, h)`` rectangle for an input size; OptionError if it does not fit."""
        w = self.opts["w"] or in_w
        h = self.opts["h"] or in_h
        if w > in_w or h > in_h:
            raise OptionError(f"{self.name}: {w}x{h} is larger than the {in_w}x{in_h} input",
                              hint="crop to at most the input size, or resize first")
        x = (in_w - w) // 2 if self.opts["x"] < 0 else self.opts["x"]
        y = (in_h - h) // 2 if self.opts["y"] < 0 else self.opts["y"]
        if x + w > in_w or y + h > in_h:
            raise OptionError(
                f"{self.name}: rectangle {w}x{h} at ({x},{y}) leaves the {in_w}x{in_h} input",
                hint="lower x/y or the size")
        return x, y, w, h

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Output size is the rectangle's (checked against the input size)."""
        info = infos[0]
        if not info.width or not info.height:
            return info
        _, _, w, h = self.rect(info.width, info.height)
        return info.with_(width=w, height=h)

    def crop(self, frames: torch.Tensor) -> torch.Tensor:
        """Cut the rectangle out of ``(T, 3, H, W)`` frames (a view: no copy)."""
        x, y, w, h = self.rect(int(frames.shape[-1]), int(frames.shape[-2]))
        return frames[..., y:y + h, x:x + w]

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Crop every chunk (or the image)."""
        return _map_frames(inputs[0], self.crop, self.name)


# ----------------------------------------------------------------------------------------- flip

class Flip(Filter):
    """Mirror frames (FFmpeg's ``hflip``/``vflip``, usable between native stages)."""

    name = "dtgan.flip"
    description = "Mirror frames (or an image) horizontally (h), vertically (v) or both (hv)."
    inputs = _VIDEO_IN
    outputs = _VIDEO_OUT
    kind_follows_input: ClassVar[tuple[PadKind, ...]] = _FRAMES
    options = (Option("direction", str, "h", "which axis to mirror", choices=("h", "v", "hv")),)

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Flip every chunk."""
        dims = {"h": [-1], "v": [-2], "hv": [-2, -1]}[self.opts["direction"]]
        return _map_frames(inputs[0], lambda f: torch.flip(f, dims), self.name)


# ----------------------------------------------------------------------------------------- trim

class Trim(Filter):
    """Keep a range of frames (like FFmpeg's ``trim``); output frames are numbered from 0."""

    name = "dtgan.trim"
    description = ("Keep frames [start, end) or [start, start+duration), in frames, or in "
                   "seconds with start_time/end_time. Decoding stops once the range is done.")
    inputs = _VIDEO_IN
    outputs = _VIDEO_OUT
    options = (
        Option("start", int, None, "first frame kept (default 0)", min=0),
        Option("end", int, None, "first frame dropped after the range (exclusive)", min=0),
        Option("duration", int, None, "number of frames kept", min=0),
        Option("start_time", float, None, "start in seconds (instead of start)", min=0),
        Option("end_time", float, None, "end in seconds, exclusive (instead of end)", min=0),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        if o["start"] is not None and o["start_time"] is not None:
            raise OptionError(f"{self.name}: give start or start_time, not both")
        ends = [k for k in ("end", "duration", "end_time") if o[k] is not None]
        if len(ends) > 1:
            raise OptionError(f"{self.name}: give only one of end, duration and end_time "
                              f"(got {', '.join(ends)})")
        self._range: tuple[int, int | None] | None = None

    def frame_range(self, fps: float) -> tuple[int, int | None]:
        """``(first, stop)`` frame indices for a stream at ``fps`` (stop None = to the end)."""
        o = self.opts
        start = o["start"] if o["start"] is not None else (
            int(math.ceil(o["start_time"] * fps - 1e-6)) if o["start_time"] is not None else 0)
        stop: int | None = None
        if o["end"] is not None:
            stop = o["end"]
        elif o["duration"] is not None:
            stop = start + o["duration"]
        elif o["end_time"] is not None:
            stop = int(math.ceil(o["end_time"] * fps - 1e-6))
        if stop is not None and stop < start:
            raise OptionError(f"{self.name}: the range ends (frame {stop}) before it starts "
                              f"(frame {start})", hint="make end later than start")
        return start, stop

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Frame count of the kept range."""
        info = infos[0]
        start, stop = self._range = self.frame_range(info.fps)
        n = info.num_frames
        # the kept frames start `start` frames into the source: so must its audio
        # (--keep-audio); after a speed change those frames span `tempo` times as much audio
        tempo = float(info.meta.get(AUDIO_TEMPO, 1.0))
        meta = dict(info.meta, **{AUDIO_OFFSET: float(info.meta.get(AUDIO_OFFSET, 0.0))
                                  + (start / info.fps * tempo if info.fps else 0.0)})
        if n is None:
            return info.with_(meta=meta)  # unknown length (a pipe): the count stays unknown
        end = n if stop is None else min(stop, n)
        return info.with_(num_frames=max(0, end - start), meta=meta)

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Pass frames inside the range; stop reading as soon as the range is complete."""
        out_index = 0
        rng = self._range
        for chunk in _video_chunks(inputs[0], self.name):
            if rng is None:
                rng = self.frame_range(chunk.fps)
            start, stop = rng
            fps = chunk.fps
            c0, c1 = chunk.start, chunk.start + len(chunk)
            lo, hi = max(c0, start), c1 if stop is None else min(c1, stop)
            if hi > lo:
                frames = chunk.frames[lo - c0:hi - c0]
                del chunk
                yield VideoChunk(frames, out_index, fps)
                out_index += len(frames)
                del frames
            else:
                del chunk
            if stop is not None and c1 >= stop:
                return  # returning closes our input, so upstream decoding stops too


# ------------------------------------------------------------------------------ timing limits

#: highest frame rate a stage produces
MAX_FPS = 1000.0
#: most output frames per input frame a resampling stage makes: more cannot be meant, and
#: would run for hours (``dtgan.fps=fps=1e9``)
MAX_FRAME_GROWTH = 100.0


def check_frame_growth(ratio: float, stage: str, what: str, hint: str) -> None:
    """OptionError when a stage would make more than :data:`MAX_FRAME_GROWTH` frames per input."""
    if ratio > MAX_FRAME_GROWTH:
        raise OptionError(f"{stage}: {what} makes {ratio:.4g} output frames per input frame "
                          f"(at most {MAX_FRAME_GROWTH:g})", hint=hint)


# ------------------------------------------------------------------------------------------ fps

class Fps(Filter):
    """Change the frame rate by dropping or repeating frames (like FFmpeg's ``fps``)."""

    name = "dtgan.fps"
    description = ("Resample to a new frame rate: output frame k shows the input frame nearest "
                   "to time k/fps. Duration is kept.")
    inputs = _VIDEO_IN
    outputs = _VIDEO_OUT
    options = (Option("fps", float, 25.0, "output frames per second", min=0.001,
                      max=MAX_FPS),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """New fps, and a frame count that keeps the duration."""
        info = infos[0]
        fps = float(self.opts["fps"])
        check_frame_growth(fps / info.fps if info.fps > 0 else 1.0, self.name,
                           f"{fps:g} fps from a {info.fps:g} fps input",
                           f"use fps <= {MAX_FRAME_GROWTH * info.fps:g}")
        n = info.num_frames
        if n is not None and info.fps > 0:
            n = self._count(n, info.fps, fps)
        return info.with_(fps=fps, num_frames=n)

    @staticmethod
    def _source_index(k: int, in_fps: float, out_fps: float) -> int:
        # the input frame whose presentation interval contains output time k / out_fps
        return int(math.floor(k * in_fps / out_fps + 1e-9))

    @classmethod
    def _count(cls, n_in: int, in_fps: float, out_fps: float) -> int:
        return int(math.ceil(n_in * out_fps / in_fps - 1e-9))

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Pick, for each output frame, the input frame shown at that time."""
        out_fps = float(self.opts["fps"])
        k = 0
        for chunk in _video_chunks(inputs[0], self.name):
            in_fps = chunk.fps
            c0, c1 = chunk.start, chunk.start + len(chunk)
            idx: list[int] = []
            while True:
                src = self._source_index(k, in_fps, out_fps)
                if src >= c1:
                    break
                if src >= c0:
                    idx.append(src - c0)
                k += 1
            # repeated frames multiply a chunk: cut the output to the byte budget
            per = frames_per_chunk(self.ctx.chunk_size, int(chunk.frames.shape[-1]),
                                   int(chunk.frames.shape[-2]))
            first = k - len(idx)
            for a in range(0, len(idx), per):
                sel = torch.tensor(idx[a:a + per], device=chunk.frames.device)
                out = VideoChunk(chunk.frames.index_select(0, sel), first + a, out_fps)
                yield out
                del out
            del chunk


# ---------------------------------------------------------------------------------------- stack

class Stack(Filter):
    """Put two videos side by side or one above the other (FFmpeg's ``hstack``/``vstack``)."""

    name = "dtgan.stack"
    description = ("Stack two videos: h = side by side (the second is resized to the first's "
                   "height), v = top to bottom (resized to the first's width). Frames pair "
                   "by index; the first input's fps is kept.")
    inputs = (Pad("first", PadKind.VIDEO), Pad("second", PadKind.VIDEO))
    outputs = _VIDEO_OUT
    options = (
        Option("direction", str, "h", "h = side by side, v = top to bottom", choices=("h", "v")),
        Option("shortest", bool, False,
               "end with the shorter input (default: repeat its last frame to the longer's end)"),
    )

    def _second_size(self, w1: int, h1: int, w2: int, h2: int) -> tuple[int, int]:
        if self.opts["direction"] == "h":
            return max(1, int(round(w2 * h1 / h2))), h1
        return w1, max(1, int(round(h2 * w1 / w2)))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Combined size; frame count of the longer (or shorter) input."""
        a, b = infos[0], infos[1]
        out = a
        if a.width and a.height and b.width and b.height:
            w2, h2 = self._second_size(a.width, a.height, b.width, b.height)
            if self.opts["direction"] == "h":
                out = out.with_(width=a.width + w2)
            else:
                out = out.with_(height=a.height + h2)
            check_frame_size(out.width, out.height, self.name)
        n: int | None = None
        if a.num_frames is not None and b.num_frames is not None:
            pick = min if self.opts["shortest"] else max
            n = pick(a.num_frames, b.num_frames)
        elif self.opts["shortest"]:
            n = a.num_frames if b.num_frames is None else b.num_frames
        return out.with_(kind=PadKind.VIDEO, num_frames=n)

    def _fit(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        h1, w1 = int(first.shape[-2]), int(first.shape[-1])
        h2, w2 = int(second.shape[-2]), int(second.shape[-1])
        w, h = self._second_size(w1, h1, w2, h2)
        if (w, h) != (w2, h2):
            second = F.interpolate(second, size=(h, w), mode="bilinear", align_corners=False,
                                   antialias=True)
        return second

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Pair frames of both inputs by index and concatenate them."""
        a = FrameBuffer(_video_chunks(inputs[0], self.name))
        b = FrameBuffer(_video_chunks(inputs[1], self.name))
        dim = -1 if self.opts["direction"] == "h" else -2
        last_a: torch.Tensor | None = None
        last_b: torch.Tensor | None = None
        index = 0
        # frames per step: the byte budget at the output size, once the first step shows it
        step = max(1, self.ctx.chunk_size)
        while True:
            fa = a.take(step)
            n = step if fa is None else len(fa)
            fb = b.take(n)
            if fa is None and fb is None:
                return
            if fa is None or fb is None:
                if self.opts["shortest"]:
                    return
                if fa is None:
                    if last_a is None:
                        return  # the first input is empty: nothing to stack against
                    fa = last_a.expand(len(fb), *last_a.shape[1:])
                elif fb is None:
                    if last_b is None:
                        return
                    fb = last_b.expand(len(fa), *last_b.shape[1:])
            if len(fb) < len(fa):  # the second ended inside this chunk
                if self.opts["shortest"]:
                    fa = fa[:len(fb)]
                else:
                    pad = fb[-1:].expand(len(fa) - len(fb), *fb.shape[1:])
                    fb = torch.cat([fb, pad])
            last_a, last_b = fa[-1:], fb[-1:]
            fps = a.fps or b.fps or 25.0
            for part_a, part_b in zip(*self._budget_split(fa, fb)):
                frames = torch.cat([part_a, self._fit(part_a, part_b)], dim=dim)
                step = frames_per_chunk(self.ctx.chunk_size, int(frames.shape[-1]),
                                        int(frames.shape[-2]))
                yield VideoChunk(frames, index, fps)
                index += len(part_a)
                del frames

    def _budget_split(self, fa: torch.Tensor, fb: torch.Tensor
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Cut paired frames so each stacked output chunk fits the byte budget."""
        h1, w1 = int(fa.shape[-2]), int(fa.shape[-1])
        w2, h2 = self._second_size(w1, h1, int(fb.shape[-1]), int(fb.shape[-2]))
        out_w, out_h = (w1 + w2, h1) if self.opts["direction"] == "h" else (w1, h1 + h2)
        check_frame_size(out_w, out_h, self.name)
        n = frames_per_chunk(self.ctx.chunk_size, out_w, out_h)
        return list(fa.split(n)), list(fb.split(n))


# ---------------------------------------------------------------------------------------- split

class Split(Filter):
    """Send one stream to several consumers (FFmpeg's ``split``)."""

    name = "dtgan.split"
    description = ("Copy a stream (video, image or dynamics) to N outputs; each output carries "
                   "the input's kind. The executor shares the packets, so it costs no copy.")
    inputs = (Pad("in", PadKind.VIDEO),)
    outputs = (Pad("out0", PadKind.VIDEO), Pad("out1", PadKind.VIDEO))
    options = (Option("outputs", int, 2, "number of outputs", min=1, max=64),)
    #: the graph builder gives the outputs the input's kind and wires consumers straight to
    #: the producer (see dtgan_plugin.graph.validate)
    kind_follows_input: ClassVar[tuple[PadKind, ...]] = (PadKind.VIDEO, PadKind.IMAGE,
                                                         PadKind.DYNAMICS)
    alias_outputs: ClassVar[bool] = True

    @classmethod
    def output_pads(cls, opts: dict[str, Any]) -> tuple[Pad, ...]:
        """One pad per requested output."""
        return tuple(Pad(f"out{i}", PadKind.VIDEO) for i in range(int(opts["outputs"])))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Outputs are the input stream, unchanged."""
        return infos[0]

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Any]:
        """Yield ``(pad_index, packet)`` for every output (used when not wired through)."""
        n = int(self.opts["outputs"])
        for packet in inputs[0]:
            for i in range(n):
                yield i, packet


BUILTIN_STAGES: tuple[type[Filter], ...] = (Resize, Crop, Flip, Trim, Fps, Stack, Split)


@hookimpl
def dtgan_register_filters(register: Callable[[type], None]) -> None:
    """Register the built-in geometry and timing stages."""
    for cls in BUILTIN_STAGES:
        register(cls)
