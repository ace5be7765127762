"""Filter-graph text → a validated, typed DAG → executor tasks.

:class:`Graph` is the public face (re-exported by :mod:`dtgan_plugin.graph`):

* ``Graph.parse(text, inputs=..., outputs=...)`` parses and validates everything that can be
  known before a frame is decoded: stage names (with a did-you-mean), options (types, ranges,
  cross-checks in the stage's constructor), links (dangling or reused labels, cycles, input
  counts), pad kinds, and where plain FFmpeg filters sit.
* ``graph.run(inputs, outputs)`` binds files, checks the kinds the files imply, opens the
  readers (which know sizes before decoding), propagates :class:`StreamInfo` through every
  stage's ``configure``, and streams chunks through the executor.

Plain filters (names without a dot) are FFmpeg's. A run of them right after an input is
folded into the decoding ffmpeg (``open_video(path, vf=...)``); a run right before an output
into the encoding one (``VideoWriter(..., vf=...)``). Anywhere else no ffmpeg process exists to
host them, and that is a :class:`GraphError` naming the native stage to use instead.

Three optional class attributes extend the :class:`Filter` contract for stages whose pads
depend on their options or input (``dtgan.split`` uses all three):

* ``output_pads(opts) -> tuple[Pad, ...]`` (classmethod): output pads for these options.
* ``kind_follows_input: tuple[PadKind, ...]``: input 0 accepts these kinds and every output
  carries the kind input 0 received.
* ``alias_outputs = True``: every output *is* the input stream; the builder wires consumers
  straight to the producer (fan-out in the executor shares packets, so nothing is copied).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch

from ..system import available_cpus
from ..errors import DtganError, GraphError, MediaError, OptionError, UsageError
from ..filters.base import Filter, Pad, RunContext
from ..stream import (AUDIO_OFFSET, AUDIO_TEMPO, AUDIO_UNSYNCED, ImagePacket, PadKind,
                      StreamInfo, VideoChunk, frames_per_chunk)
from . import parser as P
from .ast import FilterNode, GraphSpec
from .executor import DEFAULT_QUEUE, Executor, Task

#: what to use instead of a plain filter that no ffmpeg process can host
NATIVE_EQUIVALENTS: dict[str, str] = {
    "scale": "dtgan.resize", "crop": "dtgan.crop", "hflip": "dtgan.flip",
    "vflip": "dtgan.flip=v", "trim": "dtgan.trim", "fps": "dtgan.fps",
    "hstack": "dtgan.stack", "vstack": "dtgan.stack=v", "split": "dtgan.split",
}
#: plain names that mean exactly a native stage (FFmpeg's split only fans a stream out, which
#: the executor does natively), so graphs written for ffmpeg keep working
PLAIN_ALIASES: dict[str, str] = {"split": "dtgan.split"}
DYNAMICS_SUFFIX = ".dyn.safetensors"

PathLike = Union[str, "os.PathLike[str]"]
IOSpec = Union[Sequence[PathLike], Mapping[str, PathLike], PathLike]


@dataclass
class RunStats:
    """What a run did: frames written (all outputs), wall time, and frames per second."""

    frames: int
    seconds: float
    fps: float
    outputs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """Where a stream comes from once splits are wired through and plain filters folded.

    ``origin`` is ``"input"`` (``ref`` = input name; ``plain`` = filters the decoder runs) or
    ``"stage"`` (``ref`` = filter index, ``pad`` = its output; ``plain`` = filters still to be
    hosted, which only an encoder can do).
    """

    origin: str
    ref: str | int
    pad: int = 0
    plain: tuple[int, ...] = ()


@dataclass
class StageNode:
    """A native stage in the graph: its class, raw options, pads and input streams."""

    index: int
    node: FilterNode
    cls: type[Filter]
    raw: dict[str, str]
    opts: dict[str, Any]
    in_pads: tuple[Pad, ...]
    out_pads: tuple[Pad, ...]
    inputs: list[Stream] = field(default_factory=list)

    @property
    def alias(self) -> bool:
        """True when the outputs are the input stream itself (a split)."""
        return bool(getattr(self.cls, "alias_outputs", False))

    @property
    def follows(self) -> tuple[PadKind, ...] | None:
        """Kinds accepted on input 0 when the outputs take the input's kind, else None."""
        return getattr(self.cls, "kind_follows_input", None)


