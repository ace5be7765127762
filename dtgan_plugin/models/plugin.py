"""Built-in model plugin: registers the named checkpoints ``default`` and ``cartoon64``.

Kept import-light (no torch) because the plugin manager imports it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import CheckpointError
from ..hooks.hookspecs import hookimpl

ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: where the packaged default checkpoint lives once one has been trained and installed
DEFAULT_ASSET = ASSETS / "default.safetensors"
#: the previous default: pixels in, 64 px, procedural cartoon faces (exportable to ONNX)
CARTOON_ASSET = ASSETS / "cartoon64.safetensors"


def resolve_default() -> Path:
    """The packaged default checkpoint, or a CheckpointError saying none is installed."""
    path = DEFAULT_ASSET
    if path.is_file():
        return path
    raise CheckpointError(
        "no default model is installed yet; pass --checkpoint PATH to a .safetensors "
        "checkpoint",
        hint=f"expected it at {path}")


def resolve_cartoon() -> Path:
    """The packaged 64 px pixels model, or a CheckpointError saying it is missing."""
    if CARTOON_ASSET.is_file():
        return CARTOON_ASSET
    raise CheckpointError("the cartoon64 model is missing from the installed package",
                          hint="reinstall dtgan-plugin")


@hookimpl
def dtgan_register_models(register: Callable[..., None]) -> None:
    """Register the built-in named checkpoints."""
    register("default", resolve_default,
             description="real faces: landmark dynamics, geometry-conditioned warp at 128 px "
                         "(needs the faces extra for real footage)")
    register("cartoon64", resolve_cartoon,
             description="the previous default: pixel dynamics, 64 px warp, procedural faces "
                         "(ONNX-exportable)")


@hookimpl
def dtgan_register_commands(subparsers: object) -> None:
    """Add ``transfer``, ``dynamics``, ``demo`` and ``export``: the commands that run a model."""
    from ..cli import demo, export_cmd, transfer

    transfer.register(subparsers)
    demo.register(subparsers)
    export_cmd.register(subparsers)
