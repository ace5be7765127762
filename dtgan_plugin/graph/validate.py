"""Validation of a parsed graph: stages and options, wiring through plain filters, pad kinds.

Each step is a function of the graph's parts (or :class:`Wiring`, which follows streams) so
that :class:`~dtgan_plugin.graph.model.Graph` only holds the results. Every step is linear in
the number of filters and links.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import OptionError, PluginError
from ..filters.base import Filter
from ..stream import PadKind
from . import ffmpeg_filters as FF
from . import parser as P
from .ast import FilterNode
from .nodes import StageNode, Stream


def resolve_nodes(nodes: list[FilterNode], registry: Any, error: FF.ErrorFactory
                  ) -> tuple[dict[int, StageNode], dict[int, FilterNode]]:
    """Split the filters into native stages (checked options) and plain FFmpeg filters."""
    stages: dict[int, StageNode] = {}
    plain: dict[int, FilterNode] = {}
    for index, node in enumerate(nodes):
        name = node.name if node.is_native else FF.PLAIN_ALIASES.get(node.name, node.name)
        if "." not in name:
            FF.check_plain(node, registry, error)
            plain[index] = node
        else:
            stages[index] = resolve_stage(index, node, name, registry, error)
    return stages, plain


def resolve_stage(index: int, node: FilterNode, name: str, registry: Any,
                  error: FF.ErrorFactory) -> StageNode:
    """The registered stage ``name`` with its options checked (GraphError at the column)."""
    try:
        entry = registry.get("filters", name)
    except PluginError as err:  # two plugins registered this name: only its users fail
        raise error(err.message, node.column, err.hint) from None
    if entry is None:
        close = difflib.get_close_matches(name, registry.names("filters"), n=1, cutoff=0.6)
        hint = (f"did you mean '{close[0]}'?" if close else
                "run 'dtgan filters' to list the stages")
        raise error(f"unknown stage '{name}'", node.column, hint)
    cls = entry.obj
    positional, named = list(node.positional), dict(node.named)
    try:
        opts = cls.resolve_options(named, positional)
    except OptionError as err:
        raise error(err.message, option_column(cls, node), err.hint) from None
    raw = {o.name: v for o, v in zip(cls.options, positional)}
    raw.update(named)
    out_pads = tuple(cls.output_pads(opts)) if hasattr(cls, "output_pads") else cls.outputs
    return StageNode(index, node, cls, raw, opts, tuple(cls.inputs), out_pads)


def option_column(cls: type[Filter], node: FilterNode) -> int:
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


class Wiring:
    """Streams followed through plain filters and splits; every plain filter placed.

    After construction: ``streams[(filter, pad)]``, ``output_streams[name]`` and
    ``output_edges[name]``; each stage's ``inputs`` are filled in.
    """

    def __init__(self, nodes: list[FilterNode], stages: dict[int, StageNode],
                 plain: dict[int, FilterNode], edges: list[P.Edge], order: list[int],
                 error: FF.ErrorFactory) -> None:
        self.nodes = nodes
        self.stages = stages
        self.error = error
        self.streams: dict[tuple[int, int], Stream] = {}
        self.output_streams: dict[str, Stream] = {}
        self.output_edges: dict[str, P.Edge] = {}
        incoming = {(e.dst, e.dst_pad): e for e in edges if isinstance(e.dst, int)}
        for idx in order:
            if idx in plain:
                src = self._source_of(incoming[(idx, 0)])
                self.streams[(idx, 0)] = Stream(src.origin, src.ref, src.pad, src.plain + (idx,))
                continue
            st = stages[idx]
            st.inputs = [self._source_of(incoming[(idx, p)]) for p in range(len(st.in_pads))]
            for s in st.inputs:
                # a split passes pending plain filters on to its consumers, who decide
                if s.origin == "stage" and s.plain and not st.alias:
                    self._unhostable(s, st.node)
            for p in range(len(st.out_pads)):
                self.streams[(idx, p)] = st.inputs[0] if st.alias else Stream("stage", idx, p)
        for e in edges:
            if isinstance(e.dst, str):
                self.output_streams[e.dst] = self._source_of(e)
                self.output_edges[e.dst] = e

    def _source_of(self, edge: P.Edge) -> Stream:
        if isinstance(edge.src, str):
            root, _, spec = edge.src.partition(":")
            if spec and spec.split(":")[0] != "v":
                raise self.error(f"[{edge.src}] selects a non-video stream; only video "
                                 "streams can enter the graph", edge.column,
                                 f"use [{root}] or [{root}:v]; audio is copied with "
                                 "--keep-audio")
            return Stream("input", root)
        return self.streams[(edge.src, edge.src_pad)]

    def _unhostable(self, stream: Stream, consumer: FilterNode) -> None:
        first = self.nodes[stream.plain[0]]
        producer = self.nodes[int(stream.ref)].name
        raise self.error(
            f"FFmpeg filter '{first.name}' sits between '{producer}' and '{consumer.name}', "
            "where no ffmpeg process can run it", first.column,
            FF.native_hint(first.name, "plain filters can only follow an input or precede "
                                       "an output; use a dtgan.* stage here"))


def all_streams(stages: dict[int, StageNode], output_streams: dict[str, Stream]
                ) -> Iterator[Stream]:
    """Every stream a stage or an output reads."""
    for st in stages.values():
        yield from st.inputs
    yield from output_streams.values()


def describe_producer(nodes: list[FilterNode], stream: Stream) -> str:
    """``input [0]`` or ``'dtgan.flip'``: where a stream comes from, for messages."""
    if stream.origin == "input":
        return f"input [{stream.ref}]"
    return f"'{nodes[int(stream.ref)].name}'"


def check_kinds(graph: Any, input_kinds: Mapping[str, PadKind | None]
                ) -> dict[Stream, PadKind | None]:
    """Propagate pad kinds from the inputs (None = not known yet) and check every link."""
    kinds: dict[Stream, PadKind | None] = {}

    def kind_of(s: Stream) -> PadKind | None:
        if s.origin == "input":
            return input_kinds.get(str(s.ref))
        return kinds[s.bare()]

    for idx in graph.order:
        st = graph.stages.get(idx)
        if st is None:
            continue
        got = [kind_of(s) for s in st.inputs]
        for p, (pad, k, s) in enumerate(zip(st.in_pads, got, st.inputs)):
            accepted = st.follows if (p == 0 and st.follows) else (pad.kind,)
            if k is not None and k not in accepted:
                want = " or ".join(str(a) for a in accepted)
                raise graph._error(
                    f"'{st.node.name}' input '{pad.name}' takes {want} but gets {k} from "
                    f"{describe_producer(graph.nodes, s)}", st.node.column,
                    "connect a stream of the right kind (see 'dtgan inspect "
                    f"{st.node.name}')")
        for p, pad in enumerate(st.out_pads):
            kinds[Stream("stage", idx, p)] = got[0] if (st.follows or st.alias) else pad.kind
    for name, s in graph.output_streams.items():
        if kind_of(s) is PadKind.DYNAMICS:
            raise graph._error(
                f"output '{name}' would receive dynamics from "
                f"{describe_producer(graph.nodes, s)}; only video and images can be encoded",
                graph.output_edges[name].column,
                "drive a target with dtgan.transfer, or write the dynamics with dtgan.save")
    return kinds


def make_instances(stages: dict[int, StageNode], error: FF.ErrorFactory) -> dict[int, Filter]:
    """Construct every non-alias stage (cross-option checks in constructors surface here)."""
    out: dict[int, Filter] = {}
    for idx, st in stages.items():
        if st.alias:
            continue
        try:
            out[idx] = st.cls(**st.raw)
        except OptionError as err:
            raise error(err.message, st.node.column, err.hint) from None
    return out
