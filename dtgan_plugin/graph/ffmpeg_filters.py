"""Plain (FFmpeg) filters in a graph: which exist, what they take, and what to use instead.

Names without a dot are FFmpeg's. They run inside the ffmpeg process that decodes an input or
encodes an output, so they must be single-video-in, single-video-out filters; FFmpeg itself is
asked (``ffmpeg -filters``) which filters exist and what pads they have.
"""

from __future__ import annotations

import difflib
import functools
import subprocess
from typing import Any, Callable

from ..errors import DtganError, GraphError
from .ast import FilterNode

#: what to use instead of a plain filter that no ffmpeg process can host
NATIVE_EQUIVALENTS: dict[str, str] = {
    "scale": "dtgan.resize", "crop": "dtgan.crop", "hflip": "dtgan.flip",
    "vflip": "dtgan.flip=v", "trim": "dtgan.trim", "fps": "dtgan.fps",
    "hstack": "dtgan.stack", "vstack": "dtgan.stack=v", "split": "dtgan.split",
}
#: plain names that mean exactly a native stage (FFmpeg's split only fans a stream out, which
#: the executor does natively), so graphs written for ffmpeg keep working
PLAIN_ALIASES: dict[str, str] = {"split": "dtgan.split"}

#: makes the GraphError for a node: (message, column, hint)
ErrorFactory = Callable[[str, "int | None", "str | None"], GraphError]


@functools.lru_cache(maxsize=4)
def _ffmpeg_filters(exe: str) -> dict[str, str]:
    """``{name: "V->V"}`` from ``ffmpeg -filters`` (empty if it cannot be run)."""
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    table: dict[str, str] = {}
    started = False
    for line in out.splitlines():
        if line.strip().startswith("---"):
            started = True
            continue
        parts = line.split()
        if started and len(parts) >= 3 and "->" in parts[2]:
            table[parts[1]] = parts[2]
    return table


def ffmpeg_filter_table() -> dict[str, str]:
    """FFmpeg's filters and their pad signatures, or ``{}`` when ffmpeg is unavailable."""
    try:
        from ..media.ffmpeg_bin import find_ffmpeg

        return _ffmpeg_filters(find_ffmpeg())
    except DtganError:
        return {}


def native_hint(name: str, default: str) -> str:
    """Point at the native stage that does what plain filter ``name`` does, else ``default``."""
    native = NATIVE_EQUIVALENTS.get(name)
    return f"use {native} here" if native else default


def check_plain(node: FilterNode, registry: Any, error: ErrorFactory) -> None:
    """Refuse a plain filter that no decoder or encoder ffmpeg could run (GraphError)."""
    where = ("plain filters run inside the ffmpeg that decodes an input or encodes an "
             "output, so they need exactly one video input and one video output")
    if len(node.in_labels) > 1 or len(node.out_labels) > 1:
        col = (node.in_labels[1] if len(node.in_labels) > 1 else node.out_labels[1]).column
        raise error(f"FFmpeg filter '{node.name}' is given more than one "
                    f"{'input' if len(node.in_labels) > 1 else 'output'}", col,
                    native_hint(node.name, where))
    table = ffmpeg_filter_table()
    if not table:
        return  # no ffmpeg to ask: the decoder/encoder reports a bad name when it starts
    sig = table.get(node.name)
    if sig is None:
        natives = [n for n in registry.names("filters") if n.split(".", 1)[-1] == node.name]
        close = difflib.get_close_matches(node.name, list(table), n=1, cutoff=0.75)
        hint = (f"did you mean '{natives[0]}'?" if natives else
                f"did you mean '{close[0]}'?" if close else
                "stages of ours have a dot (dtgan.resize); 'dtgan filters' lists them")
        raise error(f"'{node.name}' is neither a registered stage nor an FFmpeg filter",
                    node.column, hint)
    if sig != "V->V":
        what = ("an audio filter" if "A" in sig else
                "a source or sink" if "|" in sig else f"'{sig}', not single video in/out")
        raise error(f"FFmpeg filter '{node.name}' is {what}", node.column,
                    native_hint(node.name, where))
