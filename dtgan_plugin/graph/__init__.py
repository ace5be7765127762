"""Filter graphs: FFmpeg-style text → a validated, typed DAG → a streaming run.

>>> from dtgan_plugin.graph import Graph
>>> g = Graph.parse("[0]dtgan.resize=256:-2,hflip[out]")      # doctest: +SKIP
>>> g.run(["in.mp4"], ["out.mp4"])                            # doctest: +SKIP
RunStats(frames=..., seconds=..., fps=..., outputs={'out': ...})

The grammar and link rules are in :mod:`.parser`, validation and planning in :mod:`.build`,
the threaded executor in :mod:`.executor`, and ``dtgan graph`` in :mod:`.command`.
"""

from __future__ import annotations

from typing import Any

# imported on first use: ``dtgan --help`` and the CLI's parser setup need no torch
_LAZY = {
    "Graph": "build", "RunStats": "build", "Stream": "build",
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
