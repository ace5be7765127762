"""``dtgan export``: a checkpoint → ONNX graphs + manifest a host in any language can run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

FORMATS = ("onnx",)


def cmd_export(args: argparse.Namespace) -> int:
    """Export the checkpoint's inference pieces and print a summary of the manifest."""
    from ..export import export_onnx
    from ..export.ort_backend import require

    require("onnx")
    manifest = export_onnx(args.checkpoint, args.output, opset=args.opset)
    summary = {"output": args.output, "fingerprint": manifest["fingerprint"],
               "opset": manifest["opset"], "resolution": manifest["resolution"],
               "dyn_dim": manifest["dyn_dim"], "graphs": sorted(manifest["graphs"])}
    print(json.dumps(summary, indent=2))
    print(f"wrote {len(summary['graphs'])} graphs and manifest.json to {args.output}",
          file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``export``."""
    from ..export.onnx_export import MAX_OPSET, MIN_OPSET

    p = subparsers.add_parser(
        "export", help="export a model to ONNX for hosts outside Python",
        description="Export CHECKPOINT's dynamics encoder step (LSTM state as explicit inputs "
                    "and outputs), target encoder and renderer as separate ONNX graphs with a "
                    "manifest.json (names, shapes, normalisation, fingerprint, opset). Needs "
                    "the [onnx] extra.")
    p.add_argument("checkpoint", help="a .safetensors checkpoint or a registered name "
                                      "(e.g. default)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="export format")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder to write (created; an earlier export there is replaced)")
    p.add_argument("--opset", type=int, default=17, choices=range(MIN_OPSET, MAX_OPSET + 1),
                   metavar=f"{{{MIN_OPSET}..{MAX_OPSET}}}", help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)
