"""Link resolution for a parsed filtergraph: which pad feeds which, as FFmpeg links them.

``pads(node) -> (n_in, n_out)`` gives each filter's pad counts.

1. A filter's input labels occupy its input pads ``0..k-1`` in order; its output labels its
   output pads ``0..m-1``. More labels than pads is an error.
2. In a chain, filter *i*'s unlabelled output pads feed filter *i+1*'s unlabelled input pads,
   in order (FFmpeg's rule). More unlabelled outputs than free inputs is an error; free
   inputs left over stay open.
3. Labels are matched in order, as FFmpeg's ``avfilter_graph_segment_link`` does: filters
   are visited in graph order; each not yet linked input label takes the first not yet
   linked output label of the same name at this filter or after it, then each not yet
   linked output label takes the first not yet linked input label of that name at this
   filter or after it. So a name can be reused once its link is made
   (``[0]split[a][b];[a]hflip[a];[a][b]hstack``), and a produced link feeds one input (use a
   splitting filter to fan out). An input reference may be read any number of times.
4. An input label that no output matches must be an input reference: a name in ``inputs``,
   or ``name:spec`` whose ``name`` is in ``inputs`` (``[0:v]``). With ``inputs=None`` every
   ``N`` or ``N:spec`` (``N`` a decimal index) is an input reference. The edge's source is
   the whole label (``"0:v"``) so the reader can honour the stream specifier. Stricter than
   FFmpeg: a filter output may not carry an input reference's name.
5. Open (unlabelled, unconnected) input pads, in graph order, read the inputs that no label
   names, in order (FFmpeg: "the first unused input"); ``auto_inputs=False`` makes them an
   error. With ``inputs=None`` those are ``"0"``, ``"1"``, ... .
6. An output label nobody consumes must be in ``outputs`` (with ``outputs=None`` it *is* an
   output, named by its label); two of them may not share a name. Open output pads, in
   graph order, go to the outputs that no label names, in order; with ``outputs=None`` that
   is the single output :data:`DEFAULT_OUTPUT`. An explicitly declared output that receives
   nothing is an error.
7. The filters and links must form a DAG.

:func:`check_links` without ``pads`` applies rules 3, 4, 6 (labelled part) and 7 to labelled
links only, since which pads stay unlabelled depends on the registry. Every error is a
:class:`GraphError` with the graph text and a 0-based column.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from ..errors import GraphError
from .ast import FilterNode, GraphSpec, Label

__all__ = [
    "DEFAULT_OUTPUT",
    "Edge",
    "PadCounts",
    "check_links",
    "guess_pads",
    "is_input_reference",
    "resolve_links",
    "topological_order",
]

#: name of the output that open output pads go to when the caller names no outputs
DEFAULT_OUTPUT = "out"

_INDEX_REF = re.compile(r"[0-9]+(?::.*)?\Z", re.S)

#: ``pads(node) -> (n_in, n_out)``, normally answered by the stage registry
PadCounts = Callable[[FilterNode], tuple[int, int]]

@dataclass(frozen=True)
class Edge:
    """One link: (filter index or input name, out pad) → (filter index or output name, in pad).

    Filter indices count :meth:`GraphSpec.filters` in source order. An input end is the
    whole input label (``"0:v"``) with pad 0; an output end is the output name with pad 0.
    ``label`` is the link's name in the text (None when the link is implicit) and
    ``column`` where the text makes the link, for error carets.
    """

    src: int | str
    src_pad: int
    dst: int | str
    dst_pad: int
    label: str | None = None
    column: int = 0

    @property
    def from_input(self) -> bool:
        """True when the producer is a graph input rather than a filter."""
        return isinstance(self.src, str)

    @property
    def to_output(self) -> bool:
        """True when the consumer is a graph output rather than a filter."""
        return isinstance(self.dst, str)


def guess_pads(node: FilterNode) -> tuple[int, int]:
    """Pad counts when nothing better is known: one in, one out, or as many as labels say."""
    return max(1, len(node.in_labels)), max(1, len(node.out_labels))


def is_input_reference(label: str, inputs: Collection[str] | None = None) -> bool:
    """True when ``label`` names a graph input: ``name`` or ``name:spec`` (rule 4)."""
    if inputs is None:
        return bool(_INDEX_REF.match(label))
    return label in inputs or (":" in label and label.split(":", 1)[0] in inputs)


def _input_root(label: str) -> str:
    return label.split(":", 1)[0]


_Pad = tuple[int, int, Label]  # filter index, pad index, the label on it


@dataclass
class _Links:
    """What the labels connect: edges, every output label's name, the graph outputs."""

    edges: list[Edge] = field(default_factory=list)
    produced: set[str] = field(default_factory=set)
    graph_outputs: dict[str, _Pad] = field(default_factory=dict)


