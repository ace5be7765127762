"""The graph model: filter-graph text → a validated, typed DAG (see :mod:`dtgan_plugin.graph`).

:class:`Graph` holds what validation found; the checks themselves live in :mod:`.validate`,
path binding in :mod:`.binding`, the plan in words in :mod:`.explain`, and running in
:mod:`.runner`.

* ``Graph.parse(text, inputs=..., outputs=...)`` parses and validates everything that can be
  known before a frame is decoded: stage names (with a did-you-mean), options (types, ranges,
  cross-checks in the stage's constructor), links (dangling or reused labels, cycles, input
  counts), pad kinds, and where plain FFmpeg filters sit.
* ``graph.run(inputs, outputs)`` binds files, checks the kinds the files imply, opens the
  readers (which know sizes before decoding), propagates :class:`StreamInfo` through every
  stage's ``configure``, and streams chunks through the executor.

Plain filters (names without a dot) are FFmpeg's. A run of them right after an input is
folded into the decoding ffmpeg; a run right before an output into the encoding one. Anywhere
else no ffmpeg process exists to host them, and that is a :class:`GraphError` naming the
native stage to use instead.

Three optional class attributes extend the :class:`Filter` contract for stages whose pads
depend on their options or input (``dtgan.split`` uses all three):

* ``output_pads(opts) -> tuple[Pad, ...]`` (classmethod): output pads for these options.
* ``kind_follows_input: tuple[PadKind, ...]``: input 0 accepts these kinds and every output
  carries the kind input 0 received.
* ``alias_outputs = True``: every output *is* the input stream; the builder wires consumers
  straight to the producer (fan-out in the executor shares packets, so nothing is copied).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import GraphError
from ..filters.base import Filter
from ..stream import PadKind
from . import binding, explain as _explain, parser as P, validate as V
from .ast import FilterNode, GraphSpec
from .executor import DEFAULT_QUEUE
from .nodes import IOSpec, PathLike, RunStats, Stream, input_kind, names_and_paths


def _input_order(name: str | int) -> tuple[bool, int, str]:
    text = str(name)
    return (not text.isdigit(), int(text) if text.isdigit() else 0, text)


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
        self.declared_inputs = list(inputs) if inputs is not None else None
        self.declared_outputs = list(outputs) if outputs is not None else None
        self.nodes: list[FilterNode] = spec.filters()
        self.stages, self.plain = V.resolve_nodes(self.nodes, registry, self._error)
        by_node = {id(st.node): st for st in self.stages.values()}

        def pad_counts(node: FilterNode) -> tuple[int, int]:
            st = by_node.get(id(node))  # plain filters: one in, one out
            return (len(st.in_pads), len(st.out_pads)) if st is not None else (1, 1)

        self.edges = P.resolve_links(spec, inputs, outputs, pads=pad_counts)
        self.order = P.topological_order(spec, self.edges)
        wiring = V.Wiring(self.nodes, self.stages, self.plain, self.edges, self.order,
                          self._error)
        self.streams: dict[tuple[int, int], Stream] = wiring.streams
        self.output_streams: dict[str, Stream] = wiring.output_streams
        self.output_edges: dict[str, P.Edge] = wiring.output_edges
        used = sorted({s.ref for s in self.all_streams() if s.origin == "input"},
                      key=_input_order)
        self.used_inputs: set[str] = {str(n) for n in used}
        self.input_names: list[str] = (list(self.declared_inputs)
                                       if self.declared_inputs is not None else
                                       [str(n) for n in used])
        self.output_names: list[str] = (
            list(self.declared_outputs) if self.declared_outputs is not None else
            sorted(self.output_streams, key=lambda n: self.output_edges[n].column))
        self.check_kinds({name: input_kind(path) for name, path in (input_paths or {}).items()})
        self._lock = threading.Lock()
        self._instances: dict[int, Filter] | None = None
        self.validate_stages()

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
        in_names, in_paths = names_and_paths(inputs, "input")
        out_names, _ = names_and_paths(outputs, "output")
        return cls(spec, inputs=in_names, outputs=out_names, registry=registry,
                   input_paths=in_paths)

    def _error(self, message: str, column: int | None, hint: str | None = None) -> GraphError:
        return GraphError(message, text=self.text, column=column, hint=hint)

    def all_streams(self) -> Iterator[Stream]:
        """Every stream a stage or an output reads."""
        return V.all_streams(self.stages, self.output_streams)

    def check_kinds(self, input_kinds: Mapping[str, PadKind | None]) -> dict[Stream, PadKind | None]:
        """Propagate pad kinds from the inputs (None = not known yet) and check every link."""
        return V.check_kinds(self, input_kinds)

    def validate_stages(self) -> None:
        """Construct every stage once (cross-option checks in constructors surface here)."""
        self._instances = V.make_instances(self.stages, self._error)

    def take_instances(self) -> dict[int, Filter]:
        """Stage instances for a run: the parse-time ones for the first run, then new ones."""
        with self._lock:
            instances, self._instances = self._instances, None
        return instances if instances is not None else V.make_instances(self.stages, self._error)

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
        """The ``-vf`` text that runs the plain filters ``plain`` (None for none)."""
        return _explain.plain_chain(self.spec, self.nodes, plain)

    def explain(self) -> list[str]:
        """A human-readable plan: what each decoder, stage and encoder runs."""
        return _explain.explain(self)

    # --------------------------------------------------------------------------------- run
    def bind(self, inputs: IOSpec, outputs: IOSpec) -> tuple[dict[str, str], dict[str, str]]:
        """Map paths onto the graph's input and output names; check files and their kinds.

        Returns ``({input name: path}, {output name: path})``. Nothing is decoded. Two
        outputs with one path, or an output that is an input, are refused.
        """
        return binding.bind(self, inputs, outputs)

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
        from .runner import Run

        return Run(self, inputs, outputs, device=device, chunk_size=chunk_size,
                   progress=progress, keep_audio=keep_audio, codec=codec, crf=crf,
                   queue_size=queue_size, threads=threads).execute()
