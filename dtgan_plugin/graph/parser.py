"""FFmpeg filtergraph syntax → :class:`GraphSpec`, back to a canonical string, and link resolution.

Grammar (as ``ffmpeg -filter_complex``; checked against FFmpeg 9's parser)::

    graph  := chain { ";" chain } [ ";" ]
    chain  := filter { "," filter } [ "," ]
    filter := { "[" label "]" } name [ "@" id ] [ "=" args ] { "[" label "]" }
    args   := arg { ":" arg }            arg := [ key "=" ] value

Lexical rules
-------------
* Whitespace (space, tab, CR, LF: FFmpeg's set) around separators, labels, names and inside
  ``[ label ]`` is ignored. A single trailing ``,`` or ``;`` is tolerated, as FFmpeg does;
  a leading one, or two in a row (``a,,b``, ``a;;``, ``a,;b``), is an empty filter.
* Names: ASCII letters, digits, ``_ . -``; an optional ``@id`` suffix (same characters) is
  FFmpeg's instance name and is kept in :attr:`FilterNode.instance`, not in ``name``.
* Labels: ASCII letters, digits, ``_ . : -`` (so ``[0:v]`` works). ``[]`` is an error.
* Keys: FFmpeg's key characters, ASCII letters, digits, ``_ . / -``. As in FFmpeg, an arg is
  named only when a key is directly followed (whitespace aside) by an unescaped ``=``;
  otherwise the whole arg is a positional value (``a b=c`` is one positional value).

Escaping happens at two levels, exactly as FFmpeg's ``av_get_token`` applies it:

1. *Graph level*, over the text after ``=`` up to an unquoted, unescaped ``[ ] , ;``:
   ``'...'`` copies its content literally (backslashes included), ``\\x`` yields ``x``,
   unquoted leading/trailing whitespace is dropped.
2. *Option level*, over the result of level 1, split at unescaped ``:``: the same rules
   again, so ``:`` and ``=`` are protected by ``\\`` or ``'...'`` *at this level*, and each
   value loses its unquoted leading/trailing whitespace.

Hence ``drawtext=text='a\\:b'`` gives ``text`` = ``a:b`` (level 1 keeps ``a\\:b``, level 2
unescapes it), and ``dtgan.load=file='my file;1.dyn.safetensors'`` keeps the ``;``.
``x=`` has no options; ``key=`` is the empty value; one trailing ``:`` is absorbed and
``x=a::`` has a second, empty, positional value; an empty value is written ``''``.
Stricter than FFmpeg (which silently keeps the text): an unterminated quote or a trailing
backslash at either level is an error. Also stricter: a key given twice (FFmpeg keeps the
last) and ``=value`` with no key. Not supported: FFmpeg's leading ``sws_flags=...;`` section
(it would read as a filter named ``sws_flags``).

Writing (:func:`to_string`) is canonical: no whitespace, ``;`` between chains, ``,`` between
filters, positional values first, and each value escaped by :func:`escape_option_value`, so
``parse_graph(to_string(spec))`` equals ``spec`` in names, labels and values, and
``to_string`` is idempotent. Real FFmpeg reads the same values from it (tested).

Link rules (:func:`resolve_links`)
----------------------------------
``pads(node) -> (n_in, n_out)`` gives each filter's pad counts.

1. A filter's input labels occupy its input pads ``0..k-1`` in order; its output labels its
   output pads ``0..m-1``. More labels than pads is an error.
2. In a chain, filter *i*'s unlabelled output pads feed filter *i+1*'s unlabelled input pads,
   in order (FFmpeg's rule). More unlabelled outputs than free inputs is an error; free
   inputs left over stay open.
3. A label is produced at most once and a produced label is consumed at most once (use a
   splitting filter to fan out). An input reference may be consumed any number of times.
4. An input label that no filter produces must be an input reference: a name in ``inputs``,
   or ``name:spec`` whose ``name`` is in ``inputs`` (``[0:v]``). With ``inputs=None`` every
   ``N`` or ``N:spec`` (``N`` a decimal index) is an input reference. The edge's source is
   the whole label (``"0:v"``) so the reader can honour the stream specifier.
5. Open (unlabelled, unconnected) input pads, in graph order, read the inputs that no label
   names, in order (FFmpeg: "the first unused input"); ``auto_inputs=False`` makes them an
   error. With ``inputs=None`` those are ``"0"``, ``"1"``, ... .
6. A produced label nobody consumes must be in ``outputs`` (with ``outputs=None`` it *is* an
   output, named by its label). Open output pads, in graph order, go to the outputs that no
   label names, in order; with ``outputs=None`` that is the single output :data:`DEFAULT_OUTPUT`.
   An explicitly declared output that receives nothing is an error.
7. The filters and links must form a DAG.

:func:`check_links` without ``pads`` applies rules 3, 4, 6 (labelled part) and 7 to labelled
links only, since which pads stay unlabelled depends on the registry.

Every error is a :class:`GraphError` with the graph text and a 0-based column.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from ..errors import GraphError
from .ast import FilterNode, GraphSpec, Label

__all__ = [
    "DEFAULT_OUTPUT",
    "KEY_CHARS",
    "LABEL_CHARS",
    "NAME_CHARS",
    "WHITESPACE",
    "Edge",
    "PadCounts",
    "check_links",
    "escape_option_value",
    "format_filter",
    "guess_pads",
    "is_input_reference",
    "parse_graph",
    "resolve_links",
    "to_string",
    "topological_order",
]

#: FFmpeg's whitespace set (``WHITESPACES`` in libavfilter); other Unicode spaces are data.
WHITESPACE = " \n\t\r"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
NAME_CHARS = _ALNUM | frozenset("_.-")
LABEL_CHARS = _ALNUM | frozenset("_.:-")
#: ``is_key_char`` in libavutil/opt.c
KEY_CHARS = _ALNUM | frozenset("_./-")
#: name of the output that open output pads go to when the caller names no outputs
DEFAULT_OUTPUT = "out"

_NAME_HELP = "filter names use letters, digits, '_', '.' and '-', optionally followed by @id"
_LABEL_HELP = "labels use letters, digits, '_', '.', ':' and '-'"
_INDEX_REF = re.compile(r"[0-9]+(?::.*)?\Z", re.S)

#: ``pads(node) -> (n_in, n_out)``, normally answered by the stage registry
PadCounts = Callable[[FilterNode], tuple[int, int]]


def _show(ch: str) -> str:
    """A character quoted for an error message (escape sequences for invisible ones)."""
    return repr(ch)


# --------------------------------------------------------------------------- parsing


class _Parser:
    """One pass over the graph text; positions are indices into ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)

    def error(self, message: str, column: int, hint: str | None = None) -> GraphError:
        return GraphError(message, text=self.text, column=min(max(column, 0), self.n), hint=hint)

    def skip_ws(self, p: int) -> int:
        while p < self.n and self.text[p] in WHITESPACE:
            p += 1
        return p

    # graph := chain {";" chain}, following FFmpeg 9's avfilter_graph_segment_parse loop
    def graph(self) -> GraphSpec:
        p = self.skip_ws(0)
        if p == self.n:
            raise self.error("empty graph", 0, "give at least one filter, e.g. 'null'")
        chains: list[list[FilterNode]] = []
        first = True
        while p < self.n:
            chain: list[FilterNode] = []
            while p < self.n:
                node, p = self.filter(p, first)
                first = False
                chain.append(node)
                p = self.skip_ws(p)
                if p == self.n:
                    break
                sep = self.text[p]
                if sep == "]":
                    raise self.error("unbalanced ']'", p, "remove it or add a matching '['")
                if sep not in ",;":
                    raise self.error(f"unexpected {_show(sep)} after filter '{node.name}'", p,
                                     "separate filters with ',' and chains with ';'")
                p = self.skip_ws(p + 1)
                if sep == ";":
                    break
            chains.append(chain)
        return GraphSpec(chains=chains, text=self.text)

    def labels(self, p: int) -> tuple[list[Label], int]:
        out: list[Label] = []
        p = self.skip_ws(p)
        while p < self.n and self.text[p] == "[":
            label, p = self.label(p)
            out.append(label)
            p = self.skip_ws(p)
        return out, p

    def label(self, start: int) -> tuple[Label, int]:
        p = self.skip_ws(start + 1)
        name_start = p
        while p < self.n and self.text[p] in LABEL_CHARS:
            p += 1
        name = self.text[name_start:p]
        after = self.skip_ws(p)
        if after < self.n and self.text[after] == "]":
            if not name:
                raise self.error("empty label '[]'", start, "put a name between the brackets")
            return Label(name, start), after + 1
        if after == self.n or self.text[after] in "[,;":
            raise self.error("unbalanced '['", start, "add ']' to close the label")
        bad = p if after > p else after  # a space inside a name is the first wrong thing
        raise self.error(f"bad character {_show(self.text[bad])} in label", bad, _LABEL_HELP)

    def filter(self, p: int, first: bool) -> tuple[FilterNode, int]:
        in_labels, p = self.labels(p)
        if p == self.n or self.text[p] in ",;=]":
            self.missing_name(p, in_labels, first)
        name_start = p
        while p < self.n and (self.text[p] in NAME_CHARS or self.text[p] == "@"):
            p += 1
        raw = self.text[name_start:p]
        after = self.skip_ws(p)
        if after < self.n and self.text[after] not in "=,;[]":
            if after > p and raw:
                raise self.error(f"unexpected text after filter name '{raw}'", after,
                                 f"options follow '=' ({raw}=...); separate filters with ','")
            raise self.error(f"bad character {_show(self.text[p])} in filter name", p, _NAME_HELP)
        name, instance = self.split_instance(raw, name_start)
        node = FilterNode(name=name, column=name_start, instance=instance, in_labels=in_labels)
        p = after
        if p < self.n and self.text[p] == "=":
            value, cols, end_col, p = self.token(p + 1, "[],;")
            self.options(node, value, cols, end_col)
        node.out_labels, p = self.labels(p)
        return node, p

    def missing_name(self, p: int, in_labels: list[Label], first: bool) -> None:
        ch = self.text[p] if p < self.n else ""
        if ch == "]":
            raise self.error("unbalanced ']'", p, "remove it or add a matching '['")
        if ch == "=":
            raise self.error("missing filter name before '='", p, "write name=options")
        if in_labels:
            raise self.error(f"missing filter name after label [{in_labels[-1].name}]", p,
                             "a label must be attached to a filter")
        if first:
            raise self.error(f"empty filter before {_show(ch)}", p, f"remove the leading {_show(ch)}")
        # p == n cannot happen here: a single trailing separator ends the loop first
        raise self.error(f"empty filter before {_show(ch)}", p, f"remove the extra {_show(ch)}")

    def split_instance(self, raw: str, start: int) -> tuple[str, str]:
        name, at, instance = raw.partition("@")
        if not name:
            raise self.error("missing filter name before '@'", start, "write name@id")
        if at and not instance:
            raise self.error(f"empty instance id after '{name}@'", start + len(raw),
                             "write name@id or drop the '@'")
        if "@" in instance:
            raise self.error("bad character '@' in filter name", start + len(name) + 1 +
                             instance.index("@"), _NAME_HELP)
        return name, instance

    def token(self, p: int, term: str, *, src: str | None = None,
              src_cols: list[int] | None = None, src_end: int = 0
              ) -> tuple[str, list[int], int, int]:
        """FFmpeg's ``av_get_token`` over ``src`` (default: the graph text) from ``p``.

        Returns the unescaped value, the text column of each of its characters, the text
        column where the token ended, and the index in ``src`` where it stopped.
        """
        s = self.text if src is None else src
        n = len(s)

        def col(i: int) -> int:
            if src_cols is None:
                return i
            return src_cols[i] if i < len(src_cols) else src_end

        while p < n and s[p] in WHITESPACE:
            p += 1
        out: list[str] = []
        cols: list[int] = []
        end = 0  # chars up to here came from quotes or escapes and survive trimming
        while p < n and s[p] not in term:
            c = s[p]
            if c == "\\":
                if p + 1 >= n:
                    where = "" if src is None else " of an option value"
                    raise self.error(f"trailing backslash{where}", col(p),
                                     "escape it as '\\\\' or remove it")
                out.append(s[p + 1])
                cols.append(col(p + 1))
                p += 2
                end = len(out)
            elif c == "'":
                q = s.find("'", p + 1)
                if q < 0:
                    where = "" if src is None else " in an option value"
                    raise self.error(f"unterminated quote{where}", col(p),
                                     "close it with ' (inside quotes a ' must be written '\\'')")
                out.extend(s[p + 1:q])
                cols.extend(col(i) for i in range(p + 1, q))
                p = q + 1
                end = len(out)
            else:
                out.append(c)
                cols.append(col(p))
                p += 1
        while len(out) > end and out[-1] in WHITESPACE:
            out.pop()
            cols.pop()
        return "".join(out), cols, col(p), p

    def options(self, node: FilterNode, args: str, cols: list[int], end_col: int) -> None:
        """Split level-1 ``args`` into positional and named values (FFmpeg's process_options)."""
        n = len(args)

        def col(i: int) -> int:
            return cols[i] if i < n else end_col

        named_at: str | None = None
        i = 0
        while i < n:
            j = i
            while j < n and args[j] in WHITESPACE:
                j += 1
            key_start = j
            while j < n and args[j] in KEY_CHARS:
                j += 1
            key_end = j
            while j < n and args[j] in WHITESPACE:
                j += 1
            if j < n and args[j] == "=":
                key = args[key_start:key_end]
                if not key:
                    raise self.error("missing option name before '='", col(j),
                                     "write key=value, or escape the '=' as '\\\\='")
                if key in node.named:
                    raise self.error(f"option '{key}' given twice", col(key_start),
                                     "keep only one of them")
                value, _, _, i = self.token(j + 1, ":", src=args,
                                            src_cols=cols, src_end=end_col)
                node.named[key] = value
                node.arg_columns.append(col(key_start))
                named_at = named_at or key
            else:
                start = key_start  # the value starts after the skipped whitespace
                value, _, _, i = self.token(i, ":", src=args,
                                            src_cols=cols, src_end=end_col)
                if named_at is not None:
                    raise self.error(f"positional option after named option '{named_at}'",
                                     col(start), "put positional values first, or name it key=value")
                node.positional.append(value)
                node.arg_columns.append(col(start))
            if i < n:  # at the ':' separator
                i += 1


