"""Filter graphs: FFmpeg-style text → a validated, typed DAG → a streaming run.

>>> from dtgan_plugin.graph import Graph
>>> g = Graph.parse("[0]dtgan.resize=256:-2,hflip[out]")
>>> g.to_string()
'[0]dtgan.resize=256:-2,hflip[out]'
>>> g.run(["in.mp4"], ["out.mp4"])                            # doctest: +SKIP
RunStats(frames=..., seconds=..., fps=..., outputs={'out': ...})

The data flow, one module per step:

* :mod:`.parser` (with :mod:`.ast`, :mod:`.links`): text → a :class:`GraphSpec` and its links;
* the model: :mod:`.model` (:class:`Graph`) over :mod:`.nodes` (its types), :mod:`.validate`
  (stages, options, wiring, pad kinds), :mod:`.ffmpeg_filters` (plain filters),
  :mod:`.binding` (paths → names) and :mod:`.explain` (the plan in words);
* the runner: :mod:`.runner` (one run), :mod:`.openers` (readers and writers from the plugin
  registry), :mod:`.threads` (torch threads) and :mod:`.executor` (threads and queues).

``dtgan graph`` itself is in :mod:`dtgan_plugin.cli.graph`.
"""

from __future__ import annotations

from typing import Any

# imported on first use: ``dtgan --help`` and the CLI's parser setup need no torch
_LAZY = {
    "Graph": "model", "RunStats": "nodes", "Stream": "nodes",
    "Executor": "executor", "Task": "executor",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
