"""The model stages: dynamics extraction, transfer, and dynamics editing and files.

| stage            | pads                      | what                                       |
|------------------|---------------------------|--------------------------------------------|
| dtgan.dynamics   | video → dynamics          | appearance-suppressed dynamics (streaming) |
| dtgan.transfer   | image + dynamics → video  | the generator                              |
| dtgan.amplify    | dynamics → dynamics       | scale motion strength                      |
| dtgan.smooth     | dynamics → dynamics       | One-Euro smoothing against jitter          |
| dtgan.retime     | dynamics → dynamics       | speed, fps, reverse, loop                  |
| dtgan.load       | (file) → dynamics         | read a ``.dyn.safetensors`` file           |
| dtgan.save       | dynamics → dynamics       | write a ``.dyn.safetensors`` file, pass on |
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..errors import UsageError
from ..hooks.hookspecs import hookimpl
from ..stream import (AUDIO_TEMPO, AUDIO_UNSYNCED, DynamicsChunk, ImagePacket, PadKind,
                      StreamInfo, VideoChunk, audio_meta)
from .base import REQUIRED, Filter, Option, Pad

_CKPT = Option("checkpoint", str, "default", "checkpoint name (default) or .safetensors path")
_FIT = Option("fit", str, "crop", "how images of another size or aspect are fitted",
              choices=("crop", "pad", "stretch"))


def _single(packets: Iterator[Any], what: str) -> Any:
    for packet in packets:
        return packet
    raise UsageError(f"{what}: the image input produced nothing")


class DynamicsStage(Filter):
    """Extract appearance-suppressed dynamics from a source video.

    d_t = h_t(source) − h_t(static), where h is the encoder's LSTM output and the static
    sequence repeats the reference frame. The LSTM state is carried from chunk to chunk, so
    the result does not depend on the chunk size.
    """

    name = "dtgan.dynamics"
    description = __doc__ or ""
    inputs = (Pad("source", PadKind.VIDEO),)
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)
    options = (_CKPT,
               Option("reference", int, 0, "index of the reference (static) frame", min=0),
               _FIT)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Load the model now, so a bad checkpoint fails before decoding starts."""
        from ..inference import load_model, resolve_device

        self.model = load_model(self.opts["checkpoint"], resolve_device(self.ctx.device))
        src = infos[0]
        if src.num_frames is not None and self.opts["reference"] >= src.num_frames > 0:
            raise UsageError(f"dtgan.dynamics: reference frame {self.opts['reference']} is past "
                             f"the end of the source ({src.num_frames} frames)")
        self.meta = {"checkpoint": self.model.fingerprint(),
                     "reference_frame": self.opts["reference"],
                     "asd_mode": self.model.config.asd_mode}
        # the audio timing rides along, so --keep-audio stays in sync through the model
        return StreamInfo(PadKind.DYNAMICS, fps=src.fps, num_frames=src.num_frames,
                          dim=int(self.model.config.dyn_dim),
                          meta=dict(self.meta, **audio_meta(src.meta)))

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Stream dynamics chunk by chunk."""
        from ..inference import DynamicsExtractor

        ex = DynamicsExtractor(self.model, reference_frame=self.opts["reference"],
                               fit=self.opts["fit"])
        produced = 0
        fps = 25.0
        for chunk in inputs[0]:
            fps = chunk.fps
            d = ex.push(chunk.frames)
            if d.shape[0]:
                yield DynamicsChunk(d.cpu(), produced, fps, dict(self.meta))
                produced += int(d.shape[0])
        ex.flush()


class TransferStage(Filter):
    """Drive a target image with a dynamics stream: the Dynamics Transfer GAN generator.

    The target is fitted to the model's resolution (``fit``); ``size`` upscales the output.
    Dynamics from a different checkpoint are refused, since their vectors mean nothing to
    this generator.
    """

    name = "dtgan.transfer"
    description = __doc__ or ""
    inputs = (Pad("target", PadKind.IMAGE), Pad("dynamics", PadKind.DYNAMICS))
    outputs = (Pad("video", PadKind.VIDEO),)
    options = (_CKPT, _FIT,
               Option("size", int, 0, "output size in pixels (0 = the model's resolution)",
                      min=0, max=4096),
               Option("strict", bool, True, "refuse dynamics made by another checkpoint"))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Load the model and check the dynamics came from it."""
        from ..inference import load_model, resolve_device

        self.model = load_model(self.opts["checkpoint"], resolve_device(self.ctx.device))
        dyn = infos[1]
        theirs = dyn.meta.get("checkpoint")
        if self.opts["strict"] and theirs and theirs != self.model.fingerprint():
            raise UsageError(
                f"dtgan.transfer: the dynamics were extracted by checkpoint {theirs}, "
                f"but this stage uses {self.model.fingerprint()}",
                hint="extract them with the same checkpoint, or set strict=0")
        if dyn.dim and dyn.dim != int(self.model.config.dyn_dim):
            raise UsageError(f"dtgan.transfer: dynamics have width {dyn.dim}, the model "
                             f"expects {self.model.config.dyn_dim}")
        size = self.opts["size"] or int(self.model.config.resolution)
        return StreamInfo(PadKind.VIDEO, fps=dyn.fps, width=size, height=size,
                          num_frames=dyn.num_frames, meta=audio_meta(dyn.meta))

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[VideoChunk]:
        """Render one output chunk per dynamics chunk."""
        from ..inference import Renderer

        packet: ImagePacket = _single(inputs[0], self.name)
        renderer = Renderer(self.model, packet.image, fit=self.opts["fit"],
                            out_size=self.opts["size"] or None)
        for chunk in inputs[1]:
            frames = renderer.render(chunk.vectors)
            yield VideoChunk(frames.cpu(), chunk.start, chunk.fps)


