"""The graph model's data types: streams, native stages, run statistics, path specs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Union
from collections.abc import Mapping, Sequence

from ..errors import UsageError
from ..filters.base import Filter, Pad
from ..stream import PadKind
from .ast import FilterNode

from ..dynfile import DYN_SUFFIX as DYNAMICS_SUFFIX  # one definition, in dynfile

PathLike = Union[str, "os.PathLike[str]"]
IOSpec = Union[Sequence[PathLike], Mapping[str, PathLike], PathLike]


@dataclass
class RunStats:
    """What a run did: frames written (all outputs), wall time, and frames per second."""

    frames: int
    seconds: float
    fps: float
    outputs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """Where a stream comes from once splits are wired through and plain filters folded.

    ``origin`` is ``"input"`` (``ref`` = input name; ``plain`` = filters the decoder runs) or
    ``"stage"`` (``ref`` = filter index, ``pad`` = its output; ``plain`` = filters still to be
    hosted, which only an encoder can do).
    """

    origin: str
    ref: str | int
    pad: int = 0
    plain: tuple[int, ...] = ()

    def bare(self) -> "Stream":
        """The stream without pending plain filters (what a stage produced)."""
        return self if not self.plain else Stream(self.origin, self.ref, self.pad)


@dataclass
class StageNode:
    """A native stage in the graph: its class, raw options, pads and input streams."""

    index: int
    node: FilterNode
    cls: type[Filter]
    raw: dict[str, str]
    opts: dict[str, Any]
    in_pads: tuple[Pad, ...]
    out_pads: tuple[Pad, ...]
    inputs: list[Stream] = field(default_factory=list)

    @property
    def alias(self) -> bool:
        """True when the outputs are the input stream itself (a split)."""
        return bool(getattr(self.cls, "alias_outputs", False))

    @property
    def follows(self) -> tuple[PadKind, ...] | None:
        """Kinds accepted on input 0 when the outputs take the input's kind, else None."""
        return getattr(self.cls, "kind_follows_input", None)


def input_kind(path: str) -> PadKind:
    """The pad kind a file implies: image by extension, video otherwise."""
    from ..media.video import is_image_path

    if path.lower().endswith(DYNAMICS_SUFFIX):
        raise UsageError(f"'{path}' is a dynamics file, not a video or image input",
                         hint=f"read it inside the graph with dtgan.load=file={path}")
    return PadKind.IMAGE if path != "-" and is_image_path(path) else PadKind.VIDEO


def names_and_paths(spec: IOSpec | None, what: str) -> tuple[list[str] | None, dict[str, str]]:
    """Parse-time ``inputs``/``outputs``: names (a sequence) or a name → path mapping."""
    if spec is None:
        return None, {}
    if isinstance(spec, Mapping):
        names = [str(k) for k in spec]
        return names, {str(k): os.fspath(v) for k, v in spec.items()}
    if isinstance(spec, (str, os.PathLike)):
        raise UsageError(f"{what}s must be a list of names or a mapping name -> path, "
                         f"got the single value {os.fspath(spec)!r}")
    names = [str(n) for n in spec]
    if len(set(names)) != len(names):
        raise UsageError(f"{what} names must be unique, got {names}")
    return names, {}