# ------------------------------------------------------------------------------ FFmpeg filters

@functools.lru_cache(maxsize=4)
def _ffmpeg_filters(exe: str) -> dict[str, str]:
    """``{name: "V->V"}`` from ``ffmpeg -filters`` (empty if it cannot be run)."""
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    table: dict[str, str] = {}
    started = False
    for line in out.splitlines():
        if line.strip().startswith("---"):
            started = True
            continue
        parts = line.split()
        if started and len(parts) >= 3 and "->" in parts[2]:
            table[parts[1]] = parts[2]
    return table


def ffmpeg_filter_table() -> dict[str, str]:
    """FFmpeg's filters and their pad signatures, or ``{}`` when ffmpeg is unavailable."""
    try:
        from ..media.ffmpeg_bin import find_ffmpeg

        return _ffmpeg_filters(find_ffmpeg())
    except DtganError:
        return {}


# ------------------------------------------------------------------------------------ helpers

def _names_and_paths(spec: IOSpec | None, what: str
                     ) -> tuple[list[str] | None, dict[str, str]]:
    """Parse-time ``inputs``/``outputs``: names (a sequence) or a name → path mapping."""
    if spec is None:
        return None, {}
    if isinstance(spec, Mapping):
        names = [str(k) for k in spec]
        return names, {str(k): os.fspath(v) for k, v in spec.items()}
    if isinstance(spec, (str, os.PathLike)):
        raise UsageError(f"{what}s must be a list of names or a mapping name -> path, "
                         f"got the single value {os.fspath(spec)!r}")
    names = [str(n) for n in spec]
    if len(set(names)) != len(names):
        raise UsageError(f"{what} names must be unique, got {names}")
    return names, {}


def input_kind(path: str) -> PadKind:
    """The pad kind a file implies: image by extension, video otherwise."""
    from ..media.video import is_image_path

    if path.lower().endswith(DYNAMICS_SUFFIX):
        raise UsageError(f"'{path}' is a dynamics file, not a video or image input",
                         hint=f"read it inside the graph with dtgan.load=file={path}")
    return PadKind.IMAGE if path != "-" and is_image_path(path) else PadKind.VIDEO


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an absent CUDA is a usage error."""
    if isinstance(name, torch.device):
        return name
    text = (name or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device '{text}' was asked for but no CUDA device is available",
                             hint="use --device cpu or auto")
        return torch.device(text)
    if text == "cpu":
        return torch.device("cpu")
    raise UsageError(f"unknown device '{name}'", hint="use auto, cpu or cuda[:N]")



_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


def auto_threads(n_processes: int) -> int:
    """Torch threads for a run: the CPUs left after one per ffmpeg process, at least 1.

    Stages run concurrently with decoders and encoders; on a small machine, torch's
    intra-op threads would otherwise spin against them (measured on 2 cores: the pipeline
    ran ~25% faster with one torch thread than with two).
    """
    return max(1, min(torch.get_num_threads(), available_cpus() - n_processes))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads for the duration (None: leave them), then restore.

    torch's setting is process-wide: concurrent runs share the first one's value and the
    last to finish restores the original.
    """
    global _threads_users, _threads_saved
    if n is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(max(1, n))
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)


# ------------------------------------------------------------------------------------- Graph

