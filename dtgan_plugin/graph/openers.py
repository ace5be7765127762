"""Readers and writers for a graph's files, chosen from the plugin registry.

The ``dtgan_register_readers``/``dtgan_register_writers`` hooks register openers with
``extensions`` and a ``priority`` (see :mod:`dtgan_plugin.hooks.hookspecs`); the best match
for a path (:meth:`~dtgan_plugin.hooks.manager.Registry.by_extension`) opens it, so a third
party's reader or writer for a new format works in every graph.
"""

from __future__ import annotations

from typing import Any

from ..errors import MediaError

#: the writer used when none registers the path's extension: it reports what is wrong
FALLBACK_WRITER = "ffmpeg"


def _with_media(registry: Any, kind: str) -> Any:
    """``registry``, or the process-wide one when it registers no ``kind`` at all.

    A host may build a registry for its own stages only; its graphs still read and write
    files with the built-in (and installed plugins') media.
    """
    if registry.names(kind):
        return registry
    from ..hooks.manager import get_registry

    return get_registry()


def open_reader(registry: Any, path: str, **options: Any) -> Any:
    """Open ``path`` with the best registered reader (``info``, ``chunks(n)``, ``close()``)."""
    registry = _with_media(registry, "readers")
    entries = registry.by_extension("readers", path)
    if not entries:
        raise MediaError(f"no reader is registered for {path!r}",
                         hint="'dtgan plugins' lists the readers and their extensions")
    return entries[0].obj(path, **options)


def open_writer(registry: Any, path: str, *, fps: float, width: int, height: int,
                **options: Any) -> Any:
    """Open ``path`` with the best registered writer (``width``, ``height``, ``write(frames)``,
    ``close()``, ``abort()``)."""
    registry = _with_media(registry, "writers")
    entries = registry.by_extension("writers", path)
    if not entries:
        fallback = registry.get("writers", FALLBACK_WRITER)
        if fallback is None:
            raise MediaError(f"no writer is registered for {path!r}",
                             hint="'dtgan plugins' lists the writers and their extensions")
        entries = [fallback]
    return entries[0].obj(path, fps=fps, width=width, height=height, **options)
