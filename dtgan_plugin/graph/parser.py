"""FFmpeg filtergraph syntax → :class:`GraphSpec`, and back to a canonical string.

Grammar (as ``ffmpeg -filter_complex``; checked against FFmpeg 9's parser)::

    graph  := [ "sws_flags=" flags ";" ] chain { ";" chain } [ ";" ]
    chain  := filter { "," filter } [ "," ]
    filter := { "[" label "]" } name [ "@" id ] [ "=" args ] { "[" label "]" }
    args   := arg { ":" arg }            arg := [ key "=" ] value

Lexical rules
-------------
* The header: exactly ``sws_flags=`` (after leading whitespace only), then everything up to
  the first ``;`` (FFmpeg does no quoting there). FFmpeg hands ``flags=<that text>`` to every
  ``scale`` filter as ``key=value:…`` pairs, so ``sws_flags=bicubic:param0=2;`` is valid and
  ``sws_flags=bicubic:x;`` is refused here (FFmpeg refuses it at run time).
  :attr:`GraphSpec.sws_flags` keeps the text; :func:`sws_options` gives the pairs. A filter
  named ``sws_flags`` anywhere is an error (FFmpeg has no such filter).
* Whitespace (space, tab, CR, LF: FFmpeg's set) around separators, labels, names and inside
  ``[ label ]`` is ignored. A single trailing ``,`` or ``;`` is tolerated, as FFmpeg does;
  a leading one, or two in a row (``a,,b``, ``a;;``, ``a,;b``), is an empty filter.
* Names: ASCII letters, digits, ``_ . -``; an optional ``@id`` suffix (same characters) is
  FFmpeg's instance name and is kept in :attr:`FilterNode.instance`, not in ``name``.
* Labels: FFmpeg's ``av_get_token(…, "]")``: any character but an unescaped, unquoted ``]``
  (``[0:v]``, ``[a/b]``, ``[my label]``, ``['a]b']``); edge whitespace is dropped, ``\\``
  and ``'…'`` work as in values. ``[]`` is an error.
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
last) and ``=value`` with no key.

Writing (:func:`to_string`) is canonical: the header first, no whitespace, ``;`` between
chains, ``,`` between filters, positional values first, each value escaped by
:func:`escape_option_value` and each label by :func:`escape_label`, so
``parse_graph(to_string(spec))`` equals ``spec`` in header, names, labels and values, and
``to_string`` is idempotent. Real FFmpeg reads the same values from it (tested).

Which pad feeds which (labels matched in order, as FFmpeg does) is :mod:`.links`; its names
are re-exported here. Every error is a :class:`GraphError` with the graph text and a 0-based
column.
"""

from __future__ import annotations

from ..errors import GraphError
from .ast import FilterNode, GraphSpec, Label
from .links import (
    DEFAULT_OUTPUT,
    Edge,
    PadCounts,
    check_links,
    guess_pads,
    is_input_reference,
    resolve_links,
    topological_order,
)

__all__ = [
    "DEFAULT_OUTPUT",
    "KEY_CHARS",
    "LABEL_CHARS",
    "NAME_CHARS",
    "SWS_HEADER",
    "WHITESPACE",
    "Edge",
    "PadCounts",
    "check_links",
    "escape_label",
    "escape_option_value",
    "format_filter",
    "guess_pads",
    "is_input_reference",
    "parse_graph",
    "plain_chain",
    "resolve_links",
    "sws_options",
    "to_string",
    "topological_order",
]

#: FFmpeg's whitespace set (``WHITESPACES`` in libavfilter); other Unicode spaces are data.
WHITESPACE = " \n\t\r"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
NAME_CHARS = _ALNUM | frozenset("_.-")
#: label characters written without escaping (any other character is escaped, not refused)
LABEL_CHARS = _ALNUM | frozenset("_.:-/+")
#: ``is_key_char`` in libavutil/opt.c
KEY_CHARS = _ALNUM | frozenset("_./-")
#: the exact prefix of FFmpeg's graph header (``parse_sws_flags`` in libavfilter)
SWS_HEADER = "sws_flags="

