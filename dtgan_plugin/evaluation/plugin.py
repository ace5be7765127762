"""Registers ``dtgan eval`` through the same hook a third-party plugin would use.

The command itself is :mod:`dtgan_plugin.cli.evaluate`.
"""

from __future__ import annotations

from typing import Any

from ..hooks.hookspecs import hookimpl


@hookimpl
def dtgan_register_commands(subparsers: Any) -> None:
    """Add ``eval``."""
    from ..cli.evaluate import register

    register(subparsers)