def _queues(nodes: list[FilterNode], outputs: bool) -> dict[str, deque[_Pad]]:
    """Labelled pads by name, in graph order (the order FFmpeg searches them)."""
    queues: dict[str, deque[_Pad]] = {}
    for idx, node in enumerate(nodes):
        for pad, label in enumerate(node.out_labels if outputs else node.in_labels):
            queues.setdefault(label.name, deque()).append((idx, pad, label))
    return queues


def _input_edge(label: Label, idx: int, pad: int, inputs: Collection[str] | None,
                produced: set[str], text: str) -> Edge:
    """Rule 4: an input label that no output label matches."""
    name = label.name
    if is_input_reference(name, inputs):
        return Edge(name, 0, idx, pad, name, label.column)
    if name in produced:
        raise GraphError(f"label [{name}] is used as an input twice", text=text,
                         column=label.column,
                         hint="a link feeds one input: add a split filter to fan it out")
    if inputs is None:
        known = "an input index such as [0] or [0:v]"
    else:
        known = ("an input: " + ", ".join(f"[{n}]" for n in inputs)) if inputs \
            else "an input (none are given)"
    raise GraphError(f"label [{name}] is used but nothing produces it", text=text,
                     column=label.column,
                     hint=f"produce it with a filter output [{name}] or use {known}")


def _match_labels(nodes: list[FilterNode], inputs: Collection[str] | None, links: _Links,
                  text: str) -> list[_Pad]:
    """Rule 3, FFmpeg's visiting order; returns the output labels nobody consumes."""
    outs, ins = _queues(nodes, True), _queues(nodes, False)
    # every pad of a name before the filter being visited is linked already, so the head
    # of a queue is the first not yet linked pad "at this filter or after it"
    linked_ins: set[tuple[int, int]] = set()
    unconsumed: list[_Pad] = []
    for idx, node in enumerate(nodes):
        for pad, label in enumerate(node.in_labels):
            if (idx, pad) in linked_ins:
                continue
            ins[label.name].popleft()  # this very pad
            producers = outs.get(label.name)
            if producers:
                src, src_pad, _ = producers.popleft()
                links.edges.append(Edge(src, src_pad, idx, pad, label.name, label.column))
            else:
                links.edges.append(_input_edge(label, idx, pad, inputs, links.produced, text))
        for pad, label in enumerate(node.out_labels):
            queue = outs[label.name]
            if not queue or queue[0][:2] != (idx, pad):
                continue  # an input label at this filter or before took it
            queue.popleft()
            consumers = ins.get(label.name)
            if consumers:
                dst, dst_pad, consumer = consumers.popleft()
                linked_ins.add((dst, dst_pad))
                links.edges.append(Edge(idx, pad, dst, dst_pad, label.name, consumer.column))
            else:
                unconsumed.append((idx, pad, label))
    return unconsumed


