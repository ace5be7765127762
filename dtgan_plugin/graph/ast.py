"""The parsed form of a filter-graph string (before it is checked against the registry)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Label:
    """A link label ``[name]``; ``column`` is the 0-based offset of ``[`` in the text.

    ``name`` is the unescaped text (any characters). The same name may label several links
    (FFmpeg matches labels in order, see :mod:`.links`); the resolved edges tell them apart.
    """

    name: str
    column: int


@dataclass
class FilterNode:
    """One filter invocation: ``[in]...name=pos:key=value...[out]...``.

    ``positional`` and ``named`` hold the *unescaped* option values, in source order
    (``named`` is insertion-ordered). ``column`` is the offset of the name.
    """

    name: str
    column: int
    positional: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)
    in_labels: list[Label] = field(default_factory=list)
    out_labels: list[Label] = field(default_factory=list)
    #: offset of each option (positional first, then named) for error carets
    arg_columns: list[int] = field(default_factory=list)
    #: FFmpeg's instance id from ``name@id`` ("" when absent); not part of ``name``
    instance: str = ""

    @property
    def is_native(self) -> bool:
        """True for our registered stages (namespaced with a dot), False for FFmpeg filters."""
        return "." in self.name


@dataclass
class GraphSpec:
    """A whole graph: chains separated by ``;``, filters in a chain separated by ``,``.

    ``sws_flags`` is the text of FFmpeg's ``sws_flags=…;`` header (None without one): the
    options every FFmpeg ``scale`` filter of the graph gets, written first by ``to_string``.
    """

    chains: list[list[FilterNode]]
    text: str = ""
    sws_flags: str | None = None

    def filters(self) -> list[FilterNode]:
        """All filter nodes in source order."""
        return [f for chain in self.chains for f in chain]
