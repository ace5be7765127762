"""dtgan-plugin: Dynamics Transfer GAN as composable stages of video pipelines.

Public API (imported lazily so ``import dtgan_plugin`` stays cheap):

* :func:`transfer` — source video + target image → video
* :func:`extract_dynamics` — source video → ``.dyn.safetensors``
* :class:`Transferer` — streaming: ``push(chunk) -> chunk`` and ``flush()``
* :class:`Graph` — ``Graph.parse(text)``, ``graph.to_string()``, ``graph.run(inputs, outputs)``
* :data:`hookimpl` — decorator for plugin hook implementations
"""

from __future__ import annotations

from ._lazy import lazy_exports
from .hooks.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "transfer": ("dtgan_plugin.api", "transfer"),
    "extract_dynamics": ("dtgan_plugin.api", "extract_dynamics"),
    "Transferer": ("dtgan_plugin.api", "Transferer"),
    "Graph": ("dtgan_plugin.graph", "Graph"),
    "Filter": ("dtgan_plugin.filters.base", "Filter"),
    "Option": ("dtgan_plugin.filters.base", "Option"),
    "Pad": ("dtgan_plugin.filters.base", "Pad"),
    "get_registry": ("dtgan_plugin.hooks.manager", "get_registry"),
    "register_plugin": ("dtgan_plugin.hooks.manager", "register_plugin"),
    "run_batch": ("dtgan_plugin.batch", "run_batch"),
    "BatchOptions": ("dtgan_plugin.batch", "BatchOptions"),
    "plan_from_folders": ("dtgan_plugin.batch", "plan_from_folders"),
    "plan_from_manifest": ("dtgan_plugin.batch", "plan_from_manifest"),
}

__all__ = ["hookimpl", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