class Graph:
    """A validated filter graph; ``run`` streams files through it (see the module docstring)."""

    def __init__(self, spec: GraphSpec, *, inputs: Sequence[str] | None = None,
                 outputs: Sequence[str] | None = None, registry: Any = None,
                 input_paths: Mapping[str, str] | None = None) -> None:
        if registry is None:
            from ..hooks.manager import get_registry

            registry = get_registry()
        self.spec = spec
        self.text = spec.text
        self.registry = registry
        self._declared_inputs = list(inputs) if inputs is not None else None
        self._declared_outputs = list(outputs) if outputs is not None else None
        self.nodes: list[FilterNode] = spec.filters()
        self.stages: dict[int, StageNode] = {}
        self.plain: dict[int, FilterNode] = {}
        self._instances: dict[int, Filter] | None = None
        for i, node in enumerate(self.nodes):
            self._resolve_node(i, node)
        self._by_node = {id(st.node): st for st in self.stages.values()}
        self.edges = P.resolve_links(spec, inputs, outputs, pads=self._pad_counts)
        self.order = P.topological_order(spec, self.edges)
        self._incoming = {(e.dst, e.dst_pad): e for e in self.edges if isinstance(e.dst, int)}
        self.streams: dict[tuple[int, int], Stream] = {}
        self.output_streams: dict[str, Stream] = {}
        self._output_edges: dict[str, P.Edge] = {}
        self._wire()
        used = sorted({s.ref for s in self._all_streams() if s.origin == "input"},
                      key=lambda n: (not str(n).isdigit(), int(n) if str(n).isdigit() else 0, n))
        self.input_names: list[str] = (list(self._declared_inputs)
                                       if self._declared_inputs is not None else
                                       [str(n) for n in used])
        self.used_inputs: set[str] = {str(n) for n in used}
        if self._declared_outputs is not None:
            self.output_names = list(self._declared_outputs)
        else:
            self.output_names = sorted(self.output_streams,
                                       key=lambda n: self._output_edges[n].column)
        kinds = {name: input_kind(path) for name, path in (input_paths or {}).items()}
        self.check_kinds(kinds)
        self._lock = threading.Lock()
        self.validate_stages()

    # ------------------------------------------------------------------------- construction
    @classmethod
    def parse(cls, text: str, *, inputs: Sequence[str] | Mapping[str, PathLike] | None = None,
              outputs: Sequence[str] | Mapping[str, PathLike] | None = None,
              registry: Any = None) -> "Graph":
        """Parse and validate ``text`` (GraphError with a column on any problem).

        ``inputs``/``outputs`` are the names the graph may use (a list, ``-i name=...``), or a
        mapping name → path, which also checks the kinds the files imply. None means inputs
        are ``[0]``, ``[1]``, ... and every unconsumed label (or the open last output,
        ``out``) is an output.
        """
        spec = P.parse_graph(text)
        in_names, in_paths = _names_and_paths(inputs, "input")
        out_names, _ = _names_and_paths(outputs, "output")
        return cls(spec, inputs=in_names, outputs=out_names, registry=registry,
                   input_paths=in_paths)

    def _error(self, message: str, column: int | None, hint: str | None = None) -> GraphError:
        return GraphError(message, text=self.text, column=column, hint=hint)

    def _resolve_node(self, index: int, node: FilterNode) -> None:
        name = node.name if node.is_native else PLAIN_ALIASES.get(node.name, node.name)
        if "." not in name:
            self._check_plain(node)
            self.plain[index] = node
            return
        entry = self.registry.get("filters", name)
        if entry is None:
            names = self.registry.names("filters")
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'?" if close else
                    "run 'dtgan filters' to list the stages")
            raise self._error(f"unknown stage '{name}'", node.column, hint)
        cls = entry.obj
        opts, raw = self._check_options(cls, node)
        out_pads = tuple(cls.output_pads(opts)) if hasattr(cls, "output_pads") else cls.outputs
        self.stages[index] = StageNode(index, node, cls, raw, opts, tuple(cls.inputs), out_pads)

    def _check_plain(self, node: FilterNode) -> None:
        where = ("plain filters run inside the ffmpeg that decodes an input or encodes an "
                 "output, so they need exactly one video input and one video output")
        if len(node.in_labels) > 1 or len(node.out_labels) > 1:
            col = (node.in_labels[1] if len(node.in_labels) > 1 else node.out_labels[1]).column
            raise self._error(f"FFmpeg filter '{node.name}' is given more than one "
                              f"{'input' if len(node.in_labels) > 1 else 'output'}", col,
                              self._native_hint(node.name, where))
        table = ffmpeg_filter_table()
        if not table:
            return  # no ffmpeg to ask: the decoder/encoder reports a bad name when it starts
        sig = table.get(node.name)
        if sig is None:
            natives = [n for n in self.registry.names("filters") if n.split(".", 1)[-1] == node.name]
            close = difflib.get_close_matches(node.name, list(table), n=1, cutoff=0.75)
            hint = (f"did you mean '{natives[0]}'?" if natives else
                    f"did you mean '{close[0]}'?" if close else
                    "stages of ours have a dot (dtgan.resize); 'dtgan filters' lists them")
            raise self._error(f"'{node.name}' is neither a registered stage nor an FFmpeg "
                              "filter", node.column, hint)
        if sig != "V->V":
            what = ("an audio filter" if "A" in sig else
                    "a source or sink" if "|" in sig else f"'{sig}', not single video in/out")
            raise self._error(f"FFmpeg filter '{node.name}' is {what}", node.column,
                              self._native_hint(node.name, where))

    @staticmethod
    def _native_hint(name: str, default: str) -> str:
        native = NATIVE_EQUIVALENTS.get(name)
        return f"use {native} here" if native else default

    def _check_options(self, cls: type[Filter], node: FilterNode
                       ) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate a stage's options; OptionError becomes a GraphError at the option."""
        positional, named = list(node.positional), dict(node.named)
        try:
            opts = cls.resolve_options(named, positional)
        except OptionError as err:
            raise self._error(err.message, self._option_column(cls, node), err.hint) from None
        raw = {o.name: v for o, v in zip(cls.options, positional)}
        raw.update(named)
        return opts, raw

    @staticmethod
    def _option_column(cls: type[Filter], node: FilterNode) -> int:
        """The column of the option that ``resolve_options`` refused (else the stage name)."""
        cols = node.arg_columns
        schema = {o.name: o for o in cls.options}
        for j, raw in enumerate(node.positional):
            if j >= len(cls.options):
                return cols[j] if j < len(cols) else node.column
            try:
                cls.options[j].parse(raw)
            except OptionError:
                return cols[j] if j < len(cols) else node.column
        taken = {o.name for o in cls.options[:len(node.positional)]}
        for k, (key, raw) in enumerate(node.named.items()):
            col = cols[len(node.positional) + k] if len(node.positional) + k < len(cols) \
                else node.column
            if key not in schema or key in taken:
                return col
            try:
                schema[key].parse(raw)
            except OptionError:
                return col
        return node.column

    def _pad_counts(self, node: FilterNode) -> tuple[int, int]:
        """Pads of a node for link resolution (plain filters: one in, one out)."""
        st = self._by_node.get(id(node))
        return (len(st.in_pads), len(st.out_pads)) if st is not None else (1, 1)

    def _describe_producer(self, stream: Stream) -> str:
        if stream.origin == "input":
            return f"input [{stream.ref}]"
        return f"'{self.nodes[int(stream.ref)].name}'"

    def _source_of(self, edge: P.Edge) -> Stream:
        if isinstance(edge.src, str):
            root, _, spec = edge.src.partition(":")
            if spec and spec.split(":")[0] != "v":
                raise self._error(f"[{edge.src}] selects a non-video stream; only video "
                                  "streams can enter the graph", edge.column,
                                  f"use [{root}] or [{root}:v]; audio is copied with "
                                  "--keep-audio")
            return Stream("input", root)
        return self.streams[(edge.src, edge.src_pad)]

    def _wire(self) -> None:
        """Follow streams through plain filters and splits; place every plain filter."""
        for idx in self.order:
            if idx in self.plain:
                src = self._source_of(self._incoming[(idx, 0)])
                self.streams[(idx, 0)] = replace(src, plain=src.plain + (idx,))
                continue
            st = self.stages[idx]
            st.inputs = [self._source_of(self._incoming[(idx, p)]) for p in range(len(st.in_pads))]
            for s in st.inputs:
                # a split passes pending plain filters on to its consumers, who decide
                if s.origin == "stage" and s.plain and not st.alias:
                    self._unhostable(s, st.node)
            for p in range(len(st.out_pads)):
                self.streams[(idx, p)] = st.inputs[0] if st.alias else Stream("stage", idx, p)
        for e in self.edges:
            if isinstance(e.dst, str):
                self.output_streams[e.dst] = self._source_of(e)
                self._output_edges[e.dst] = e

    def _unhostable(self, stream: Stream, consumer: FilterNode) -> None:
        first = self.nodes[stream.plain[0]]
        producer = self.nodes[int(stream.ref)].name
        raise self._error(
            f"FFmpeg filter '{first.name}' sits between '{producer}' and '{consumer.name}', "
            "where no ffmpeg process can run it", first.column,
            self._native_hint(first.name, "plain filters can only follow an input or precede "
                                          "an output; use a dtgan.* stage here"))

    def _all_streams(self) -> Iterator[Stream]:
        for st in self.stages.values():
            yield from st.inputs
        yield from self.output_streams.values()

    # ------------------------------------------------------------------------------- kinds
    def check_kinds(self, input_kinds: Mapping[str, PadKind | None]) -> dict[Stream, PadKind | None]:
        """Propagate pad kinds from the inputs (None = not known yet) and check every link."""
        kinds: dict[Stream, PadKind | None] = {}

        def kind_of(s: Stream) -> PadKind | None:
            if s.origin == "input":
                return input_kinds.get(str(s.ref))
            return kinds[replace(s, plain=())]

        for idx in self.order:
            st = self.stages.get(idx)
            if st is None:
                continue
            got = [kind_of(s) for s in st.inputs]
            for p, (pad, k, s) in enumerate(zip(st.in_pads, got, st.inputs)):
                accepted = st.follows if (p == 0 and st.follows) else (pad.kind,)
                if k is not None and k not in accepted:
                    want = " or ".join(str(a) for a in accepted)
                    raise self._error(
                        f"'{st.node.name}' input '{pad.name}' takes {want} but gets {k} from "
                        f"{self._describe_producer(s)}", st.node.column,
                        "connect a stream of the right kind (see 'dtgan inspect "
                        f"{st.node.name}')")
            for p, pad in enumerate(st.out_pads):
                kinds[Stream("stage", idx, p)] = got[0] if (st.follows or st.alias) else pad.kind
        for name, s in self.output_streams.items():
            k = kind_of(s)
            if k is PadKind.DYNAMICS:
                raise self._error(
                    f"output '{name}' would receive dynamics from {self._describe_producer(s)}; "
                    "only video and images can be encoded", self._output_edges[name].column,
                    "drive a target with dtgan.transfer, or write the dynamics with dtgan.save")
        return kinds

    # ---------------------------------------------------------------------------- describe
    def to_string(self) -> str:
        """The graph in canonical FFmpeg syntax (``parse`` of it gives an equal graph)."""
        return P.to_string(self.spec)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Graph({self.to_string()!r})"

    @property
    def inputs(self) -> list[str]:
        """Input names the graph reads (``"0"``, ``"1"``, ... or the declared names)."""
        return list(self.input_names)

    @property
    def outputs(self) -> list[str]:
        """Output names, in the order positional ``-o`` paths are matched to them."""
        return list(self.output_names)

    def _vf(self, plain: tuple[int, ...]) -> str | None:
        if not plain:
            return None
        return ",".join(P.format_filter(self.nodes[i], labels=False) for i in plain)

    def explain(self) -> list[str]:
        """A human-readable plan: what each decoder, stage and encoder runs."""
        lines: list[str] = []
        seen: set[tuple[str, tuple[int, ...]]] = set()
        for s in self._all_streams():
            if s.origin == "input" and (str(s.ref), s.plain) not in seen:
                seen.add((str(s.ref), s.plain))
                vf = self._vf(s.plain)
                lines.append(f"decode [{s.ref}]" + (f" with ffmpeg -vf {vf}" if vf else ""))
        for idx in self.order:
            st = self.stages.get(idx)
            if st is None or st.alias:
                continue
            opts = ":".join(f"{k}={v}" for k, v in st.opts.items() if v is not None)
            ins = ", ".join(self._stream_name(s) for s in st.inputs)
            lines.append(f"stage {st.node.name}" + (f"={opts}" if opts else "") + f" <- {ins}")
        for name in self.output_names:
            s = self.output_streams[name]
            vf = self._vf(s.plain) if s.origin == "stage" else None
            lines.append(f"encode [{name}] <- {self._stream_name(s)}"
                         + (f" with ffmpeg -vf {vf}" if vf else ""))
        return lines

    def _stream_name(self, s: Stream) -> str:
        if s.origin == "input":
            vf = self._vf(s.plain)
            return f"[{s.ref}]" + (f"({vf})" if vf else "")
        return f"{self.nodes[int(s.ref)].name}#{s.pad}"

    # --------------------------------------------------------------------------------- run
    def _bind(self, given: IOSpec, what: str) -> dict[str, str]:
        """Map run-time ``inputs``/``outputs`` (paths) onto the graph's names."""
        flag = "-i" if what == "input" else "-o"
        names = self.input_names if what == "input" else self.output_names
        declared = (self._declared_inputs if what == "input" else self._declared_outputs)
        if isinstance(given, (str, os.PathLike)):
            given = [given]
        if isinstance(given, Mapping):
            bound = {str(k): os.fspath(v) for k, v in given.items()}
        else:
            paths = [os.fspath(p) for p in given]
            if what == "input" and declared is None:
                keys = [str(i) for i in range(len(paths))]  # -i order gives [0], [1], ...
            else:
                keys = names
                if len(paths) != len(keys):
                    raise UsageError(f"the graph has {len(keys)} {what}(s) "
                                     f"({', '.join(f'[{k}]' for k in keys)}) but "
                                     f"{len(paths)} {flag} path(s) were given")
            bound = dict(zip(keys, paths))
        needed = self.used_inputs if what == "input" else set(names)
        missing = [n for n in names if n in needed and n not in bound]
        missing += sorted(needed - set(bound) - set(missing))
        if missing:
            hint = (f"give at least {int(missing[0]) + 1} {flag} paths"
                    if missing[0].isdigit() else f"add {flag} {missing[0]}=PATH")
            raise UsageError(f"the graph uses {what} [{missing[0]}] but no path was given "
                             "for it", hint=hint)
        extra = [n for n in bound if n not in needed]
        if extra:
            raise UsageError(f"{what} '{extra[0]}' ({bound[extra[0]]}) is not used by the graph",
                             hint=f"refer to it as [{extra[0]}] or drop that {flag}")
        return bound

    def bind(self, inputs: IOSpec, outputs: IOSpec) -> tuple[dict[str, str], dict[str, str]]:
        """Map paths onto the graph's input and output names; check files and their kinds.

        Returns ``({input name: path}, {output name: path})``. Nothing is decoded.
        """
        from ..media.video import check_input_file

        ins = self._bind(inputs, "input")
        outs = self._bind(outputs, "output")
        kinds = {name: input_kind(path) for name, path in ins.items()}
        self.check_kinds(kinds)
        for name, path in ins.items():
            if path != "-":
                check_input_file(path, "image" if kinds[name] is PadKind.IMAGE else "video")
        real_ins = {os.path.realpath(p) for p in ins.values() if p != "-"}
        for name, path in outs.items():
            if path != "-" and os.path.realpath(path) in real_ins:
                raise UsageError(f"output '{name}' ({path}) is also an input",
                                 hint="write to another file")
        return ins, outs

    def _make_instances(self) -> dict[int, Filter]:
        out: dict[int, Filter] = {}
        for idx, st in self.stages.items():
            if st.alias:
                continue
            try:
                out[idx] = st.cls(**st.raw)
            except OptionError as err:
                raise self._error(err.message, st.node.column, err.hint) from None
        return out

    def validate_stages(self) -> None:
        """Construct every stage once (cross-option checks in constructors surface here)."""
        self._instances = self._make_instances()

    def run(self, inputs: IOSpec, outputs: IOSpec, *, device: str = "cpu",
            chunk_size: int = 32, progress: bool = True,
            keep_audio: bool | PathLike = False, codec: str = "auto", crf: int | None = None,
            queue_size: int = DEFAULT_QUEUE, threads: int | str | None = "auto") -> RunStats:
        """Stream the inputs through the graph into the outputs; returns :class:`RunStats`.

        ``inputs``/``outputs`` are paths in order (``[0]``, ``[1]``, ... / the graph's outputs
        in text order) or mappings name → path. Outputs are written under a temporary name and
        renamed when complete; on any error none is left behind. ``keep_audio``: True copies
        the audio of the video input each output's stream comes from (else of the first video
        input); a path copies that file's audio (e.g. the source of saved dynamics).
        ``queue_size`` is the capacity of each link in chunks; ``threads`` the torch intra-op
        threads during the run (``"auto"``: the CPUs the ffmpeg processes leave free; None:
        leave torch's setting).
        """
        return _Run(self, inputs, outputs, device=device, chunk_size=chunk_size,
                    progress=progress, keep_audio=keep_audio, codec=codec, crf=crf,
                    queue_size=queue_size, threads=threads).execute()