class _DynamicsEdit(Filter):
    inputs = (Pad("dynamics", PadKind.DYNAMICS),)
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)


class AmplifyStage(_DynamicsEdit):
    """Scale motion strength: 0 = the target stays still, 1 = as the source, >1 exaggerated."""

    name = "dtgan.amplify"
    description = __doc__ or ""
    options = (Option("factor", float, 1.0, "motion strength multiplier", min=-10, max=10),)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Multiply every vector by ``factor`` (ASD is zero at rest, so this scales motion)."""
        k = self.opts["factor"]
        for chunk in inputs[0]:
            yield DynamicsChunk(chunk.vectors * k, chunk.start, chunk.fps, chunk.meta)


class SmoothStage(_DynamicsEdit):
    """Temporal smoothing with a One-Euro filter: steady poses stay still, fast moves stay fast.

    ``mincutoff`` (Hz) sets the smoothing of slow motion (lower = smoother); ``beta`` how fast
    the cutoff rises with speed (higher = less lag on fast moves).
    """

    name = "dtgan.smooth"
    description = __doc__ or ""
    options = (Option("mincutoff", float, 1.0, "cutoff frequency at rest, Hz", min=1e-3),
               Option("beta", float, 0.05, "speed coefficient", min=0.0),
               Option("dcutoff", float, 1.0, "cutoff for the derivative, Hz", min=1e-3))

    @staticmethod
    def _alpha(cutoff: torch.Tensor | float, rate: float) -> Any:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * rate)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Filter each vector dimension independently, carrying state across chunks."""
        prev: torch.Tensor | None = None
        dprev: torch.Tensor | None = None
        for chunk in inputs[0]:
            rate = chunk.fps
            out = torch.empty_like(chunk.vectors)
            for i, x in enumerate(chunk.vectors):
                if prev is None:
                    prev, dprev = x.clone(), torch.zeros_like(x)
                else:
                    dx = (x - prev) * rate
                    a_d = self._alpha(self.opts["dcutoff"], rate)
                    dprev = a_d * dx + (1 - a_d) * dprev
                    cutoff = self.opts["mincutoff"] + self.opts["beta"] * dprev.abs()
                    a = self._alpha(cutoff, rate)
                    prev = a * x + (1 - a) * prev
                out[i] = prev
            yield DynamicsChunk(out, chunk.start, chunk.fps, chunk.meta)


