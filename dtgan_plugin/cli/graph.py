"""``dtgan graph``: run an FFmpeg-style filter graph over files.

    dtgan graph '[0]dtgan.resize=256:-2,hflip[out]' -i in.mp4 -o out.mp4
    dtgan graph '[src]dtgan.dynamics[d];[tgt][d]dtgan.transfer[out]' \\
        -i src=face.mp4 -i tgt=portrait.png -o out.mp4 --keep-audio
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from ..errors import UsageError
from . import options

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")

EPILOG = """\
Inputs are [0], [1], ... in -i order, or [name] for -i name=PATH. Outputs take the graph's
unconsumed labels (or its open last output) in text order, or -o name=PATH by label.

Names with a dot are dtgan stages ('dtgan filters' lists them, 'dtgan inspect NAME' documents
one). Plain names are FFmpeg filters: they run inside the ffmpeg that decodes an input (right
after it) or encodes an output (right before it), and nowhere else.

examples:
  dtgan graph '[0]dtgan.resize=256:-2,hflip[out]' -i in.mp4 -o out.mp4
  dtgan graph '[0]split[a][b];[a]dtgan.resize=128:128[c];[b]hflip[d];[c][d]dtgan.stack' \\
      -i in.mp4 -o side_by_side.mp4
  dtgan graph '[0]dtgan.trim=start_time=1:end_time=3[out]' -i in.mp4 -o cut.mp4 --keep-audio
"""


def split_named(values: list[str], flag: str) -> list[tuple[str | None, str]]:
    """``[NAME=]PATH`` arguments → ``(name or None, path)``; an existing file wins over a name."""
    out: list[tuple[str | None, str]] = []
    for value in values:
        name, sep, path = value.partition("=")
        if sep and _NAME.match(name) and path and not os.path.exists(value):
            out.append((name, path))
        elif sep and not path and _NAME.match(name):
            raise UsageError(f"{flag} {value}: the path after '=' is empty",
                             hint=f"write {flag} {name}=PATH")
        else:
            out.append((None, value))
    return out


def bind_inputs(values: list[str]) -> dict[str, str]:
    """``-i`` arguments → ``{name: path}``: unnamed ones are ``"0"``, ``"1"``, ... by position."""
    bound: dict[str, str] = {}
    for index, (name, path) in enumerate(split_named(values, "-i")):
        key = name if name is not None else str(index)
        if key in bound:
            raise UsageError(f"input [{key}] is given twice",
                             hint="each -i name must be unique (unnamed inputs take their "
                                  "position as name)")
        bound[key] = path
    return bound


def bind_outputs(values: list[str]) -> tuple[list[str] | None, dict[str, str] | list[str]]:
    """``-o`` arguments → (names for parsing or None, paths by name or in order)."""
    pairs = split_named(values, "-o")
    _refuse_shared_paths([path for _, path in pairs])
    named = [n for n, _ in pairs if n is not None]
    if not named:
        return None, [p for _, p in pairs]
    if len(named) != len(pairs):
        raise UsageError("name every -o or none of them",
                         hint="write -o LABEL=PATH for each output, or only paths in label order")
    if len(set(named)) != len(named):
        raise UsageError("the same -o name is given twice")
    return named, {n: p for n, p in pairs if n is not None}


def register(subparsers: Any) -> None:
    """Add ``dtgan graph`` to the CLI's sub-parsers."""
    p = subparsers.add_parser(
        "graph", help="run an FFmpeg-style filter graph over files",
        description="Run a filter graph (FFmpeg -filter_complex syntax) over video and image "
                    "files; decode, stages and encode run concurrently.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", metavar="FILTERGRAPH",
                   help="the graph, e.g. '[0]dtgan.resize=256:-2,hflip[out]'")
    p.add_argument("-i", "--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="an input file ('-' for stdin); repeat for more")
    p.add_argument("-o", "--output", action="append", default=[], metavar="[NAME=]PATH",
                   required=True, help="an output file ('-' for y4m on stdout); repeat for more")
    options.add_encode_flags(p, codecs="video codec of the outputs (default auto: from the "
                                       "extension)")
    p.add_argument("--keep-audio", action="store_true",
                   help="copy the audio of the input each output's video comes from")
    options.add_chunk_flag(p)
    options.add_device_flag(p)
    p.add_argument("--threads", type=options.threads, default="auto", metavar="N",
                   help="torch threads while running: a number, or auto (default: the CPUs "
                        "the ffmpeg processes leave free)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the graph and the files, print the plan, and stop")
    p.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    """Handler of ``dtgan graph``: validate everything, then run; returns the exit code."""
    from ..graph import Graph

    inputs = bind_inputs(args.input)
    out_names, outputs = bind_outputs(args.output)
    for path in (outputs.values() if isinstance(outputs, dict) else outputs):
        options.check_output_path(path)
    graph = Graph.parse(args.graph, inputs=inputs, outputs=out_names)
    progress = getattr(args, "progress", not getattr(args, "no_progress", False))
    if args.dry_run:
        # binding also checks paths and kinds, so a dry run catches what a real run would
        graph.bind(inputs, outputs)
        for line in graph.explain():
            print(line)
        return 0
    stats = graph.run(inputs, outputs, device=args.device, chunk_size=args.chunk_size,
                      progress=progress, keep_audio=args.keep_audio, codec=args.codec,
                      crf=args.crf, threads=args.threads)
    written = ", ".join(f"{path} ({stats.outputs.get(name, 0)} frames)"
                        for name, path in _named(graph, outputs).items() if path != "-")
    if written:
        print(f"wrote {written} at {stats.fps:.1f} frames/s", file=sys.stderr)
    return 0


def _refuse_shared_paths(paths: list[str]) -> None:
    """Two outputs written to one file: one of them would be lost."""
    seen: dict[str, str] = {}
    for path in paths:
        key = path if path == "-" else os.path.realpath(path)
        if key in seen:
            where = "stdout" if path == "-" else f"'{path}'"
            raise UsageError(f"two -o outputs are written to {where}",
                             hint="give each output its own path")
        seen[key] = path


def _named(graph: Any, outputs: dict[str, str] | list[str]) -> dict[str, str]:
    if isinstance(outputs, dict):
        return outputs
    return dict(zip(graph.outputs, outputs))