# ------------------------------------------------------------------------------------ running

class _Output:
    """One graph output: a VideoWriter, or a still image file for an image stream.

    The writer is created before decoding when the stream's size is known (so a bad codec,
    folder or encoder filter fails early), else at the first chunk. Outputs become visible
    under their final names only in :meth:`close`, after the whole graph has succeeded.
    """

    def __init__(self, run: "_Run", name: str, path: str, stream: Stream) -> None:
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
        self.image: torch.Tensor | None = None
        self.frames = 0
        self._lock = threading.Lock()

    def _open(self, width: int, height: int, fps: float) -> None:
        from ..media.writer import VideoWriter

        writer = VideoWriter(self.path, fps=fps, width=width, height=height,
                             codec=self.run.codec, crf=self.run.crf, audio_from=self.audio,
                             vf=self.vf, audio_offset=float(self.info.meta.get(AUDIO_OFFSET, 0.0)),
                             audio_tempo=float(self.info.meta.get(AUDIO_TEMPO, 1.0)))
        with self._lock:
            self.writer = writer

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
            if self.writer is not None and (self.writer.width, self.writer.height) != (w, h):
                if self.frames:
                    raise MediaError(f"output '{self.name}': frame size changed mid-stream from "
                                     f"{self.writer.width}x{self.writer.height} to {w}x{h}",
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


class _Run:
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
        self.sinks: list[_Output] = []
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
        return self.stream_kinds.get(replace(s, plain=()))

    def _open_sources(self) -> None:
        from ..media.image import read_image
        from ..media.video import FFmpegReader, open_video

        for s in self.g._all_streams():
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
                reader = open_video(path, vf=vf)
                self.readers[self._key(s)] = reader
                self.infos[s] = reader.info.with_(kind=PadKind.VIDEO)

    def _info(self, s: Stream) -> StreamInfo:
        if s.origin == "input":
            return self.infos[s]
        return self.infos[replace(s, plain=())]

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
            with g._lock:  # the parse-time instances serve the first run only
                instances, g._instances = g._instances, None
            self.instances = instances if instances is not None else g._make_instances()
            self._open_sources()
            self._configure()
            for name in g.output_names:
                self.sinks.append(_Output(self, name, self.outputs[name], g.output_streams[name]))
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