def parse_graph(text: str) -> GraphSpec:
    """Parse an FFmpeg-style filtergraph string into a :class:`GraphSpec` (raises GraphError)."""
    if not isinstance(text, str):
        raise TypeError(f"parse_graph() needs a str, got {type(text).__name__}")
    return _Parser(text).graph()


# --------------------------------------------------------------------------- writing


def _escape_edges_and(value: str, specials: str) -> str:
    """Backslash-escape ``specials`` and any leading/trailing FFmpeg whitespace."""
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in specials or ((i == 0 or i == last) and ch in WHITESPACE):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def escape_option_value(value: str, *, positional: bool = False) -> str:
    """One option value escaped for both levels, ready to follow ``key=`` in a graph string.

    Level 2 protects ``\\ ' :`` (and ``=`` for positional values, which would otherwise read
    as a key) and edge whitespace; level 1 then wraps the result in ``'...'`` when it holds
    a graph-level special and no quote, else backslash-escapes ``\\ ' [ ] , ;`` (FFmpeg's
    documented form, e.g. ``text=it\\\\\\'s``).
    """
    if value == "":
        level2 = "''" if positional else ""
    else:
        level2 = _escape_edges_and(value, "\\':=" if positional else "\\':")
    if not any(ch in "\\'[],;" for ch in level2):
        return level2
    if "'" not in level2:
        return f"'{level2}'"
    # edge whitespace matters too: the last value of a filter ends the level-1 token
    return _escape_edges_and(level2, "\\'[],;")


