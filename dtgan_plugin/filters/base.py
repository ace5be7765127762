"""What a stage is: pads, an option schema, and a streaming ``run``.

A stage (filter) is a class with class-level metadata (``name``, ``inputs``, ``outputs``,
``options``) and two methods:

* ``configure(infos)`` — given the input streams' :class:`StreamInfo`, return the output's.
  Called while the graph is built, before any frame is decoded, so mistakes surface early.
* ``run(inputs)`` — given one iterator of packets per input pad, yield the output packets.
  It must stream: consume and yield chunk by chunk, never holding a whole video.

Options are declared once and validated from strings (the graph syntax) or Python values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import OptionError
from ..stream import DEFAULT_CHUNK, Packet, PadKind, StreamInfo

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Pad:
    """A named input or output of a stage, carrying one kind of packet."""

    name: str
    kind: PadKind


@dataclass(frozen=True)
class Option:
    """One option of a stage: its type, default and allowed values.

    ``type`` is one of ``int``, ``float``, ``str``, ``bool``. ``choices`` restricts values;
    ``min``/``max`` bound numbers. ``default=REQUIRED`` makes the option mandatory.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def required(self) -> bool:
        """True when the option has no default."""
        return self.default is REQUIRED

    def parse(self, value: Any, *, stage: str = "") -> Any:
        """Convert a string (or Python value) to this option's type, or raise OptionError."""
        where = f"{stage}: " if stage else ""
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    out: Any = value
                else:
                    text = str(value).strip().lower()
                    if text in _BOOL_TRUE:
                        out = True
                    elif text in _BOOL_FALSE:
                        out = False
                    else:
                        raise ValueError(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                out = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
            elif self.type is float:
                out = float(value)
                if out != out:  # NaN
                    raise ValueError(value)
            else:
                out = str(value)
        except (TypeError, ValueError):
            raise OptionError(
                f"{where}option '{self.name}' expects {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None and out not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise OptionError(f"{where}option '{self.name}' must be one of {allowed}, got {out!r}")
        if self.min is not None and out < self.min:
            raise OptionError(f"{where}option '{self.name}' must be >= {self.min}, got {out!r}")
        if self.max is not None and out > self.max:
            raise OptionError(f"{where}option '{self.name}' must be <= {self.max}, got {out!r}")
        return out


@dataclass
class RunContext:
    """What the executor tells every stage before running: device, chunking, progress."""

    device: str = "cpu"
    chunk_size: int = DEFAULT_CHUNK
    progress: bool = False
    verbose: bool = False


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class Filter:
    """Base class of every stage. Subclasses set the class metadata and implement ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[Pad, ...]] = ()
    outputs: ClassVar[tuple[Pad, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = ()
    #: the plugin that registered it (set by the registry)
    plugin: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.opts: dict[str, Any] = self.resolve_options(options)
        self.ctx = RunContext()

    @classmethod
    def resolve_options(cls, given: dict[str, Any],
                        positional: Sequence[Any] = ()) -> dict[str, Any]:
        """Validate positional and named option values against the schema; fill defaults."""
        schema = {o.name: o for o in cls.options}
        if len(positional) > len(cls.options):
            raise OptionError(
                f"{cls.name}: takes at most {len(cls.options)} positional options, "
                f"got {len(positional)}"
            )
        values: dict[str, Any] = {}
        for opt, raw in zip(cls.options, positional):
            values[opt.name] = opt.parse(raw, stage=cls.name)
        for key, raw in given.items():
            if key not in schema:
                close = difflib.get_close_matches(key, list(schema), n=1)
                hint = f"did you mean '{close[0]}'?" if close else (
                    f"known options: {', '.join(schema) or 'none'}")
                raise OptionError(f"{cls.name}: unknown option '{key}'", hint=hint)
            if key in values:
                raise OptionError(f"{cls.name}: option '{key}' given twice")
            values[key] = schema[key].parse(raw, stage=cls.name)
        for opt in cls.options:
            if opt.name not in values:
                if opt.required:
                    raise OptionError(f"{cls.name}: option '{opt.name}' is required")
                values[opt.name] = opt.default
        return values

    def setup(self, ctx: RunContext) -> None:
        """Receive the run context before ``configure``/``run`` (device, chunk size)."""
        self.ctx = ctx

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Return the output stream's description from the inputs'. Default: same as input 0."""
        if not infos:
            raise NotImplementedError(f"{self.name} has no inputs and must override configure")
        return infos[0].with_(kind=self.outputs[0].kind)

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Consume the input iterators (one per input pad) and yield output packets.

        A stage with several output pads yields ``(pad_index, packet)`` tuples instead.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (files, processes). Called once, also after errors."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-friendly description for ``dtgan inspect``."""
        return {
            "name": cls.name,
            "plugin": cls.plugin,
            "description": cls.description,
            "inputs": [{"name": p.name, "kind": str(p.kind)} for p in cls.inputs],
            "outputs": [{"name": p.name, "kind": str(p.kind)} for p in cls.outputs],
            "options": [
                {
                    "name": o.name,
                    "type": o.type.__name__,
                    "default": None if o.required else o.default,
                    "required": o.required,
                    "choices": list(o.choices) if o.choices else None,
                    "min": o.min,
                    "max": o.max,
                    "help": o.help,
                }
                for o in cls.options
            ],
        }