_NAME_HELP = "filter names use letters, digits, '_', '.' and '-', optionally followed by @id"


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
        sws_flags, p = self.header(self.skip_ws(0))
        p = self.skip_ws(p)
        if p == self.n:
            raise self.error("empty graph", 0 if sws_flags is None else p,
                             "give at least one filter, e.g. 'null'")
        chains: list[list[FilterNode]] = []
        first = sws_flags is None  # after a header, a second one is not "at the start"
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
                                     self.separator_hint(node))
                p = self.skip_ws(p + 1)
                if sep == ";":
                    break
            chains.append(chain)
        return GraphSpec(chains=chains, text=self.text, sws_flags=sws_flags)

    @staticmethod
    def separator_hint(node: FilterNode) -> str:
        """A label that ran on over a separator most likely lost its ``]``."""
        last = node.out_labels[-1].name if node.out_labels else ""
        if any(ch in last for ch in "[,;"):
            return f"is a ']' missing? the label [{last}] runs on to here"
        return "separate filters with ',' and chains with ';'"

    def header(self, p: int) -> tuple[str | None, int]:
        """FFmpeg's ``parse_sws_flags``: ``sws_flags=…;`` right at the start, else None."""
        if not self.text.startswith(SWS_HEADER, p):
            return None, p
        start = p + len(SWS_HEADER)
        end = self.text.find(";", start)
        if end < 0:
            raise self.error("the sws_flags header is not terminated with ';'", p,
                             "write sws_flags=FLAGS; and then the filters")
        raw = self.text[start:end]
        pairs = self.sws_pairs(raw, start)
        flags = raw.strip(WHITESPACE)
        # edge whitespace is dropped by FFmpeg too, unless escaped or quoted: keep it then
        if flags != raw and not _same_pairs(flags, pairs):
            flags = raw
        return flags, end + 1

    def sws_pairs(self, flags: str, base: int) -> list[tuple[str, str]]:
        """``flags=<flags>`` split as FFmpeg's ``av_set_options_string(…, "=", ":")``."""
        src = "flags=" + flags
        cols = [base] * len("flags=") + list(range(base, base + len(flags)))
        end, n, i = base + len(flags), len(src), 0
        pairs: list[tuple[str, str]] = []
        while i < n:
            column = cols[i]
            key, _, _, i = self.token(i, "=", src=src, src_cols=cols, src_end=end)
            if not key or i >= n:
                raise self.error(f"sws_flags: '{key}' is not key=value", column,
                                 "after the flags, the header takes key=value pairs separated "
                                 "by ':' (sws_flags=bicubic:param0=2;)")
            value, _, _, i = self.token(i + 1, ":", src=src, src_cols=cols, src_end=end)
            pairs.append((key, value))
            if i < n:  # at the ':' separator
                i += 1
        return pairs

    def labels(self, p: int) -> tuple[list[Label], int]:
        out: list[Label] = []
        p = self.skip_ws(p)
        while p < self.n and self.text[p] == "[":
            label, p = self.label(p)
            out.append(label)
            p = self.skip_ws(p)
        return out, p

    def label(self, start: int) -> tuple[Label, int]:
        # FFmpeg's parse_link_name: av_get_token up to an unescaped, unquoted ']'
        name, _, _, p = self.token(start + 1, "]")
        if p == self.n:
            raise self.error("unbalanced '['", start, "add ']' to close the label")
        if not name:
            raise self.error("empty label '[]'", start, "put a name between the brackets")
        return Label(name, start), p + 1

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
        if name == "sws_flags":
            at_start = first and not in_labels
            raise self.error("'sws_flags' is the graph header, not a filter", name_start,
                             "write it exactly as 'sws_flags=FLAGS;' before the first filter"
                             if at_start else "only the start of the graph can set it: "
                             "move 'sws_flags=FLAGS;' there")
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
    ins = "".join(f"[{escape_label(lb.name)}]" for lb in node.in_labels)
    outs = "".join(f"[{escape_label(lb.name)}]" for lb in node.out_labels)
    return f"{ins}{head}{outs}"


def escape_label(name: str) -> str:
    """A label's text as written between brackets: ``\\ ' ]`` and edge whitespace escaped."""
    if not name:
        raise GraphError("cannot write an empty label", hint="give every label a name")
    if all(ch in LABEL_CHARS for ch in name):
        return name
    return _escape_edges_and(name, "\\']")


def _header(spec: GraphSpec) -> str:
    """``sws_flags=…;`` when the graph has the header, else ""."""
    if spec.sws_flags is None:
        return ""
    if ";" in spec.sws_flags:
        raise GraphError(f"cannot write sws_flags {spec.sws_flags!r}",
                         hint="FFmpeg ends the header at the first ';', so it cannot hold one")
    return f"{SWS_HEADER}{spec.sws_flags};"


def plain_chain(spec: GraphSpec, nodes: list[FilterNode]) -> str:
    """The ``-vf`` text for a run of FFmpeg filters of ``spec``: its header, then the chain."""
    return _header(spec) + ",".join(format_filter(node, labels=False) for node in nodes)


def _same_pairs(flags: str, pairs: list[tuple[str, str]]) -> bool:
    try:
        return sws_options(flags) == pairs
    except GraphError:
        return False


def sws_options(flags: str) -> list[tuple[str, str]]:
    """What FFmpeg sets on each ``scale`` filter for ``sws_flags=<flags>;``: (key, value) pairs."""
    return _Parser(f"{SWS_HEADER}{flags};").sws_pairs(flags, len(SWS_HEADER))


def to_string(spec: GraphSpec) -> str:
    """The canonical text of ``spec``; ``parse_graph`` of it gives back an equal structure."""
    if not spec.chains or any(not chain for chain in spec.chains):
        raise GraphError("cannot write an empty graph or an empty chain",
                         hint="every chain needs at least one filter")
    return _header(spec) + ";".join(",".join(format_filter(node) for node in chain)
                                    for chain in spec.chains)
