"""The model stages: dynamics extraction, transfer, and dynamics editing and files.

| stage            | pads                      | what                                       |
|------------------|---------------------------|--------------------------------------------|
| dtgan.dynamics   | video → dynamics          | appearance-suppressed dynamics (streaming) |
| dtgan.transfer   | image + dynamics → video  | the generator                              |
| dtgan.amplify    | dynamics → dynamics       | scale motion strength                      |
| dtgan.smooth     | dynamics → dynamics       | One-Euro smoothing against jitter          |
| dtgan.retime     | dynamics → dynamics       | speed, fps, reverse, loop                  |
| dtgan.load       | (file) → dynamics         | read a ``.dyn.safetensors`` file           |
| dtgan.image      | (file) → image            | read an image, with an alpha policy        |
| dtgan.save       | dynamics → dynamics       | write a ``.dyn.safetensors`` file, pass on |
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .. import dynamics_ops as ops
from ..errors import MediaError, OptionError, UsageError
from ..hooks.hookspecs import hookimpl
from ..stream import (AUDIO_TEMPO, AUDIO_UNSYNCED, DynamicsChunk, ImagePacket, PadKind,
                      StreamInfo, VideoChunk, audio_meta, frames_per_chunk)
from .base import REQUIRED, Filter, Option, Pad
from .basic import MAX_FPS, MAX_FRAME_GROWTH, check_frame_growth

#: largest ``dtgan.transfer`` output side (one float32 frame: 192 MiB)
MAX_OUTPUT_SIZE = 4096

_CKPT = Option("checkpoint", str, "default", "checkpoint name (default) or .safetensors path")
_FIT = Option("fit", str, "crop", "how images of another size or aspect are fitted",
              choices=("crop", "pad", "stretch"))
#: ``export.ort_backend.BACKENDS`` (written out so that loading the stages imports no model code)
_BACKENDS = ("torch", "onnxruntime")
_BACKEND = Option("backend", str, "torch", "inference backend: torch, or onnxruntime (CPU "
                  "only; the [onnx] extra; exports the checkpoint into a cache once)",
                  choices=_BACKENDS)
#: ``models.head_pose.MAX_HEAD`` (written out for the same reason)
_MAX_HEAD = 2.0
_LANDMARKER = Option("landmarker", str, "mediapipe",
                     "landmarker a landmark model reads faces with (the 'faces' extra)")


def _stage_model(stage: Filter) -> Any:
    """The stage's model: torch on the run's device, or the checkpoint's ONNX export (CPU)."""
    from ..export.ort_backend import load_backend

    backend = stage.opts["backend"]
    device = str(stage.ctx.device)
    if backend == "onnxruntime" and device.lower() not in ("auto", "cpu"):
        # the run's device is already resolved here: auto on a CUDA machine reads as cuda
        raise OptionError(f"{stage.name}: backend=onnxruntime runs on the CPU, but this graph "
                          f"runs on {device}", hint="run the graph with --device cpu")
    return load_backend(stage.opts["checkpoint"], device, backend)


def _single(packets: Iterator[Any], what: str) -> Any:
    for packet in packets:
        return packet
    raise UsageError(f"{what}: the image input produced nothing")


def check_finite(chunk: DynamicsChunk, stage: str) -> None:
    """MediaError naming the first frame whose dynamics vector is NaN or infinite."""
    bad = ops.first_nonfinite(chunk.vectors)
    if bad is not None:
        raise MediaError(f"{stage}: the dynamics of frame {chunk.start + bad} are not finite "
                         "(NaN or infinity); they would render as black frames",
                         hint="re-extract the dynamics, or check the edits applied to them")


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
               _FIT, _BACKEND, _LANDMARKER)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Load the model now, so a bad checkpoint fails before decoding starts."""
        self.model = _stage_model(self)
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
                               fit=self.opts["fit"], landmarker=self.opts["landmarker"])
        produced = 0
        fps = 25.0
        for chunk in inputs[0]:
            fps = chunk.fps
            # dtgan.facecrop attaches the face's landmarks: a landmark model reads those
            d = ex.push(chunk.frames, getattr(chunk, "landmarks", None))
            if d.shape[0]:
                yield DynamicsChunk(d.cpu(), produced, fps, dict(self.meta))
                produced += int(d.shape[0])
        d = ex.flush()  # a landmark model's last frames wait for a lost face's gap to close
        if d.shape[0]:
            yield DynamicsChunk(d.cpu(), produced, fps, dict(self.meta))


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
                      min=0, max=MAX_OUTPUT_SIZE),
               Option("strict", bool, True, "refuse dynamics made by another checkpoint"),
               _BACKEND, _LANDMARKER,
               Option("head", float, 1.0, "the source's head motion kept (1 all, 0 the head "
                      "stays put, the expression moves; landmark models)", min=0.0,
                      max=_MAX_HEAD))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Load the model and check the dynamics came from it."""
        from ..inference import check_head

        self.model = _stage_model(self)
        try:
            check_head(self.model, self.opts["head"])
        except OptionError as exc:
            raise OptionError(f"{self.name}: {exc.message}", hint=exc.hint) from None
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
                            out_size=self.opts["size"] or None,
                            landmarker=self.opts["landmarker"], head=self.opts["head"])
        size = self.opts["size"] or int(self.model.config.resolution)
        # an upscaled output is cut to the chunk byte budget (4096 px: one frame a chunk)
        per_chunk = frames_per_chunk(self.ctx.chunk_size, size, size)
        # a landmark model's chunks carry where it moved the face's 68 points (and the head's
        # outline, when the hair moves with it), so that dtgan.pasteback's mask can follow
        for chunk in inputs[1]:
            check_finite(chunk, self.name)
            for a in range(0, len(chunk), per_chunk):
                frames, pts, hair = renderer.render_with_geometry(chunk.vectors[a:a + per_chunk])
                yield VideoChunk(frames.cpu(), chunk.start + a, chunk.fps,
                                 landmarks=None if pts is None else pts.cpu(),
                                 outline=None if hair is None else hair.cpu())
                del frames