def _label_links(spec: GraphSpec, inputs: Collection[str] | None,
                 outputs: Collection[str] | None) -> _Links:
    """Rules 3, 4 and 6 for labelled pads: what every label connects to."""
    text = spec.text
    nodes = spec.filters()
    links = _Links()
    for node in nodes:
        for label in node.out_labels:
            if is_input_reference(label.name, inputs):
                raise GraphError(f"label [{label.name}] names an input and cannot be a filter output",
                                 text=text, column=label.column, hint="rename the output label")
            links.produced.add(label.name)
    for idx, pad, label in _match_labels(nodes, inputs, links, text):
        name = label.name
        if outputs is not None and name not in outputs:
            raise GraphError(f"label [{name}] is produced but never used", text=text,
                             column=label.column,
                             hint="feed it to a filter or declare it as an output")
        if name in links.graph_outputs:
            first = nodes[links.graph_outputs[name][0]].name
            raise GraphError(f"label [{name}] is defined twice (first by '{first}')", text=text,
                             column=label.column,
                             hint="two outputs nobody consumes need two names: rename one")
        links.graph_outputs[name] = (idx, pad, label)
        links.edges.append(Edge(idx, pad, name, 0, name, label.column))
    if outputs is not None:
        for node in nodes:
            for label in node.out_labels:
                if label.name in outputs and label.name not in links.graph_outputs:
                    raise GraphError(f"label [{label.name}] names an output but is also a "
                                     "filter input", text=text, column=label.column,
                                     hint="send it to both with a split filter and two labels")
    return links


def _find_cycle(n: int, edges: list[Edge]) -> Edge | None:
    """An edge that closes a cycle among filters, or None for a DAG."""
    succ: list[list[Edge]] = [[] for _ in range(n)]
    for e in edges:
        if isinstance(e.src, int) and isinstance(e.dst, int):
            succ[e.src].append(e)
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    for root in range(n):
        if state[root]:
            continue
        # iterative DFS: a long chain must not hit Python's recursion limit
        stack: list[tuple[int, Iterator[Edge]]] = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            dst = nxt.dst
            assert isinstance(dst, int)
            if state[dst] == 1:
                return nxt
            if state[dst] == 0:
                state[dst] = 1
                stack.append((dst, iter(succ[dst])))
    return None


def _raise_cycle(spec: GraphSpec, edges: list[Edge]) -> None:
    nodes = spec.filters()
    back = _find_cycle(len(nodes), edges)
    if back is None:
        return
    link = f"[{back.label}]" if back.label else "a chain link"
    assert isinstance(back.src, int) and isinstance(back.dst, int)
    raise GraphError(f"cycle in the graph: {link} feeds '{nodes[back.dst].name}' from "
                     f"'{nodes[back.src].name}', which depends on it", text=spec.text,
                     column=back.column, hint="a filter cannot consume its own output; break the loop")


def check_links(spec: GraphSpec, inputs: Collection[str] | None = None,
                outputs: Collection[str] | None = None, *, pads: PadCounts | None = None) -> None:
    """Structural checks that need no registry: label reuse, undefined/dangling labels, cycles.

    Without ``pads`` only labelled links are checked (pad counts decide the implicit ones);
    with ``pads`` this is :func:`resolve_links` without the result.
    """
    if pads is not None:
        resolve_links(spec, inputs, outputs, pads=pads)
        return
    links = _label_links(spec, inputs, outputs)
    _raise_cycle(spec, links.edges)


def _pad_counts(spec: GraphSpec, pads: PadCounts) -> list[tuple[int, int]]:
    """Rule 1: each filter's pad counts, checked against its labels."""
    text = spec.text
    counts: list[tuple[int, int]] = []
    for node in spec.filters():
        n_in, n_out = pads(node)
        if n_in < 0 or n_out < 0:
            raise ValueError(f"pads({node.name!r}) returned negative counts {(n_in, n_out)}")
        if len(node.in_labels) > n_in:
            extra = node.in_labels[n_in]
            raise GraphError(f"too many input labels for '{node.name}': it has {n_in} input pad(s)",
                             text=text, column=extra.column, hint=f"remove [{extra.name}]")
        if len(node.out_labels) > n_out:
            extra = node.out_labels[n_out]
            raise GraphError(f"too many output labels for '{node.name}': it has {n_out} output pad(s)",
                             text=text, column=extra.column, hint=f"remove [{extra.name}]")
        counts.append((n_in, n_out))
    return counts


