"""The ``dtgan`` command line: one module per command group, one set of shared options.

``app`` builds the parser and maps errors to exit codes; ``options`` holds the validators and
the flags commands share; ``transfer``, ``demo``, ``graph``, ``batch``, ``train``, ``data``,
``eval`` and ``introspect`` each define one group of sub-commands with a ``register`` function.
The built-in plugin modules' ``dtgan_register_commands`` hooks call those, exactly as a
third-party plugin adds its own commands.
"""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
