"""``dtgan data synth``: render the procedural faces to a dataset folder."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import options


def _cmd_data(args: argparse.Namespace) -> int:
    args._data_parser.print_help(sys.stderr)
    return 2


def cmd_synth(args: argparse.Namespace) -> int:
    """``dtgan data synth``: write a procedural dataset folder."""
    from ..training.datagen import write_dataset

    progress = getattr(args, "progress", True) and not getattr(args, "no_progress", False)
    summary = write_dataset(args.output, identities=args.identities, clips=args.clips,
                            size=args.size, frames=args.frames, seed=args.seed, fps=args.fps,
                            progress=progress, jobs=args.jobs)
    if getattr(args, "json", False):
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sp = summary["splits"]
        print(f"wrote {summary['written']} clip(s), kept {summary['skipped']} already there "
              f"({summary['clips']} in all; identities: {sp['train']} train, {sp['val']} val, "
              f"{sp['test']} test) to {summary['out_dir']} in {summary['seconds']:.1f} s")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data`` (with ``synth``) to an argparse sub-parsers action."""
    data = subparsers.add_parser("data", help="make training data",
                                 description="Make training data.")
    data.set_defaults(func=_cmd_data, _data_parser=data)
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND",
                              parser_class=type(data))
    synth = sub.add_parser(
        "synth", help="render procedural faces to a dataset folder",
        description="Render procedural cartoon faces (identities x expression clips) as "
                    "lossless .mkv videos with per-clip JSON, neutral target PNGs, index.json "
                    "and manifest.jsonl, split 80/10/10 by identity. Rerun to resume.")
    synth.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    # the parser checks only the type; write_dataset checks each range and names the option
    synth.add_argument("--identities", type=options.whole_number, default=100, metavar="N",
                       help="number of identities (default 100)")
    synth.add_argument("--clips", type=options.whole_number, default=6, metavar="K",
                       help="clips per identity (default 6)")
    synth.add_argument("--size", type=options.whole_number, default=64, metavar="S",
                       help="frame width and height in pixels (default 64)")
    synth.add_argument("--frames", type=options.whole_number, default=16, metavar="T",
                       help="frames per clip (default 16)")
    synth.add_argument("--seed", type=options.whole_number, default=0,
                       help="world seed (default 0)")
    synth.add_argument("--fps", type=options.finite_float, default=25.0,
                       help="frame rate (default 25)")
    synth.add_argument("--jobs", type=options.whole_number, default=4, metavar="J",
                       help="clips encoded at once (default 4)")
    synth.add_argument("--json", action="store_true", help="print the summary as JSON")
    # SUPPRESS: never overwrite the same flag given before the subcommand
    synth.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                       help="hide the progress bar")
    synth.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    synth.set_defaults(func=cmd_synth)
    return data
