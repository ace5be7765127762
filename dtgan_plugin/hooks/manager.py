"""The plugin manager factory, entry-point loading, and the registries plugins fill."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..errors import PluginError
from . import hookspecs

ENTRY_POINT_GROUP = "dtgan"

#: Built-in plugin modules, registered exactly like third-party ones.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "dtgan_plugin.filters.basic",
    "dtgan_plugin.filters.model_stages",
    "dtgan_plugin.media.plugin",
    "dtgan_plugin.models.plugin",
    "dtgan_plugin.training.plugin",
    "dtgan_plugin.batch.plugin",
    "dtgan_plugin.evaluation.plugin",
    "dtgan_plugin.faces.plugin",
)

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None
_registry: "Registry | None" = None
#: (plugin name, error) for plugins that failed to load; reported, never fatal
load_failures: list[tuple[str, str]] = []


def _env_set(name: str) -> set[str] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _report(plugin: str, err: BaseException) -> None:
    msg = f"{type(err).__name__}: {err}".splitlines()[0]
    load_failures.append((plugin, msg))
    print(f"dtgan: warning: plugin '{plugin}' failed to load and was skipped: {msg}",
          file=sys.stderr)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with built-in and entry-point plugins loaded."""
    global _pm
    with _lock:
        if _pm is not None:
            return _pm
        pm = pluggy.PluginManager("dtgan")
        pm.add_hookspecs(hookspecs)
        disabled = _env_set("DTGAN_DISABLE_PLUGINS") or set()
        only = _env_set("DTGAN_LOAD_PLUGINS")
        for modname in DEFAULT_PLUGINS:
            if modname in disabled:
                continue
            try:
                pm.register(importlib.import_module(modname), name=modname)
            except Exception as err:  # a broken built-in must not take the host down either
                _report(modname, err)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (only is not None and ep.name not in only):
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as err:
                _report(ep.name, err)
        _pm = pm
        return pm


def _is_filter_class(obj: Any) -> bool:
    """True for a subclass of :class:`dtgan_plugin.filters.base.Filter`.

    Checked by name along the MRO rather than with ``issubclass``, so that the plugin core
    does not import the filters package (which reaches the models, which consult this
    registry: an import loop).
    """
    return isinstance(obj, type) and any(
        c.__name__ == "Filter" and c.__module__ == "dtgan_plugin.filters.base"
        for c in obj.__mro__)


@dataclass(frozen=True)
class Conflict:
    """One name registered by several plugins; using it is an error, the rest keeps working."""

    kind: str
    name: str
    plugins: tuple[str, ...]

    def error(self) -> PluginError:
        """The error raised when something uses the name."""
        names = " and ".join(f"'{p}'" for p in self.plugins)
        return PluginError(f"{self.kind[:-1]} '{self.name}' is registered by both {names}",
                           hint="disable one with DTGAN_DISABLE_PLUGINS")


@dataclass
class Entry:
    """One registered item and the plugin that registered it."""

    name: str
    obj: Any
    plugin: str
    extra: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Filters, readers, writers, models and executors gathered from every plugin."""

    KINDS = ("filters", "readers", "writers", "models", "executors")

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._items: dict[str, dict[str, Entry]] = {k: {} for k in self.KINDS}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self._collect_filters()
        for kind in ("readers", "writers", "models", "executors"):
            self._collect(kind)

    def _add(self, kind: str, name: str, obj: Any, plugin: str, **extra: Any) -> None:
        table = self._items[kind]
        if name in table:
            # recorded, not raised: only what uses this name fails (see :meth:`get`)
            plugins = self._conflicts.setdefault((kind, name), [table[name].plugin])
            if plugin not in plugins:
                plugins.append(plugin)
            return
        table[name] = Entry(name, obj, plugin, extra)

    @property
    def conflicts(self) -> list[Conflict]:
        """Names registered by more than one plugin, sorted by kind and name."""
        return [Conflict(kind, name, tuple(plugins))
                for (kind, name), plugins in sorted(self._conflicts.items())]

    def _check_conflict(self, kind: str, name: str) -> None:
        plugins = self._conflicts.get((kind, name))
        if plugins:
            raise Conflict(kind, name, tuple(plugins)).error()

    def _impls(self, hook_name: str) -> list[Any]:
        # call each implementation separately so every registration knows its plugin
        return getattr(self.pm.hook, hook_name).get_hookimpls()

    def _collect_filters(self) -> None:
        for impl in self._impls("dtgan_register_filters"):
            def register(cls: type, _plugin: str = impl.plugin_name) -> None:
                if not _is_filter_class(cls):
                    raise PluginError(f"plugin '{_plugin}' registered {cls!r}, not a Filter class")
                if "." not in cls.name:
                    raise PluginError(
                        f"plugin '{_plugin}' registered stage '{cls.name}' without a namespace",
                        hint="stage names look like 'myplugin.name'",
                    )
                cls.plugin = _plugin
                self._add("filters", cls.name, cls, _plugin)

            self._call(impl, register=register)

    def _collect(self, kind: str) -> None:
        for impl in self._impls(f"dtgan_register_{kind}"):
            def register(name: str, obj: Any, _plugin: str = impl.plugin_name,
                         **extra: Any) -> None:
                self._add(kind, name, obj, _plugin, **extra)

            self._call(impl, register=register)

    @staticmethod
    def _call(impl: Any, **kwargs: Any) -> None:
        try:
            impl.function(**kwargs)
        except PluginError:
            raise
        except Exception as err:
            _report(impl.plugin_name, err)

    def names(self, kind: str) -> list[str]:
        """Sorted names registered under ``kind`` (names in conflict included)."""
        return sorted(self._items[kind])

    def entries(self, kind: str) -> list[Entry]:
        """Entries registered under ``kind``, sorted by name (first registration of a conflict)."""
        return [self._items[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Entry | None:
        """The entry called ``name``, or None; PluginError if two plugins registered it."""
        self._check_conflict(kind, name)
        return self._items[kind].get(name)

    def filter(self, name: str) -> type:
        """The stage class called ``name`` (KeyError if unknown, PluginError if in conflict)."""
        self._check_conflict("filters", name)
        return self._items["filters"][name].obj

    def by_extension(self, kind: str, path: str) -> list[Entry]:
        """Readers or writers for ``path``, best first.

        An entry matches through its ``extensions`` (``"-"``: stdin/stdout, ``"*"``: any
        file). Higher ``priority`` wins; at equal priority an exact extension beats ``"*"``,
        then the earlier registration. Names in conflict are left out.
        """
        lower = path.lower()
        ext = os.path.splitext(lower)[1]
        ranked: list[tuple[int, int, int, Entry]] = []
        for order, entry in enumerate(self._items[kind].values()):
            if (kind, entry.name) in self._conflicts:
                continue
            exts = {str(e).lower() for e in entry.extra.get("extensions", ())}
            if path == "-":
                exact = "-" in exts
                wild = False
            else:
                exact = bool(ext) and ext in exts
                wild = "*" in exts
            if exact or wild:
                ranked.append((-int(entry.extra.get("priority", 0)), 0 if exact else 1, order,
                               entry))
        return [r[-1] for r in sorted(ranked, key=lambda r: r[:3])]


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _registry
    pm = get_plugin_manager()
    with _lock:
        if _registry is None:
            _registry = Registry(pm)
        return _registry


def reset_plugins() -> None:
    """Forget the plugin manager and registry (tests, or after changing the environment)."""
    global _pm, _registry
    with _lock:
        _pm = None
        _registry = None
        load_failures.clear()


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin object (a host application's own stages)."""
    global _registry
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    with _lock:
        _registry = None

