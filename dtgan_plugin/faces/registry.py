"""The landmarker registry: what plugins register through ``dtgan_register_landmarkers``.

Collected afresh on every look-up (a handful of hook calls), so an in-process plugin a host
app registers later is seen at once, with no cache to invalidate.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import OptionError, PluginError
from .types import Landmarker


@dataclass(frozen=True)
class LandmarkerEntry:
    """One registered landmarker: its factory and who registered it."""

    name: str
    factory: Callable[..., Landmarker]
    description: str
    priority: int
    plugin: str


def _collect() -> tuple[dict[str, LandmarkerEntry], dict[str, tuple[str, ...]]]:
    """Entries by name, and the names registered by several plugins at the same priority."""
    from ..hooks import manager

    table: dict[str, LandmarkerEntry] = {}
    clashes: dict[str, tuple[str, ...]] = {}
    hook = getattr(manager.get_plugin_manager().hook, "dtgan_register_landmarkers", None)
    for impl in hook.get_hookimpls() if hook is not None else ():
        def register(name: str, factory: Callable[..., Landmarker], description: str = "",
                     priority: int = 0, _plugin: str = impl.plugin_name) -> None:
            if not callable(factory):
                raise PluginError(f"plugin '{_plugin}' registered landmarker '{name}' with "
                                  f"a factory that is not callable: {factory!r}")
            entry = LandmarkerEntry(str(name), factory, description, int(priority), _plugin)
            old = table.get(entry.name)
            if old is not None and old.priority == entry.priority:
                clashes[entry.name] = (*clashes.get(entry.name, (old.plugin,)), _plugin)
            elif old is None or entry.priority > old.priority:
                table[entry.name] = entry
                clashes.pop(entry.name, None)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as err:  # a broken plugin is reported and skipped, never fatal
            manager._report(impl.plugin_name, err)
    return table, clashes


def landmarker_entries() -> dict[str, LandmarkerEntry]:
    """Every registered landmarker by name (the highest priority wins a shared name)."""
    return _collect()[0]


def landmarker_names() -> list[str]:
    """Sorted names of the registered landmarkers."""
    return sorted(landmarker_entries())


def get_landmarker(name: str, **options: Any) -> Landmarker:
    """Build the landmarker called ``name`` with ``options`` (OptionError with a did-you-mean)."""
    table, clashes = _collect()
    if name in clashes:
        both = " and ".join(f"'{p}'" for p in clashes[name])
        raise PluginError(f"landmarker '{name}' is registered by both {both}",
                          hint="give one a higher priority, or disable one with "
                               "DTGAN_DISABLE_PLUGINS")
    entry = table.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean '{close[0]}'?" if close else (
            f"known landmarkers: {', '.join(sorted(table)) or 'none'}")
        raise OptionError(f"unknown landmarker '{name}'", hint=hint)
    try:
        return entry.factory(**options)
    except TypeError as err:
        # a wrong option name reaches the factory's signature: say so in one line (any other
        # TypeError is a bug in the landmarker and keeps its traceback)
        if "argument" not in str(err):
            raise
        raise OptionError(f"landmarker '{name}': {str(err).splitlines()[0]}") from None