def _check_word(word: str, allowed: frozenset[str], what: str, help_: str) -> None:
    if not word or any(ch not in allowed for ch in word):
        raise GraphError(f"cannot write {what} {word!r}", hint=help_)


def format_filter(node: FilterNode, *, labels: bool = True) -> str:
    """One filter in canonical form: ``[in]name@id=pos:key=value[out]`` (labels optional)."""
    _check_word(node.name, NAME_CHARS, "filter name", _NAME_HELP)
    head = node.name
    if node.instance:
        _check_word(node.instance, NAME_CHARS, "instance id", _NAME_HELP)
        head += "@" + node.instance
    args = [escape_option_value(v, positional=True) for v in node.positional]
    for key, value in node.named.items():
        _check_word(key, KEY_CHARS, "option key", "keys use letters, digits, '_', '.', '/' and '-'")
        args.append(f"{key}={escape_option_value(value)}")
    if args:
        head += "=" + ":".join(args)
    if not labels:
        return head
    for label in (*node.in_labels, *node.out_labels):
        _check_word(label.name, LABEL_CHARS, "label", _LABEL_HELP)
    ins = "".join(f"[{lb.name}]" for lb in node.in_labels)
    outs = "".join(f"[{lb.name}]" for lb in node.out_labels)
    return f"{ins}{head}{outs}"


