"""Registers ``dtgan train``, ``average`` and ``data`` through the same hook a plugin would use.

The commands themselves live in :mod:`dtgan_plugin.cli.train` and :mod:`dtgan_plugin.cli.data`.
"""

from __future__ import annotations

from typing import Any

from ..hooks.hookspecs import hookimpl


@hookimpl
def dtgan_register_commands(subparsers: Any) -> None:
    """Add ``train``, ``average`` and ``data``."""
    from ..cli import data, train

    train.register(subparsers)
    data.register(subparsers)
