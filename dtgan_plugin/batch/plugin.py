"""Built-in batch plugin: the ``local`` and ``ray`` executors and the ``dtgan batch`` command."""

from __future__ import annotations

from typing import Any

from ..hooks.hookspecs import hookimpl


@hookimpl
def dtgan_register_executors(register: Any) -> None:
    """Register ``local`` (processes on this machine) and ``ray`` (Ray actors)."""
    from .local import LocalExecutor
    from .ray_executor import RayExecutor

    register("local", LocalExecutor, description="worker processes on this machine (--jobs N)")
    register("ray", RayExecutor, description="Ray actors, local or on a cluster (--address); "
                                             "needs pip install 'dtgan-plugin[ray]'")


@hookimpl
def dtgan_register_commands(subparsers: Any) -> None:
    """Add ``dtgan batch`` (defined in :mod:`dtgan_plugin.cli.batch`)."""
    from ..cli.batch import register

    register(subparsers)