def to_string(spec: GraphSpec) -> str:
    """The canonical text of ``spec``; ``parse_graph`` of it gives back an equal structure."""
    if not spec.chains or any(not chain for chain in spec.chains):
        raise GraphError("cannot write an empty graph or an empty chain",
                         hint="every chain needs at least one filter")
    return ";".join(",".join(format_filter(node) for node in chain) for chain in spec.chains)


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class Edge:
    """One link: (filter index or input name, out pad) → (filter index or output name, in pad).

    Filter indices count :meth:`GraphSpec.filters` in source order. An input end is the
    whole input label (``"0:v"``) with pad 0; an output end is the output name with pad 0.
    ``label`` is the link's name in the text (None when the link is implicit) and
    ``column`` where the text makes the link, for error carets.
    """

    src: int | str
    src_pad: int
    dst: int | str
    dst_pad: int
    label: str | None = None
    column: int = 0

    @property
    def from_input(self) -> bool:
        """True when the producer is a graph input rather than a filter."""
        return isinstance(self.src, str)

    @property
    def to_output(self) -> bool:
        """True when the consumer is a graph output rather than a filter."""
        return isinstance(self.dst, str)


def guess_pads(node: FilterNode) -> tuple[int, int]:
    """Pad counts when nothing better is known: one in, one out, or as many as labels say."""
    return max(1, len(node.in_labels)), max(1, len(node.out_labels))