def _chain_links(spec: GraphSpec, counts: list[tuple[int, int]], edges: list[Edge]
                 ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Rule 2: implicit links inside each chain (added to ``edges``); the open in/out pads."""
    text = spec.text
    nodes = spec.filters()
    open_ins: list[tuple[int, int]] = []
    open_outs: list[tuple[int, int]] = []
    idx = 0
    for chain in spec.chains:
        pending: list[tuple[int, int]] = []  # the previous filter's unlabelled outputs
        for node in chain:
            n_in, n_out = counts[idx]
            free = list(range(len(node.in_labels), n_in))
            if len(pending) > len(free):
                prev = nodes[idx - 1].name
                raise GraphError(f"'{prev}' has {len(pending)} unlabelled output(s) but "
                                 f"'{node.name}' after it takes only {len(free)}", text=text,
                                 column=node.column,
                                 hint=f"label the extra outputs of '{prev}' and use them elsewhere")
            for (src, src_pad), dst_pad in zip(pending, free):
                edges.append(Edge(src, src_pad, idx, dst_pad, None, node.column))
            open_ins.extend((idx, pad) for pad in free[len(pending):])
            pending = [(idx, pad) for pad in range(len(node.out_labels), n_out)]
            idx += 1
        open_outs.extend(pending)
    return open_ins, open_outs


def resolve_links(spec: GraphSpec, inputs: Collection[str] | None = None,
                  outputs: Collection[str] | None = None, *, pads: PadCounts = guess_pads,
                  auto_inputs: bool = True) -> list[Edge]:
    """Every link of the graph as an :class:`Edge` (rules in the module docstring)."""
    text = spec.text
    nodes = spec.filters()
    counts = _pad_counts(spec, pads)
    links = _label_links(spec, inputs, outputs)
    edges = list(links.edges)
    open_ins, open_outs = _chain_links(spec, counts, edges)

    # rule 5: open inputs read the inputs no label names
    if open_ins:
        named = {_input_root(e.src) for e in edges if isinstance(e.src, str)}
        if inputs is None:
            free_inputs: Iterator[str] = (str(i) for i in itertools.count() if str(i) not in named)
        else:
            free_inputs = iter([name for name in inputs if name not in named])
        for dst, pad in open_ins:
            node = nodes[dst]
            name = next(free_inputs, None) if auto_inputs else None
            if name is None:
                why = "every input is already used" if auto_inputs else "unlabelled inputs are off"
                raise GraphError(f"input pad {pad} of '{node.name}' is not connected ({why})",
                                 text=text, column=node.column,
                                 hint="give it an input label such as [0] or a label another filter produces")
            edges.append(Edge(name, 0, dst, pad, None, node.column))

    # rule 6: open outputs go to the outputs no label names
    if outputs is None:
        candidates = [] if DEFAULT_OUTPUT in links.produced else [DEFAULT_OUTPUT]
    else:
        candidates = [name for name in outputs if name not in links.produced]
    free_outputs = iter(candidates)
    fed = set(links.graph_outputs)
    for src, pad in open_outs:
        node = nodes[src]
        name = next(free_outputs, None)
        if name is None:
            raise GraphError(f"output pad {pad} of '{node.name}' is not connected", text=text,
                             column=node.column,
                             hint="label it and use the label as an input, or declare it as an output")
        fed.add(name)
        edges.append(Edge(src, pad, name, 0, None, node.column))
    if outputs is not None:
        for name in outputs:
            if name not in fed:
                raise GraphError(f"output '{name}' receives nothing from the graph", text=text,
                                 column=len(text),
                                 hint=f"end a chain with [{name}] or leave its last output unlabelled")

    _raise_cycle(spec, edges)
    return edges


def topological_order(spec: GraphSpec, edges: list[Edge]) -> list[int]:
    """Filter indices so that every producer comes before its consumers (source order on ties)."""
    n = len(spec.filters())
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        if isinstance(e.src, int) and isinstance(e.dst, int):
            succ[e.src].append(e.dst)
            indeg[e.dst] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != n:
        _raise_cycle(spec, edges)
    return order
