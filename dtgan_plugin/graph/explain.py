"""A graph's plan in words (``dtgan graph --explain``): what each decoder, stage and encoder runs."""

from __future__ import annotations

from typing import Any

from . import parser as P
from .ast import FilterNode, GraphSpec
from .nodes import Stream


def plain_chain(spec: GraphSpec, nodes: list[FilterNode], plain: tuple[int, ...]) -> str | None:
    """The ``-vf`` text of the plain filters ``plain`` (None when there are none)."""
    if not plain:
        return None
    return P.plain_chain(spec, [nodes[i] for i in plain])


def stream_name(graph: Any, s: Stream) -> str:
    """``[0](hflip)`` or ``dtgan.flip#0``: a stream as the plan names it."""
    nodes = graph.nodes
    if s.origin == "input":
        vf = graph._vf(s.plain)
        return f"[{s.ref}]" + (f"({vf})" if vf else "")
    return f"{nodes[int(s.ref)].name}#{s.pad}"


def explain(graph: Any) -> list[str]:
    """A human-readable plan: what each decoder, stage and encoder runs."""
    lines: list[str] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for s in graph.all_streams():
        if s.origin == "input" and (str(s.ref), s.plain) not in seen:
            seen.add((str(s.ref), s.plain))
            vf = graph._vf(s.plain)
            lines.append(f"decode [{s.ref}]" + (f" with ffmpeg -vf {vf}" if vf else ""))
    for idx in graph.order:
        st = graph.stages.get(idx)
        if st is None or st.alias:
            continue
        opts = ":".join(f"{k}={v}" for k, v in st.opts.items() if v is not None)
        ins = ", ".join(stream_name(graph, s) for s in st.inputs)
        lines.append(f"stage {st.node.name}" + (f"={opts}" if opts else "") + f" <- {ins}")
    for name in graph.output_names:
        s = graph.output_streams[name]
        vf = graph._vf(s.plain) if s.origin == "stage" else None
        lines.append(f"encode [{name}] <- {stream_name(graph, s)}"
                     + (f" with ffmpeg -vf {vf}" if vf else ""))
    return lines
