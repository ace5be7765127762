"""Plugin system: hook specs, the plugin manager and the registries built from it."""

from .hookspecs import hookimpl, hookspec
from .manager import Registry, get_plugin_manager, get_registry, reset_plugins

__all__ = ["hookimpl", "hookspec", "Registry", "get_plugin_manager", "get_registry",
           "reset_plugins"]