class _DynamicsEdit(Filter):
    inputs = (Pad("dynamics", PadKind.DYNAMICS),)
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)


class AmplifyStage(_DynamicsEdit):
    """Scale motion strength: 0 = the target stays still, 1 = as the source, >1 exaggerated."""

    name = "dtgan.amplify"
    description = __doc__ or ""
    options = (Option("factor", float, 1.0, "motion strength multiplier",
                      min=-ops.MAX_AMPLIFY, max=ops.MAX_AMPLIFY),)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Multiply every vector by ``factor`` (ASD is zero at rest, so this scales motion)."""
        k = self.opts["factor"]
        for chunk in inputs[0]:
            yield DynamicsChunk(ops.amplify(chunk.vectors, k), chunk.start, chunk.fps, chunk.meta)


class SmoothStage(_DynamicsEdit):
    """Temporal smoothing with a One-Euro filter: steady poses stay still, fast moves stay fast.

    ``mincutoff`` (Hz) sets the smoothing of slow motion (lower = smoother); ``beta`` how fast
    the cutoff rises with speed (higher = less lag on fast moves).
    """

    name = "dtgan.smooth"
    description = __doc__ or ""
    options = (Option("mincutoff", float, ops.MINCUTOFF, "cutoff frequency at rest, Hz",
                      min=1e-3),
               Option("beta", float, ops.BETA, "speed coefficient", min=0.0),
               Option("dcutoff", float, ops.DCUTOFF, "cutoff for the derivative, Hz", min=1e-3))

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[DynamicsChunk]:
        """Filter each vector dimension independently, carrying state across chunks."""
        smoother = ops.OneEuro(self.opts["mincutoff"], self.opts["beta"], self.opts["dcutoff"])
        for chunk in inputs[0]:
            yield DynamicsChunk(smoother(chunk.vectors, chunk.fps), chunk.start, chunk.fps,
                                chunk.meta)


class RetimeStage(_DynamicsEdit):
    """Resample dynamics in time: change speed or fps (linear interpolation), reverse, loop.

    ``speed`` 2 plays the motion twice as fast; ``fps`` sets the output rate (0 keeps it).
    ``reverse`` and ``loop`` need the whole dynamics stream (about 1 KB a frame, so even an hour
    at 25 fps is ~90 MB); plain speed and fps changes stream.
    """

    name = "dtgan.retime"
    description = __doc__ or ""
    options = (Option("speed", float, 1.0, "playback speed factor", min=1e-3, max=1000),
               Option("fps", float, 0.0, "output frame rate (0 = same as input)", min=0,
                      max=MAX_FPS),
               Option("reverse", bool, False, "play the motion backwards"),
               Option("loop", int, 1, "repeat the (possibly reversed) motion N times", min=1,
                      max=10000),
               Option("pingpong", bool, False, "forwards then backwards, for seamless loops"))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Output fps and frame count follow from speed, fps and loop."""
        src = infos[0]
        fps_out = self.opts["fps"] or src.fps
        if src.fps > 0:  # loops are counted, not refused: loop=N is explicit
            check_frame_growth(fps_out / (src.fps * self.opts["speed"]), self.name,
                               f"speed {self.opts['speed']:g} at {fps_out:g} fps from "
                               f"{src.fps:g} fps",
                               f"keep fps / (input fps x speed) at most {MAX_FRAME_GROWTH:g}")
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


#: ``media.image.ALPHA_MODES`` (written out so that loading the stages imports no media code)
_ALPHA_MODES = ("refuse", "composite", "drop")


class ImageStage(Filter):
    """Read an image file (a source: it has no input pads), with a policy for transparency.

    ``alpha``: ``refuse`` (an image with transparent pixels is an error), ``composite``
    (flatten it over white) or ``drop`` (ignore the alpha channel). A graph input ``[1]`` reads
    images with ``refuse``; use this stage for the other two.
    """

    name = "dtgan.image"
    description = __doc__ or ""
    inputs = ()
    outputs = (Pad("image", PadKind.IMAGE),)
    options = (Option("file", str, REQUIRED, "path of the image"),
               Option("alpha", str, "refuse", "what to do with transparent pixels",
                      choices=_ALPHA_MODES))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Read the image now (one frame), so a bad file fails before anything runs."""
        from ..media.image import read_image

        self.image = read_image(self.opts["file"], alpha=self.opts["alpha"])
        return StreamInfo(PadKind.IMAGE, width=int(self.image.shape[-1]),
                          height=int(self.image.shape[-2]), num_frames=1,
                          meta={"path": self.opts["file"]})

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[ImagePacket]:
        """The image, on the graph's device."""
        yield ImagePacket(self.image.to(self.ctx.device))


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
          ImageStage, SaveStage)


@hookimpl
def dtgan_register_filters(register: Any) -> None:
    """Register the model stages (built in, through the same hook as any plugin)."""
    for cls in STAGES:
        register(cls)
