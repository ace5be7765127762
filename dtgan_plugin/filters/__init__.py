"""Stages: the :class:`Filter` base, its option schema, and the built-in stages.

Built-in stages live in plugin modules (:mod:`.basic` for the geometry and timing stages) that
register through ``dtgan_register_filters`` exactly as a third-party plugin would, so importing
this package registers nothing by itself.
"""

from .base import REQUIRED, Filter, Option, Pad, RunContext

__all__ = ["Filter", "Option", "Pad", "RunContext", "REQUIRED"]
