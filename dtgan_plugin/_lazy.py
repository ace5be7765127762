"""One lazy-export helper (PEP 562) for the package ``__init__`` modules.

Packages name their public objects in a table and import them on first use, so ``import
dtgan_plugin`` (and the CLI's start-up) does not pull in torch, decord or ffmpeg-python::

    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"open_video": ".video", ...})

A table value is the module (relative to the package, or absolute), or ``(module, attribute)``
when the exported name differs from the attribute's. A resolved name is stored in the package's
namespace, so later look-ups skip ``__getattr__``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, table: Mapping[str, str | tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``table``'s names lazily."""

    def __getattr__(name: str) -> Any:
        entry = table.get(name)
        if entry is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = (entry, name) if isinstance(entry, str) else entry
        value = getattr(importlib.import_module(module, package), attr)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
