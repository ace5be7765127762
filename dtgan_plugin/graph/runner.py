"""The graph runner: one execution of a validated :class:`~.model.Graph`.

:class:`Run` binds paths, opens the readers (through the plugin registry, see
:mod:`.openers`), propagates :class:`StreamInfo` through every stage's ``configure``, builds
the executor's tasks and runs them; :class:`Output` is one encoded output. Outputs appear
under their final names only after the whole graph has succeeded.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import MediaError, OptionError, UsageError
from ..filters.base import Filter, RunContext
from ..stream import (AUDIO_OFFSET, AUDIO_TEMPO, AUDIO_UNSYNCED, ImagePacket, PadKind,
                      StreamInfo, VideoChunk, frames_per_chunk)
from ..system import resolve_device
from .executor import Executor, Task
from .model import Graph
from .nodes import IOSpec, PathLike, RunStats, Stream, input_kind
from .openers import open_reader, open_writer
from .threads import auto_threads, torch_threads


class Output:
    """One graph output: a VideoWriter, or a still image file for an image stream.

    The writer is created before decoding when the stream's size is known (so a bad codec,
    folder or encoder filter fails early), else at the first chunk. Outputs become visible
    under their final names only in :meth:`close`, after the whole graph has succeeded.
    """

    def __init__(self, run: "Run", name: str, path: str, stream: Stream) -> None:
        from ..media.video import is_image_path

        self.run = run
        self.name = name
        self.path = path
        self.stream = stream
        self.info = run._info(stream)
        self.vf = run.g._vf(stream.plain) if stream.origin == "stage" else None
        self.still = run.stream_kind(stream) is PadKind.IMAGE and is_image_path(path)
        if self.still and self.vf:
            raise UsageError(f"output '{name}' is a still image, which ffmpeg filters cannot "
                             f"reach (-vf {self.vf})", hint="use dtgan.* stages before it")
        # keep_audio may name the file whose audio to copy (e.g. the source of saved dynamics)
        self.audio: str | None = None
        if self.still or not run.keep_audio:
            pass
        elif isinstance(run.keep_audio, (str, os.PathLike)):
            self.audio = os.fspath(run.keep_audio)
        else:
            self.audio = run.audio_path(stream)
        unsynced = self.info.meta.get(AUDIO_UNSYNCED)
        if self.audio is not None and unsynced:
            raise UsageError(f"output '{name}': {unsynced}, so the source's audio cannot stay "
                             "in sync with it (--keep-audio)",
                             hint="drop --keep-audio, or add a matching audio track with ffmpeg")
        self.writer: Any = None
        self.size = (0, 0)  # (width, height) the writer was opened with: writers need not say
        self.image: torch.Tensor | None = None
        self.frames = 0
        self._lock = threading.Lock()

    def _open(self, width: int, height: int, fps: float) -> None:
        writer = open_writer(self.run.g.registry, self.path, fps=fps, width=width,
                             height=height, codec=self.run.codec, crf=self.run.crf,
                             audio_from=self.audio, vf=self.vf,
                             audio_offset=float(self.info.meta.get(AUDIO_OFFSET, 0.0)),
                             audio_tempo=float(self.info.meta.get(AUDIO_TEMPO, 1.0)))
        with self._lock:
            self.writer = writer
            self.size = (width, height)

    def prepare(self) -> None:
        """Open the encoder now if the size is already known."""
        if not self.still and self.info.width > 0 and self.info.height > 0:
            self._open(self.info.width, self.info.height, self.info.fps or 25.0)

    def body(self, ins: list[Iterator[Any]]) -> None:
        """The sink task: write every packet of the stream."""
        for packet in ins[0]:
            if isinstance(packet, ImagePacket):
                frames = packet.image[None]
            elif isinstance(packet, VideoChunk):
                frames = packet.frames
            else:
                raise MediaError(f"output '{self.name}' got {type(packet).__name__} packets; "
                                 "only video and images can be encoded")
            if frames.device.type != "cpu":
                frames = frames.cpu()
            if self.still:
                self.image = frames[0]
                self._count(1)
                return  # one image is all a still output takes
            h, w = int(frames.shape[-2]), int(frames.shape[-1])
            if self.writer is not None and self.size != (w, h):
                if self.frames:
                    raise MediaError(f"output '{self.name}': frame size changed mid-stream from "
                                     f"{self.size[0]}x{self.size[1]} to {w}x{h}",
                                     hint="add dtgan.resize before the output")
                # a stage announced another size in configure(): follow what it produced
                self.writer.abort()
                self.writer = None
            if self.writer is None:
                fps = self.info.fps or (packet.fps if isinstance(packet, VideoChunk) else 25.0)
                self._open(w, h, fps)
            self.writer.write(frames)
            self._count(len(frames))
            del packet, frames  # free the chunk while waiting for the next one
        if self.frames == 0:
            raise MediaError(f"output '{self.name}' received no frames",
                             hint="check the input and any trim range")

    def _count(self, n: int) -> None:
        self.frames += n
        self.run.progress_update(n)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.still:
            from ..media.image import write_image

            assert self.image is not None
            write_image(self.path, self.image)
            return
        with self._lock:
            writer = self.writer
        if writer is not None:
            writer.close()

    def abort(self) -> None:
        """Remove any partial output; idempotent."""
        with self._lock:
            writer, self.writer = self.writer, None
        if writer is not None:
            writer.abort()


class Run:
    """One execution of a graph: binding, opening, configuring, tasks, and cleanup."""

    def __init__(self, graph: Graph, inputs: IOSpec, outputs: IOSpec, *, device: str,
                 chunk_size: int, progress: bool, keep_audio: bool | PathLike, codec: str,
                 crf: int | None, queue_size: int, threads: int | str | None) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise UsageError(f"chunk size must be a positive whole number, got {chunk_size!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise UsageError(f"queue size must be a positive whole number, got {queue_size!r}")
        if not (threads is None or threads == "auto" or (
                isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1)):
            raise UsageError(f"threads must be 'auto', None or a positive number, got {threads!r}")
        self.threads = threads
        self.g = graph
        self.inputs, self.outputs = graph.bind(inputs, outputs)
        self.device = resolve_device(device)
        self.chunk_size = chunk_size
        self.progress = progress
        self.keep_audio = keep_audio
        self.codec = codec
        self.crf = crf
        self.queue_size = queue_size
        self.kinds = {name: input_kind(path) for name, path in self.inputs.items()}
        self.stream_kinds = graph.check_kinds(self.kinds)
        self.readers: dict[tuple[str, tuple[int, ...]], Any] = {}
        self.images: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self.infos: dict[Stream, StreamInfo] = {}
        self.sinks: list[Output] = []
        self.instances: dict[int, Filter] = {}
        self._bar: Any = None
        self._bar_lock = threading.Lock()

    # ------------------------------------------------------------------------------ open
    def _key(self, s: Stream) -> tuple[str, tuple[int, ...]]:
        return str(s.ref), s.plain

    def stream_kind(self, s: Stream) -> PadKind | None:
        """The kind of stream ``s`` (from the bound inputs)."""
        if s.origin == "input":
            return self.kinds.get(str(s.ref))
        return self.stream_kinds.get(s.bare())

    def _open_sources(self) -> None:
        from ..media.image import read_image
        from ..media.video import FFmpegReader

        for s in self.g.all_streams():
            if s.origin != "input" or self._key(s) in self.readers or self._key(s) in self.images:
                continue
            name = str(s.ref)
            path = self.inputs[name]
            vf = self.g._vf(s.plain)
            if self.kinds[name] is PadKind.IMAGE:
                if vf is None:
                    img = read_image(path)
                    self.images[self._key(s)] = img
                    self.infos[s] = StreamInfo(PadKind.IMAGE, width=int(img.shape[-1]),
                                               height=int(img.shape[-2]), num_frames=1,
                                               meta={"path": path})
                else:
                    reader = FFmpegReader(path, vf=vf)  # ffmpeg decodes a still as one frame
                    self.readers[self._key(s)] = reader
                    self.infos[s] = reader.info.with_(kind=PadKind.IMAGE, num_frames=1)
            else:
                reader = open_reader(self.g.registry, path, vf=vf)
                self.readers[self._key(s)] = reader
                self.infos[s] = reader.info.with_(kind=PadKind.VIDEO)

    def _info(self, s: Stream) -> StreamInfo:
        if s.origin == "input":
            return self.infos[s]
        return self.infos[s.bare()]

    def _configure(self) -> None:
        ctx = RunContext(device=str(self.device), chunk_size=self.chunk_size,
                         progress=self.progress)
        for idx in self.g.order:
            st = self.g.stages.get(idx)
            if st is None or st.alias:
                continue
            inst = self.instances[idx]
            inst.setup(ctx)
            try:
                out = inst.configure([self._info(s) for s in st.inputs])
            except OptionError as err:
                raise self.g._error(err.message, st.node.column, err.hint) from None
            outs = list(out) if isinstance(out, (list, tuple)) else [out] * len(st.out_pads)
            for p in range(len(st.out_pads)):
                s = Stream("stage", idx, p)
                kind = self.stream_kinds.get(s)
                self.infos[s] = outs[p].with_(kind=kind) if kind is not None else outs[p]

    # ----------------------------------------------------------------------------- audio
    def _audio_input(self, s: Stream) -> str | None:
        """The first video input upstream of ``s`` (depth first, input pads in order)."""
        if s.origin == "input":
            return str(s.ref) if self.kinds.get(str(s.ref)) is PadKind.VIDEO else None
        for upstream in self.g.stages[int(s.ref)].inputs:
            found = self._audio_input(upstream)
            if found is not None:
                return found
        return None

    def audio_path(self, s: Stream) -> str | None:
        """Whose audio goes with stream ``s``: its own video input, else the first video input."""
        name = self._audio_input(s)
        if name is None:
            videos = [n for n in self.g.input_names
                      if n in self.inputs and self.kinds.get(n) is PadKind.VIDEO]
            name = videos[0] if videos else None
        if name is None or self.inputs[name] == "-":
            return None  # stdin cannot be read twice: there is no audio to copy
        return self.inputs[name]

    # ----------------------------------------------------------------------------- tasks
    def progress_update(self, n: int) -> None:
        """Advance the progress bar (called from sink threads)."""
        with self._bar_lock:
            if self._bar is not None:
                self._bar.update(n)

    def _source_task(self, key: tuple[str, tuple[int, ...]]) -> Task:
        dev = self.device
        chunk_size = self.chunk_size
        name = f"decode[{key[0]}]"
        if key in self.images:
            img = self.images[key]

            def body_image(_: list[Iterator[Any]]) -> Iterator[Any]:
                yield ImagePacket(img.to(dev))

            return Task(name, body_image)
        reader = self.readers[key]
        image = self.kinds[key[0]] is PadKind.IMAGE

        # big frames come in fewer per chunk, so the queues hold little whatever the resolution
        per_chunk = frames_per_chunk(chunk_size, reader.info.width, reader.info.height)

        def body(_: list[Iterator[Any]]) -> Iterator[Any]:
            for chunk in reader.chunks(per_chunk):
                if image:
                    yield ImagePacket(chunk.frames[0].to(dev))
                    return
                if dev.type != "cpu":
                    chunk = VideoChunk(chunk.frames.to(dev, non_blocking=True), chunk.start,
                                       chunk.fps)
                yield chunk

        return Task(name, body, cleanup=reader.close)

    def _total(self) -> int | None:
        total = 0
        for sink in self.sinks:
            n = sink.info.num_frames
            if n is None:
                return None
            total += 1 if sink.still else n
        return total

    # ------------------------------------------------------------------------------- run
    def execute(self) -> RunStats:
        """Open, configure, run and finish; on any failure leave no output behind."""
        from tqdm import tqdm

        g = self.g
        try:
            self.instances = g.take_instances()
            self._open_sources()
            self._configure()
            for name in g.output_names:
                self.sinks.append(Output(self, name, self.outputs[name], g.output_streams[name]))
            for sink in self.sinks:
                sink.prepare()
            ex = Executor(queue_size=self.queue_size)
            ids: dict[Any, int] = {}
            for key in list(self.readers) + list(self.images):
                ids[("input", key)] = ex.add(self._source_task(key))

            def endpoint(s: Stream) -> tuple[int, int]:
                if s.origin == "input":
                    return ids[("input", self._key(s))], 0
                return ids[("stage", int(s.ref))], s.pad

            for idx in g.order:
                st = g.stages.get(idx)
                if st is None or st.alias:
                    continue
                inst = self.instances[idx]
                ids[("stage", idx)] = ex.add(Task(
                    st.node.name, lambda ins, f=inst: f.run(ins),
                    inputs=[endpoint(s) for s in st.inputs], n_outputs=len(st.out_pads),
                    multi=len(st.out_pads) > 1))
            for sink in self.sinks:
                ex.add(Task(f"encode[{sink.name}]", sink.body, inputs=[endpoint(sink.stream)],
                            n_outputs=0))
            self._bar = tqdm(total=self._total(), unit="frame", file=sys.stderr,
                             disable=not self.progress, dynamic_ncols=True, leave=False)
            n_threads = self.threads
            if n_threads == "auto":
                n_threads = (auto_threads(len(self.readers) + len(self.sinks))
                             if self.device.type == "cpu" else None)
            with torch_threads(n_threads):  # type: ignore[arg-type]
                result = ex.run(on_abort=[self._abort_outputs])
            # only now, with every branch done, do outputs appear under their final names
            for sink in self.sinks:
                sink.close()
            written = {sink.name: sink.frames for sink in self.sinks}
            frames = sum(written.values())
            seconds = result.seconds
            return RunStats(frames, seconds, frames / seconds if seconds > 0 else 0.0, written)
        except BaseException:
            self._abort_outputs()
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
            for reader in self.readers.values():
                try:
                    reader.close()
                except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                    pass
            for inst in self.instances.values():
                try:
                    inst.close()
                except Exception as err:  # noqa: BLE001
                    print(f"dtgan: warning: closing {inst.name} failed: {err}", file=sys.stderr)

    def _abort_outputs(self) -> None:
        for sink in self.sinks:
            try:
                sink.abort()
            except Exception as err:  # noqa: BLE001 - the first error is the one to report
                print(f"dtgan: warning: could not remove a partial output: {err}",
                      file=sys.stderr)