def is_input_reference(label: str, inputs: Collection[str] | None = None) -> bool:
    """True when ``label`` names a graph input: ``name`` or ``name:spec`` (rule 4)."""
    if inputs is None:
        return bool(_INDEX_REF.match(label))
    return label in inputs or (":" in label and label.split(":", 1)[0] in inputs)


def _input_root(label: str) -> str:
    return label.split(":", 1)[0]


@dataclass
class _Links:
    """Label bookkeeping shared by :func:`check_links` and :func:`resolve_links`."""

    produced: dict[str, tuple[int, int, Label]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    consumed: set[str] = field(default_factory=set)
    graph_outputs: dict[str, tuple[int, int, Label]] = field(default_factory=dict)


def _label_links(spec: GraphSpec, inputs: Collection[str] | None,
                 outputs: Collection[str] | None) -> _Links:
    """Rules 3, 4 and 6 for labelled pads: what every label connects to."""
    text = spec.text
    nodes = spec.filters()
    links = _Links()
    for idx, node in enumerate(nodes):
        for pad, label in enumerate(node.out_labels):
            if label.name in links.produced:
                first = nodes[links.produced[label.name][0]].name
                raise GraphError(f"label [{label.name}] is defined twice (first by '{first}')",
                                 text=text, column=label.column, hint="rename one of them")
            if is_input_reference(label.name, inputs):
                raise GraphError(f"label [{label.name}] names an input and cannot be a filter output",
                                 text=text, column=label.column, hint="rename the output label")
            links.produced[label.name] = (idx, pad, label)
    for idx, node in enumerate(nodes):
        for pad, label in enumerate(node.in_labels):
            name = label.name
            if name in links.produced:
                if name in links.consumed:
                    raise GraphError(f"label [{name}] is used as an input twice", text=text,
                                     column=label.column,
                                     hint="a link feeds one input: add a split filter to fan it out")
                links.consumed.add(name)
                src, src_pad, _ = links.produced[name]
                links.edges.append(Edge(src, src_pad, idx, pad, name, label.column))
            elif is_input_reference(name, inputs):
                links.edges.append(Edge(name, 0, idx, pad, name, label.column))
            else:
                if inputs is None:
                    known = "an input index such as [0] or [0:v]"
                else:
                    known = ("an input: " + ", ".join(f"[{n}]" for n in inputs)) if inputs \
                        else "an input (none are given)"
                raise GraphError(f"label [{name}] is used but nothing produces it", text=text,
                                 column=label.column,
                                 hint=f"produce it with a filter output [{name}] or use {known}")
    for name, (idx, pad, label) in links.produced.items():
        if name in links.consumed:
            if outputs is not None and name in outputs:
                raise GraphError(f"label [{name}] names an output but is also a filter input",
                                 text=text, column=label.column,
                                 hint="send it to both with a split filter and two labels")
            continue
        if outputs is not None and name not in outputs:
            raise GraphError(f"label [{name}] is produced but never used", text=text,
                             column=label.column,
                             hint="feed it to a filter or declare it as an output")
        links.graph_outputs[name] = (idx, pad, label)
        links.edges.append(Edge(idx, pad, name, 0, name, label.column))
    return links


def _find_cycle(n: int, edges: list[Edge]) -> Edge | None:
    """An edge that closes a cycle among filters, or None for a DAG."""
    succ: list[list[Edge]] = [[] for _ in range(n)]
    for e in edges:
        if isinstance(e.src, int) and isinstance(e.dst, int):
            succ[e.src].append(e)
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    for root in range(n):
        if state[root]:
            continue
        # iterative DFS: a long chain must not hit Python's recursion limit
        stack: list[tuple[int, Iterator[Edge]]] = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            dst = nxt.dst
            assert isinstance(dst, int)
            if state[dst] == 1:
                return nxt
            if state[dst] == 0:
                state[dst] = 1
                stack.append((dst, iter(succ[dst])))
    return None


def _raise_cycle(spec: GraphSpec, edges: list[Edge]) -> None:
    nodes = spec.filters()
    back = _find_cycle(len(nodes), edges)
    if back is None:
        return
    link = f"[{back.label}]" if back.label else "a chain link"
    assert isinstance(back.src, int) and isinstance(back.dst, int)
    raise GraphError(f"cycle in the graph: {link} feeds '{nodes[back.dst].name}' from "
                     f"'{nodes[back.src].name}', which depends on it", text=spec.text,
                     column=back.column, hint="a filter cannot consume its own output; break the loop")


def check_links(spec: GraphSpec, inputs: Collection[str] | None = None,
                outputs: Collection[str] | None = None, *, pads: PadCounts | None = None) -> None:
    """Structural checks that need no registry: label reuse, undefined/dangling labels, cycles.

    Without ``pads`` only labelled links are checked (pad counts decide the implicit ones);
    with ``pads`` this is :func:`resolve_links` without the result.
    """
    if pads is not None:
        resolve_links(spec, inputs, outputs, pads=pads)
        return
    links = _label_links(spec, inputs, outputs)
    _raise_cycle(spec, links.edges)


def resolve_links(spec: GraphSpec, inputs: Collection[str] | None = None,
                  outputs: Collection[str] | None = None, *, pads: PadCounts = guess_pads,
                  auto_inputs: bool = True) -> list[Edge]:
    """Every link of the graph as an :class:`Edge` (rules in the module docstring)."""
    text = spec.text
    nodes = spec.filters()
    counts: list[tuple[int, int]] = []
    for node in nodes:
        n_in, n_out = pads(node)
        if n_in < 0 or n_out < 0:
            raise ValueError(f"pads({node.name!r}) returned negative counts {(n_in, n_out)}")
        if len(node.in_labels) > n_in:
            extra = node.in_labels[n_in]
            raise GraphError(f"too many input labels for '{node.name}': it has {n_in} input pad(s)",
                             text=text, column=extra.column, hint=f"remove [{extra.name}]")
        if len(node.out_labels) > n_out:
            extra = node.out_labels[n_out]
            raise GraphError(f"too many output labels for '{node.name}': it has {n_out} output pad(s)",
                             text=text, column=extra.column, hint=f"remove [{extra.name}]")
        counts.append((n_in, n_out))
    links = _label_links(spec, inputs, outputs)
    edges = list(links.edges)

    # rule 2: implicit links inside each chain; collect what stays open
    open_ins: list[tuple[int, int]] = []
    open_outs: list[tuple[int, int]] = []
    idx = 0
    for chain in spec.chains:
        pending: list[tuple[int, int]] = []  # the previous filter's unlabelled outputs
        for node in chain:
            n_in, n_out = counts[idx]
            free = list(range(len(node.in_labels), n_in))
            if len(pending) > len(free):
                prev = nodes[idx - 1].name
                raise GraphError(f"'{prev}' has {len(pending)} unlabelled output(s) but "
                                 f"'{node.name}' after it takes only {len(free)}", text=text,
                                 column=node.column,
                                 hint=f"label the extra outputs of '{prev}' and use them elsewhere")
            for (src, src_pad), dst_pad in zip(pending, free):
                edges.append(Edge(src, src_pad, idx, dst_pad, None, node.column))
            open_ins.extend((idx, pad) for pad in free[len(pending):])
            pending = [(idx, pad) for pad in range(len(node.out_labels), n_out)]
            idx += 1
        open_outs.extend(pending)

    # rule 5: open inputs read the inputs no label names
    if open_ins:
        named = {_input_root(e.src) for e in edges if isinstance(e.src, str)}
        if inputs is None:
            free_inputs: Iterator[str] = (str(i) for i in itertools.count() if str(i) not in named)
        else:
            free_inputs = iter([name for name in inputs if name not in named])
        for dst, pad in open_ins:
            node = nodes[dst]
            name = next(free_inputs, None) if auto_inputs else None
            if name is None:
                why = "every input is already used" if auto_inputs else "unlabelled inputs are off"
                raise GraphError(f"input pad {pad} of '{node.name}' is not connected ({why})",
                                 text=text, column=node.column,
                                 hint="give it an input label such as [0] or a label another filter produces")
            edges.append(Edge(name, 0, dst, pad, None, node.column))

    # rule 6: open outputs go to the outputs no label names
    if outputs is None:
        candidates = [] if DEFAULT_OUTPUT in links.produced else [DEFAULT_OUTPUT]
    else:
        candidates = [name for name in outputs if name not in links.produced]
    free_outputs = iter(candidates)
    fed = set(links.graph_outputs)
    for src, pad in open_outs:
        node = nodes[src]
        name = next(free_outputs, None)
        if name is None:
            raise GraphError(f"output pad {pad} of '{node.name}' is not connected", text=text,
                             column=node.column,
                             hint="label it and use the label as an input, or declare it as an output")
        fed.add(name)
        edges.append(Edge(src, pad, name, 0, None, node.column))
    if outputs is not None:
        for name in outputs:
            if name not in fed:
                raise GraphError(f"output '{name}' receives nothing from the graph", text=text,
                                 column=len(text),
                                 hint=f"end a chain with [{name}] or leave its last output unlabelled")

    _raise_cycle(spec, edges)
    return edges


def topological_order(spec: GraphSpec, edges: list[Edge]) -> list[int]:
    """Filter indices so that every producer comes before its consumers (source order on ties)."""
    n = len(spec.filters())
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        if isinstance(e.src, int) and isinstance(e.dst, int):
            succ[e.src].append(e.dst)
            indeg[e.dst] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != n:
        _raise_cycle(spec, edges)
    return order
