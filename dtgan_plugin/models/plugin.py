"""Built-in model plugin: registers the named checkpoint ``default``.

Kept import-light (no torch) because the plugin manager imports it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import CheckpointError
from ..hooks.hookspecs import hookimpl

#: where the packaged default checkpoint lives once one has been trained and installed
DEFAULT_ASSET = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"


def resolve_default() -> Path:
    """The packaged default checkpoint, or a CheckpointError saying none is installed."""
    path = DEFAULT_ASSET
    if path.is_file():
        return path
    raise CheckpointError(
        "no default model is installed yet; pass --checkpoint PATH to a .safetensors "
        "checkpoint",
        hint=f"expected it at {path}")


@hookimpl
def dtgan_register_models(register: Callable[..., None]) -> None:
    """Register the built-in named checkpoints."""
    register("default", resolve_default,
             description="the packaged 64x64 warp model trained on procedural faces")


@hookimpl
def dtgan_register_commands(subparsers: object) -> None:
    """Add ``transfer``, ``dynamics``, ``demo`` and ``export``: the commands that run a model."""
    from ..cli import demo, export_cmd, transfer

    transfer.register(subparsers)
    demo.register(subparsers)
    export_cmd.register(subparsers)
