"""The graph's former single module, kept importable for code written against it.

The graph now lives in rooms of one job each: :mod:`.model` (:class:`Graph`), :mod:`.nodes`
(its data types), :mod:`.validate`, :mod:`.binding`, :mod:`.explain`, :mod:`.runner`,
:mod:`.openers`, :mod:`.threads` and :mod:`.ffmpeg_filters`. Monkeypatch those, not this.
"""

from __future__ import annotations

from ..system import resolve_device
from .executor import DEFAULT_QUEUE, Executor, Task
from .ffmpeg_filters import NATIVE_EQUIVALENTS, PLAIN_ALIASES, ffmpeg_filter_table
from .model import Graph
from .nodes import (DYNAMICS_SUFFIX, IOSpec, PathLike, RunStats, StageNode, Stream,
                    input_kind)
from .threads import auto_threads, torch_threads

__all__ = ["DEFAULT_QUEUE", "DYNAMICS_SUFFIX", "Executor", "Graph", "IOSpec",
           "NATIVE_EQUIVALENTS", "PLAIN_ALIASES", "PathLike", "RunStats", "StageNode", "Stream",
           "Task", "auto_threads", "ffmpeg_filter_table", "input_kind", "resolve_device",
           "torch_threads"]
