"""Binding run-time paths to a graph's input and output names, and checking them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..stream import PadKind
from .nodes import IOSpec, input_kind


def bind_names(graph: Any, given: IOSpec, what: str) -> dict[str, str]:
    """Map run-time ``inputs``/``outputs`` (paths) onto the graph's names."""
    flag = "-i" if what == "input" else "-o"
    names = graph.input_names if what == "input" else graph.output_names
    declared = graph.declared_inputs if what == "input" else graph.declared_outputs
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
    needed = graph.used_inputs if what == "input" else set(names)
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


def check_output_paths(ins: dict[str, str], outs: dict[str, str]) -> None:
    """Refuse two outputs with one path, and an output that is also an input.

    Paths are compared resolved (symlinks, ``..``, relative forms), as ``transfer`` does; the
    one stdout (``-``) may take one output only.
    """
    real_ins = {os.path.realpath(p): n for n, p in ins.items() if p != "-"}
    seen: dict[str, str] = {}
    for name, path in outs.items():
        key = path if path == "-" else os.path.realpath(path)
        if key in seen:
            where = "stdout" if path == "-" else path
            raise UsageError(f"outputs '{seen[key]}' and '{name}' both write to {where}",
                             hint="give each output its own path")
        seen[key] = name
        if path != "-" and key in real_ins:
            raise UsageError(f"output '{name}' ({path}) is also an input",
                             hint="write to another file")


def bind(graph: Any, inputs: IOSpec, outputs: IOSpec) -> tuple[dict[str, str], dict[str, str]]:
    """Map paths onto a graph's input and output names; check files and their kinds."""
    from ..media.video import check_input_file

    ins = bind_names(graph, inputs, "input")
    outs = bind_names(graph, outputs, "output")
    kinds = {name: input_kind(path) for name, path in ins.items()}
    graph.check_kinds(kinds)
    for name, path in ins.items():
        if path != "-":
            check_input_file(path, "image" if kinds[name] is PadKind.IMAGE else "video")
    check_output_paths(ins, outs)
    return ins, outs