class RetimeStage(_DynamicsEdit):
    """Resample dynamics in time: change speed or fps (linear interpolation), reverse, loop.

    ``speed`` 2 plays the motion twice as fast; ``fps`` sets the output rate (0 keeps it).
    ``reverse`` and ``loop`` need the whole dynamics stream (about 1 KB a frame, so even an hour
    at 25 fps is ~90 MB); plain speed and fps changes stream.
    """

    name = "dtgan.retime"
    description = __doc__ or ""
    options = (Option("speed", float, 1.0, "playback speed factor", min=1e-3, max=1000),
               Option("fps", float, 0.0, "output frame rate (0 = same as input)", min=0, max=1000),
               Option("reverse", bool, False, "play the motion backwards"),
               Option("loop", int, 1, "repeat the (possibly reversed) motion N times", min=1,
                      max=10000),
               Option("pingpong", bool, False, "forwards then backwards, for seamless loops"))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Output fps and frame count follow from speed, fps and loop."""
        src = infos[0]
        fps_out = self.opts["fps"] or src.fps
        n = src.num_frames
        if n is not None:
            n_pass = n * (2 if self.opts["pingpong"] else 1)
            n = max(1, int(math.floor((n_pass - 1) * fps_out / (src.fps * self.opts["speed"]))) + 1)
            n *= self.opts["loop"]
        meta = dict(src.meta)
        meta[AUDIO_TEMPO] = float(src.meta.get(AUDIO_TEMPO, 1.0)) * self.opts["speed"]
        if self.opts["reverse"] or self.opts["pingpong"] or self.opts["loop"] > 1:
            meta[AUDIO_UNSYNCED] = "dtgan.retime reverses or loops the motion"
        return src.with_(fps=fps_out, num_frames=n, meta=meta)

    def _resample(self, vectors: Iterator[torch.Tensor], fps_in: float,
                  meta: dict[str, Any]) -> Iterator[DynamicsChunk]:
        fps_out = self.opts["fps"] or fps_in
        step = fps_in * self.opts["speed"] / fps_out  # input frames per output frame
        buf: list[torch.Tensor] = []
        base = 0  # input index of buf[0]
        k = 0  # next output index
        out: list[torch.Tensor] = []
        for vec in vectors:
            buf.append(vec)
            # emit every output frame whose right neighbour has arrived
            while True:
                pos = k * step
                lo = int(math.floor(pos))
                if lo + 1 >= base + len(buf) and not (pos == lo and lo < base + len(buf)):
                    break
                frac = pos - lo
                a = buf[lo - base]
                value = a if frac == 0 else a + (buf[lo + 1 - base] - a) * frac
                out.append(value)
                k += 1
                if len(out) == 64:
                    yield DynamicsChunk(torch.stack(out), k - 64, fps_out, meta)
                    out = []
            # drop what no later output frame needs; above speed 1 that can be more than has
            # arrived, and the rest is dropped as it comes (base counts every input frame)
            drop = min(int(math.floor(k * step)) - base, len(buf))
            if drop > 0:
                del buf[:drop]
                base += drop
        if out:
            yield DynamicsChunk(torch.stack(out), k - len(out), fps_out, meta)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Stream when possible; buffer the vectors for reverse, ping-pong and loops."""
        first: DynamicsChunk | None = None
        needs_all = self.opts["reverse"] or self.opts["loop"] > 1 or self.opts["pingpong"]

        def frames() -> Iterator[torch.Tensor]:
            nonlocal first
            for chunk in inputs[0]:
                if first is None:
                    first = chunk
                yield from chunk.vectors

        if not needs_all:
            src = frames()
            try:
                head = next(src)
            except StopIteration:
                return
            assert first is not None

            def chained() -> Iterator[torch.Tensor]:
                yield head
                yield from src

            yield from self._resample(chained(), first.fps, first.meta)
            return
        allv = list(frames())
        if not allv or first is None:
            return
        seq = torch.stack(allv)
        if self.opts["reverse"]:
            seq = seq.flip(0)
        if self.opts["pingpong"]:
            seq = torch.cat([seq, seq.flip(0)[1:]]) if len(seq) > 1 else seq
        offset = 0
        for _ in range(self.opts["loop"]):
            for chunk in self._resample(iter(seq), first.fps, first.meta):
                yield DynamicsChunk(chunk.vectors, chunk.start + offset, chunk.fps, chunk.meta)
                last = chunk.start + offset + len(chunk)
            offset = last


class LoadStage(Filter):
    """Read dynamics from a ``.dyn.safetensors`` file (a source: it has no input pads)."""

    name = "dtgan.load"
    description = __doc__ or ""
    inputs = ()
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)
    options = (Option("file", str, REQUIRED, "path of the .dyn.safetensors file"),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Open the file now so a missing or foreign file fails before anything runs."""
        from ..dynfile import DynamicsFile

        self.file = DynamicsFile(self.opts["file"])
        meta = {k: v for k, v in self.file.meta.items() if k not in ("format", "format_version")}
        return StreamInfo(PadKind.DYNAMICS, fps=self.file.fps, num_frames=self.file.num_frames,
                          dim=self.file.dim, meta=meta)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Stream the file's vectors."""
        yield from self.file.chunks(self.ctx.chunk_size)


class SaveStage(_DynamicsEdit):
    """Write the dynamics passing through to a ``.dyn.safetensors`` file, and pass them on.

    The file appears under its name only when the stream has ended successfully.
    """

    name = "dtgan.save"
    description = __doc__ or ""
    options = (Option("file", str, REQUIRED, "path of the .dyn.safetensors file to write"),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Check the output directory exists before anything runs."""
        from pathlib import Path

        from ..errors import MediaError

        parent = Path(self.opts["file"]).resolve().parent
        if not parent.is_dir():
            raise MediaError(f"dtgan.save: output directory '{parent}' does not exist")
        return infos[0]

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Tee every chunk into the file."""
        from ..dynfile import DynamicsWriter

        writer = DynamicsWriter(self.opts["file"])
        try:
            for chunk in inputs[0]:
                writer.write(chunk)
                yield chunk
        except BaseException:
            writer.abort()
            raise
        writer.close()


STAGES = (DynamicsStage, TransferStage, AmplifyStage, SmoothStage, RetimeStage, LoadStage,
          SaveStage)


@hookimpl
def dtgan_register_filters(register: Any) -> None:
    """Register the model stages (built in, through the same hook as any plugin)."""
    for cls in STAGES:
        register(cls)
