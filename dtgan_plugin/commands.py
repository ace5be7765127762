"""``dtgan transfer``, ``dtgan dynamics`` and ``dtgan demo``: thin wrappers over the API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import UsageError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="default",
                   help="'default' (or a plugin's named model) or a .safetensors path")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--reference-frame", type=int, default=0, metavar="N",
                   help="source frame whose repetition forms the static sequence (default 0)")
    p.add_argument("--fit", default="crop", choices=("crop", "pad", "stretch"),
                   help="how images of another size/aspect are fitted (default crop)")
    p.add_argument("--chunk-size", type=_positive_int, default=32, metavar="N",
                   help="frames per chunk (default 32)")


def cmd_transfer(args: argparse.Namespace) -> int:
    """Make the target image move like the source video (or a dynamics file)."""
    from .api import transfer

    if args.source is None and args.dynamics is None:
        raise UsageError("give a source video with -s/--source or a dynamics file with "
                         "--dynamics")
    if args.source is not None and args.dynamics is not None and not args.keep_audio:
        raise UsageError("-s/--source with --dynamics only makes sense with --keep-audio "
                         "(the dynamics drive the target; the source lends its audio)")
    stats = transfer(args.source, args.target, args.output, checkpoint=args.checkpoint,
                     device=args.device, reference_frame=args.reference_frame,
                     amplify=args.amplify, size=args.size, fit=args.fit,
                     keep_audio=args.keep_audio, dynamics=args.dynamics, codec=args.codec,
                     crf=args.crf, smooth=args.smooth, progress=args.progress,
                     chunk_size=args.chunk_size)
    if args.output != "-":
        print(f"wrote {args.output} ({stats.frames} frames, {stats.fps:.1f} frames/s)",
              file=sys.stderr)
    return 0


def cmd_dynamics(args: argparse.Namespace) -> int:
    """Extract dynamics once, to reuse on many targets."""
    from .api import extract_dynamics

    if not args.output.endswith(".dyn.safetensors"):
        raise UsageError(f"dynamics output '{args.output}' should end in .dyn.safetensors")
    out = extract_dynamics(args.source, args.output, checkpoint=args.checkpoint,
                           device=args.device, reference_frame=args.reference_frame,
                           fit=args.fit, progress=args.progress, chunk_size=args.chunk_size)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the default model on the shipped demo clip and target; write a video and a GIF."""
    from .demo import run_demo

    paths = run_demo(Path(args.output), device=args.device, progress=args.progress)
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def add_model_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add transfer, dynamics and demo to the ``dtgan`` sub-parsers."""
    p = sub.add_parser("transfer", parents=[common],
                       help="make a target image move like a source video",
                       description="Make a target image move like a source video. "
                                   "Use '-' for y4m on stdin/stdout.")
    p.set_defaults(func=cmd_transfer)
    p.add_argument("-s", "--source", help="source video (or '-' for y4m on stdin)")
    p.add_argument("--dynamics", help="a .dyn.safetensors file instead of a source video "
                   "(with -s and --keep-audio, the source only lends its audio)")
    p.add_argument("-t", "--target", required=True, help="target image (PNG, JPEG, WebP, ...)")
    p.add_argument("-o", "--output", required=True, help="output video (or '-' for y4m on stdout)")
    _model_flags(p)
    p.add_argument("--amplify", type=float, default=1.0, metavar="X",
                   help="motion strength (0 still, 1 as source, >1 exaggerated)")
    p.add_argument("--smooth", action="store_true", help="One-Euro smoothing of the dynamics")
    p.add_argument("--size", type=_positive_int, default=None, metavar="PX",
                   help="upscale the output to PX×PX (default: the model's resolution)")
    p.add_argument("--keep-audio", action="store_true", help="copy the source's audio track")
    p.add_argument("--codec", default="auto",
                   help="auto (by extension), h264, h264rgb, ffv1, vp9, gif, png, y4m")
    p.add_argument("--crf", type=int, default=None, help="quality for h264/vp9 (lower is better)")

    p = sub.add_parser("dynamics", parents=[common],
                       help="extract a source's dynamics to a .dyn.safetensors file",
                       description="Extract appearance-suppressed dynamics once and reuse "
                                   "them on many targets with 'dtgan transfer --dynamics'.")
    p.set_defaults(func=cmd_dynamics)
    p.add_argument("-s", "--source", required=True, help="source video")
    p.add_argument("-o", "--output", required=True, help="FILE.dyn.safetensors")
    _model_flags(p)

    p = sub.add_parser("demo", parents=[common],
                       help="run the default model on the built-in demo clip and target",
                       description="Run the default model on a demo source clip and target "
                                   "image shipped in the package; write out.mp4 and a GIF.")
    p.set_defaults(func=cmd_demo)
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
