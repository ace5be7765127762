"""The filter-graph parser: FFmpeg's syntax and escaping, canonical writing, link resolution."""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtgan_plugin.errors import GraphError, UsageError
from dtgan_plugin.graph.ast import FilterNode, GraphSpec, Label
from dtgan_plugin.graph.parser import (
    DEFAULT_OUTPUT,
    KEY_CHARS,
    LABEL_CHARS,
    NAME_CHARS,
    Edge,
    check_links,
    escape_option_value,
    format_filter,
    guess_pads,
    is_input_reference,
    parse_graph,
    resolve_links,
    escape_label,
    plain_chain,
    sws_options,
    to_string,
    topological_order,
)
from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

# deterministic and database-free so CI runs the same examples every time
FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def shape(spec: GraphSpec) -> list[list[tuple]]:
    """The chains' content parse/to_string must preserve (columns excluded)."""
    return [[(f.name, f.instance, list(f.positional), list(f.named.items()),
              [lb.name for lb in f.in_labels], [lb.name for lb in f.out_labels])
             for f in chain] for chain in spec.chains]


def full(spec: GraphSpec) -> tuple[str | None, list[list[tuple]]]:
    """Everything parse/to_string must preserve: the header and the chains."""
    return spec.sws_flags, shape(spec)


def one(text: str) -> FilterNode:
    spec = parse_graph(text)
    assert len(spec.filters()) == 1
    return spec.filters()[0]


def pads_from(table: dict[str, tuple[int, int]]):
    return lambda node: table[node.name]


def links(edges: list[Edge]) -> set[tuple]:
    return {(e.src, e.src_pad, e.dst, e.dst_pad) for e in edges}


# --------------------------------------------------------------------------- syntax


def test_ffmpeg_doc_split_hstack():
    spec = parse_graph("[0:v]split=2[a][b];[a]scale=100:-1[c];[b]hflip[d];[c][d]hstack")
    assert shape(spec) == [
        [("split", "", ["2"], [], ["0:v"], ["a", "b"])],
        [("scale", "", ["100", "-1"], [], ["a"], ["c"])],
        [("hflip", "", [], [], ["b"], ["d"])],
        [("hstack", "", [], [], ["c", "d"], [])],
    ]
    assert spec.text.startswith("[0:v]split")


def test_ffmpeg_doc_color_overlay_with_spaces():
    text = "color=c=red@0.2:s=qcif:r=10 [color]; [in][color] overlay [out]"
    spec = parse_graph(text)
    assert shape(spec) == [
        [("color", "", [], [("c", "red@0.2"), ("s", "qcif"), ("r", "10")], [], ["color"])],
        [("overlay", "", [], [], ["in", "color"], ["out"])],
    ]
    color, overlay = spec.filters()
    assert color.column == 0 and overlay.column == text.index("overlay")
    assert [lb.column for lb in overlay.in_labels] == [text.index("[in]"), text.rindex("[color]")]
    assert color.arg_columns == [6, 16, 23]
    assert not color.is_native


def test_ffmpeg_doc_mirror_chain():
    spec = parse_graph("split [main][tmp]; [tmp] crop=iw:ih/2:0:0, vflip [flip]; [main][flip] overlay=0:H/2")
    assert [[f.name for f in c] for c in spec.chains] == [["split"], ["crop", "vflip"], ["overlay"]]
    assert spec.chains[1][0].positional == ["iw", "ih/2", "0", "0"]
    assert spec.chains[2][0].positional == ["0", "H/2"]


def test_design_example_native_names():
    spec = parse_graph("[0]dtgan.dynamics[d];[1][d]dtgan.transfer,scale=256:256[out]")
    dyn, transfer, scale = spec.filters()
    assert dyn.is_native and transfer.is_native and not scale.is_native
    assert len(spec.chains[1]) == 2 and scale.out_labels[0].name == "out"


def test_whitespace_is_ignored_around_everything():
    tight = parse_graph("[a]x=1:k=v[b];[b]y,z")
    loose = parse_graph(" \n [ a ]\tx = 1 : k = v [ b ] ;\r\n [b] y ,  z  ")
    assert shape(tight) == shape(loose)


@pytest.mark.parametrize("text", ["a,", "a;", "a , ", "a ;\n", "[x]a[y];"])
def test_a_single_trailing_separator_is_tolerated_like_ffmpeg(text):
    assert len(parse_graph(text).filters()) == 1


@pytest.mark.parametrize("text, label", [
    ("[a/b]null", "a/b"), ("[my label]null", "my label"), ("[a+b]null", "a+b"),
    ("[ \u00e9\u65e5 ]null", "\u00e9\u65e5"), ("[a,b;c=d@e[f]null", "a,b;c=d@e[f"),
    ("['a]b']null", "a]b"), ("[a\\]b]null", "a]b"), ("[' x ']null", " x "), ("[0:v:0]null", "0:v:0"),
])
def test_labels_take_any_character_but_an_unescaped_closing_bracket(text, label):
    # FFmpeg's parse_link_name is av_get_token(..., "]"): quotes and backslashes as in values
    node = one(text)
    assert node.in_labels[0].name == label
    assert one(to_string(parse_graph(text))).in_labels[0].name == label


def test_escape_label():
    assert escape_label("0:v") == "0:v" and escape_label("a/b+c") == "a/b+c"
    assert escape_label("a]b") == "a\\]b" and escape_label(" x ") == "\\ x\\ "
    assert escape_label("it's") == "it\\'s" and escape_label("a\\b") == "a\\\\b"
    with pytest.raises(GraphError):
        escape_label("")


def test_a_runaway_label_hints_at_a_missing_bracket():
    with pytest.raises(GraphError) as info:
        parse_graph("[0]null[a;[a]null")
    assert info.value.hint == "is a ']' missing? the label [a;[a] runs on to here"


@pytest.mark.parametrize("text, flags, first", [
    ("sws_flags=bicubic;[0]scale=64:64[out]", "bicubic", "scale"),
    (" \n sws_flags= lanczos+accurate_rnd ;\n scale=64:64", "lanczos+accurate_rnd", "scale"),
    ("sws_flags=;null", "", "null"),
    ("sws_flags=bicubic:param0=2;null", "bicubic:param0=2", "null"),
    ("sws_flags='a b';null", "'a b'", "null"),
    ("sws_flags=a\\ ;null", "a\\ ", "null"),  # an escaped space is kept
    ("null", None, "null"),
    ("sws_flagsx=1;null", None, "sws_flagsx"),  # not the exact prefix: a filter name
])
def test_sws_flags_header(text, flags, first):
    spec = parse_graph(text)
    assert spec.sws_flags == flags and spec.filters()[0].name == first
    canonical = to_string(spec)
    assert canonical.startswith(f"sws_flags={flags};" if flags is not None else first)
    assert full(parse_graph(canonical)) == full(spec) and to_string(parse_graph(canonical)) == canonical


def test_sws_options_are_what_ffmpeg_sets_on_scale():
    assert sws_options("bicubic") == [("flags", "bicubic")]
    assert sws_options(" bicubic : param0 = 2 ") == [("flags", "bicubic"), ("param0", "2")]
    assert sws_options("flags=lanczos") == [("flags", "flags=lanczos")]  # as FFmpeg reads it
    assert sws_options("'a:b'") == [("flags", "a:b")]
    with pytest.raises(GraphError, match="'x' is not key=value"):
        sws_options("bicubic:x")


def test_plain_chain_carries_the_header_to_the_ffmpeg_process():
    spec = parse_graph("sws_flags=bicubic;[0]scale=64:64,hflip[out]")
    assert plain_chain(spec, spec.filters()) == "sws_flags=bicubic;scale=64:64,hflip"
    spec = parse_graph("[0]scale=64:64[out]")
    assert plain_chain(spec, spec.filters()) == "scale=64:64"


def test_instance_id_is_kept_apart_from_the_name():
    node = one("dtgan.smooth@jitter.2=0.5")
    assert (node.name, node.instance, node.positional) == ("dtgan.smooth", "jitter.2", ["0.5"])
    assert node.is_native
    assert to_string(parse_graph("scale@my-id=1:2")) == "scale@my-id=1:2"


@pytest.mark.parametrize("text, positional, named", [
    # both levels: level 1 keeps the backslash inside quotes, level 2 unescapes ':'
    ("drawtext=text='a\\:b':x=1", [], {"text": "a:b", "x": "1"}),
    ("dtgan.load=file='my file;1.dyn.safetensors'", [], {"file": "my file;1.dyn.safetensors"}),
    # FFmpeg's "Notes on filtergraph escaping" example, written as its documentation does
    ("drawtext=text=this is a \\\\\\'string\\\\\\'\\\\: may contain one\\, or more\\, special characters",
     [], {"text": "this is a 'string': may contain one, or more, special characters"}),
    ("x=a\\\\:b", ["a:b"], {}),            # level 1 \\ -> \, level 2 \: -> :
    ("x='[0\\:v];,'", ["[0:v];,"], {}),     # quotes protect graph specials...
    ("x='[0:v];,'", ["[0", "v];,"], {}),    # ...but not option specials: level 2 splits
    ("x=a\\,b", ["a,b"], {}),              # a backslash does too
    ("x=a\\\\=b", ["a=b"], {}),            # escaped '=' is not a key
    ("x='a\\=b'", ["a=b"], {}),            # nor is one escaped inside quotes
    ("x='a=b'", [], {"a": "b"}),           # quoted only at level 1 it is still a key
    ("x=a b=c", ["a b=c"], {}),           # 'a b' is not a key: FFmpeg reads one positional
    ("x=k==v", [], {"k": "=v"}),
    ("x=  '  a b '  ", ["a b"], {}),        # level-1 quotes do not survive to level 2
    ("x='\\ a\\ '", [" a "], {}),           # level-2 escapes keep edge spaces
    ("x=k=", [], {"k": ""}),               # key= is the empty value
    ("x=", [], {}),                        # no options at all
    ("x=:", [""], {}),                     # one empty positional
    ("x=a:", ["a"], {}),                   # a trailing ':' is absorbed
    ("x=a::", ["a", ""], {}),
    ("x=:a", ["", "a"], {}),
    ("x=k=1:", [], {"k": "1"}),
    ("x=\\'\\'", [""], {}),                 # how to_string writes an empty positional
    ("x=p:q=1:r=2", ["p"], {"q": "1", "r": "2"}),
    ("x= k = v ", [], {"k": "v"}),
    ("x=/path=f.txt", [], {"/path": "f.txt"}),
    ("x=caf\u00e9:\u65e5\u672c", ["caf\u00e9", "\u65e5\u672c"], {}),
])
def test_option_values_are_unescaped_at_both_levels(text, positional, named):
    node = one(text)
    assert node.positional == positional
    assert node.named == named
    assert len(node.arg_columns) == len(positional) + len(named)


def test_arg_columns_point_at_each_option():
    text = "x=p:q='a\\:b': r=2"
    node = one(text)
    assert [text[c] for c in node.arg_columns] == ["p", "q", "r"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, message, column", [
    ("", "empty graph", 0),
    ("  \n ", "empty graph", 0),
    ("a,,b", "empty filter before ','", 2),
    ("a , , b", "empty filter before ','", 4),
    (",a", "empty filter before ','", 0),
    (";a", "empty filter before ';'", 0),
    ("a;;", "empty filter before ';'", 2),
    ("a,;", "empty filter before ';'", 2),
    ("[a]", "missing filter name after label [a]", 3),
    ("[a] ;b", "missing filter name after label [a]", 4),
    ("=x", "missing filter name before '='", 0),
    ("[in]=x", "missing filter name before '='", 4),
    ("@x", "missing filter name before '@'", 0),
    ("a@", "empty instance id after 'a@'", 2),
    ("a@b@c", "bad character '@' in filter name", 3),
    ("a[b", "unbalanced '['", 1),
    ("[a,b", "unbalanced '['", 0),
    ("a]", "unbalanced ']'", 1),
    ("]", "unbalanced ']'", 0),
    ("null[a]]", "unbalanced ']'", 7),
    ("x=1]", "unbalanced ']'", 3),
    ("[]x", "empty label '[]'", 0),
    ("x[ ]", "empty label '[]'", 1),
    ("[a'b]x", "unterminated quote", 2),
    ("[a\\", "trailing backslash", 2),
    ("[0]null[a;[a]null", "unexpected 'n' after filter 'null'", 13),
    ("sws_flags=bicubic", "the sws_flags header is not terminated with ';'", 0),
    ("  sws_flags=bicubic,null", "the sws_flags header is not terminated with ';'", 2),
    ("sws_flags=bicubic;", "empty graph", 18),
    ("sws_flags =bicubic;null", "'sws_flags' is the graph header, not a filter", 0),
    ("null;sws_flags=bicubic;null", "'sws_flags' is the graph header, not a filter", 5),
    ("sws_flags=a;sws_flags=b;null", "'sws_flags' is the graph header, not a filter", 12),
    ("[0]sws_flags=bicubic;null", "'sws_flags' is the graph header, not a filter", 3),
    ("sws_flags=bicubic:lanczos;null", "sws_flags: 'lanczos' is not key=value", 18),
    ("sws_flags=bicubic: =1;null", "sws_flags: '' is not key=value", 18),
    ("sca'le", "bad character \"'\" in filter name", 3),
    ("sc\u00e4le", "bad character '\u00e4' in filter name", 2),
    ("scale 720:576", "unexpected text after filter name 'scale'", 6),
    ("[a]x[b]y", "unexpected 'y' after filter 'x'", 7),
    ("x='abc", "unterminated quote", 2),
    ("x=\\'abc", "unterminated quote in an option value", 3),
    ("x=abc\\", "trailing backslash", 5),
    ("x='abc\\'", "trailing backslash of an option value", 6),
    ("x=k=1:2", "positional option after named option 'k'", 6),
    ("x=k=1: 2", "positional option after named option 'k'", 7),
    ("x=k=1::", "positional option after named option 'k'", 6),
    ("x=k=1:k=2", "option 'k' given twice", 6),
    ("x==1", "missing option name before '='", 2),
    ("x=a:=1", "missing option name before '='", 4),
])
def test_parse_errors_say_what_and_where(text, message, column):
    with pytest.raises(GraphError) as info:
        parse_graph(text)
    err = info.value
    assert err.message == message
    assert err.column == column
    assert err.hint, "every parse error says how to fix it"
    assert err.text == text
    assert "\n" not in str(err)
    assert isinstance(err, UsageError) and err.exit_code == 2


def test_error_hints_say_how_to_fix():
    with pytest.raises(GraphError) as info:
        parse_graph("[0]scale=64:64[a")
    assert str(info.value) == "unbalanced '[' at column 15 (add ']' to close the label)"
    with pytest.raises(GraphError) as info:
        parse_graph(",a")
    assert "remove the leading ','" in str(info.value)


def test_pretty_shows_the_graph_with_a_caret():
    # the CLI prints str(err) on stderr; with --verbose it prints err.pretty()
    text = "[0]dtgan.dynamics[d];[1][d]dtgan.transfer,,scale=64:64"
    with pytest.raises(GraphError) as info:
        parse_graph(text)
    err = info.value
    lines = err.pretty().split("\n")
    assert lines[0] == str(err) == "empty filter before ',' at column 43 (remove the extra ',')"
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * 42 + "^"
    assert lines[1][lines[2].index("^")] == ","


def test_pretty_caret_stays_aligned_for_multiline_graphs():
    text = "[0]null[a];\n[a]null[a"
    with pytest.raises(GraphError) as info:
        parse_graph(text)
    _, shown, caret = info.value.pretty().split("\n")
    assert shown[caret.index("^")] == "["
    assert info.value.column == text.rindex("[")


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_graph(b"null")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("value, positional, written", [
    ("plain", False, "plain"),
    ("a:b", False, "'a\\:b'"),
    ("my file;1.dyn.safetensors", False, "'my file;1.dyn.safetensors'"),
    ("it's", False, "it\\\\\\'s"),
    ("", False, ""),
    ("", True, "\\'\\'"),
    ("a=b", False, "a=b"),
    ("a=b", True, "'a\\=b'"),
    (" x ", False, "'\\ x\\ '"),
    ("[0:v]", False, "'[0\\:v]'"),
    ("C:\\dir", False, "'C\\:\\\\dir'"),
])
def test_escape_option_value(value, positional, written):
    assert escape_option_value(value, positional=positional) == written
    node = one(f"x={written}") if positional else one(f"x=k={written}")
    assert (node.positional if positional else [node.named["k"]]) == [value]


def test_to_string_is_canonical():
    text = " [ 0:v ] split = 2 [a] [b] ; [a] drawtext = text='a\\:b' : x = 1 [c] ;[b][c] hstack "
    assert to_string(parse_graph(text)) == "[0:v]split=2[a][b];[a]drawtext=text='a\\:b':x=1[c];[b][c]hstack"


@pytest.mark.parametrize("text", [
    "[0:v]split=2[a][b];[a]scale=100:-1[c];[b]hflip[d];[c][d]hstack",
    "color=c=red@0.2:s=qcif:r=10 [color]; [in][color] overlay [out]",
    "drawtext=text=this is a \\\\\\'string\\\\\\'\\\\: may contain one\\, or more\\, special characters",
    "x=a::,y=:,z=k=:j= \\  ",
    "x@i=''':'",
])
def test_round_trip_and_idempotence_on_examples(text):
    spec = parse_graph(text)
    canonical = to_string(spec)
    assert full(parse_graph(canonical)) == full(spec)
    assert to_string(parse_graph(canonical)) == canonical


def test_format_filter_without_labels_for_an_ffmpeg_chain():
    node = one("[a]scale=w=256:h='iw*2'[b]")
    assert format_filter(node) == "[a]scale=w=256:h=iw*2[b]"
    assert format_filter(node, labels=False) == "scale=w=256:h=iw*2"


@pytest.mark.parametrize("spec", [
    GraphSpec(chains=[]),
    GraphSpec(chains=[[]]),
    GraphSpec(chains=[[FilterNode(name="bad name", column=0)]]),
    GraphSpec(chains=[[FilterNode(name="x", column=0, instance="a@b")]]),
    GraphSpec(chains=[[FilterNode(name="x", column=0, named={"k=": "v"})]]),
    GraphSpec(chains=[[FilterNode(name="x", column=0, out_labels=[Label("", 0)])]]),
    GraphSpec(chains=[[FilterNode(name="x", column=0)]], sws_flags="a;b"),
])
def test_to_string_refuses_specs_it_cannot_write(spec):
    with pytest.raises(GraphError):
        to_string(spec)


# --------------------------------------------------------------------------- links

DTGAN_PADS = pads_from({"dtgan.dynamics": (1, 1), "dtgan.transfer": (2, 1), "scale": (1, 1),
                        "dtgan.save": (1, 0), "dtgan.load": (0, 1)})


def test_design_example_links():
    spec = parse_graph("[0]dtgan.dynamics[d];[1][d]dtgan.transfer,scale=256:256")
    edges = resolve_links(spec, ["0", "1"], ["out"], pads=DTGAN_PADS)
    assert links(edges) == {("0", 0, 0, 0), (0, 0, 1, 1), ("1", 0, 1, 0), (1, 0, 2, 0),
                            (2, 0, "out", 0)}
    by_dst = {(e.dst, e.dst_pad): e for e in edges}
    assert by_dst[(1, 1)].label == "d" and by_dst[(2, 0)].label is None
    assert by_dst[("out", 0)].to_output and by_dst[(0, 0)].from_input
    assert topological_order(spec, edges) == [0, 1, 2]


def test_labelled_output_and_default_output_are_the_same_link():
    unlabelled = resolve_links(parse_graph("[0]dtgan.dynamics[d];[1][d]dtgan.transfer"),
                               pads=DTGAN_PADS)
    labelled = resolve_links(parse_graph("[0]dtgan.dynamics[d];[1][d]dtgan.transfer[out]"),
                             pads=DTGAN_PADS)
    assert links(unlabelled) == links(labelled)
    assert (1, 0, DEFAULT_OUTPUT, 0) in links(labelled)


def test_ffmpeg_chain_rule_unlabelled_outputs_feed_unlabelled_inputs():
    # FFmpeg's documented example, closed by a second chain: split's second (unlabelled)
    # output feeds overlay's second (unlabelled) input
    spec = parse_graph("nullsrc, split[L1], [L2]overlay, nullsink; [L1]null[L2]")
    pads = pads_from({"nullsrc": (0, 1), "split": (1, 2), "overlay": (2, 1), "nullsink": (1, 0),
                      "null": (1, 1)})
    edges = resolve_links(spec, [], [], pads=pads)
    assert links(edges) == {(0, 0, 1, 0), (1, 0, 4, 0), (4, 0, 2, 0), (1, 1, 2, 1), (2, 0, 3, 0)}
    order = topological_order(spec, edges)
    assert order.index(4) < order.index(2) and order[0] == 0


def test_ffmpeg_doc_graphs_resolve_with_their_pads():
    spec = parse_graph("[0:v]split=2[a][b];[a]scale=100:-1[c];[b]hflip[d];[c][d]hstack")
    edges = resolve_links(spec, ["0"], ["out"], pads=guess_pads)
    assert ("0:v", 0, 0, 0) in links(edges) and (3, 0, "out", 0) in links(edges)
    assert len(edges) == 6

    spec = parse_graph("color=c=red@0.2:s=qcif:r=10 [color]; [in][color] overlay [out]")
    pads = pads_from({"color": (0, 1), "overlay": (2, 1)})
    edges = resolve_links(spec, ["in"], ["out"], pads=pads)
    assert links(edges) == {(0, 0, 1, 1), ("in", 0, 1, 0), (1, 0, "out", 0)}


def test_unlabelled_inputs_read_the_unused_inputs_in_order():
    spec = parse_graph("[1]dtgan.dynamics[d];[d]dtgan.transfer")
    pads = pads_from({"dtgan.dynamics": (1, 1), "dtgan.transfer": (2, 1)})
    # transfer's pad 0 has [d]; its open pad 1 reads the first input no label names: 0
    assert ("0", 0, 1, 1) in links(resolve_links(spec, pads=pads))
    assert ("src", 0, 1, 1) in links(resolve_links(spec, ["src", "1"], pads=pads))
    with pytest.raises(GraphError) as info:
        resolve_links(spec, ["1"], pads=pads)
    assert info.value.message == "input pad 1 of 'dtgan.transfer' is not connected (every input is already used)"
    assert info.value.column == spec.filters()[1].column
    with pytest.raises(GraphError, match="unlabelled inputs are off"):
        resolve_links(spec, ["0", "1"], auto_inputs=False, pads=pads)


def test_first_filter_reads_the_first_input():
    spec = parse_graph("scale=64:64,hflip")
    assert links(resolve_links(spec, ["0"], ["out"])) == {("0", 0, 0, 0), (0, 0, 1, 0), (1, 0, "out", 0)}


def test_input_references():
    assert is_input_reference("0") and is_input_reference("12:v:0")
    assert not is_input_reference("a") and not is_input_reference("0a")
    assert is_input_reference("src:v", ["src"]) and is_input_reference("src", ["src"])
    assert not is_input_reference("2", ["0", "1"])
    spec = parse_graph("[0:v][0:v]hstack")  # an input may be read more than once
    assert links(resolve_links(spec, ["0"], ["out"], pads=guess_pads)) == {
        ("0:v", 0, 0, 0), ("0:v", 0, 0, 1), (0, 0, "out", 0)}


def link_error(text: str, inputs=None, outputs=None, pads=guess_pads, **kw) -> GraphError:
    with pytest.raises(GraphError) as info:
        resolve_links(parse_graph(text), inputs, outputs, pads=pads, **kw)
    err = info.value
    assert err.text == text and err.column is not None and 0 <= err.column <= len(text)
    assert err.hint and "\n" not in str(err)
    return err


@pytest.mark.parametrize("text, inputs, outputs, message, column", [
    ("[0]split[a][b];[a]null[c];[a]null[d];[b][c][d]mix", None, None,
     "label [a] is used as an input twice", 26),
    ("[0]null[a];[1]null[a]", None, None, "label [a] is defined twice (first by 'null')", 18),
    ("[0]null[a];[a]null[a];[a]null;[a]null", None, None,
     "label [a] is used as an input twice", 30),
    ("[x]null", None, None, "label [x] is used but nothing produces it", 0),
    ("[2]null", ["0", "1"], None, "label [2] is used but nothing produces it", 0),
    ("[0]null[a];[0]null[b]", ["0"], ["a"], "label [b] is produced but never used", 18),
    ("[0]null[1]", None, None, "label [1] names an input and cannot be a filter output", 7),
    ("[0]null[src]", ["0", "src"], None, "label [src] names an input and cannot be a filter output", 7),
    ("[0]null[out];[out]null", ["0"], ["out"], "label [out] names an output but is also a filter input", 7),
    ("[0]null", ["0"], ["a", "b"], "output 'b' receives nothing from the graph", 7),
    ("[0]null[a];[0]null", ["0"], ["a"], "output pad 0 of 'null' is not connected", 14),
    ("[a]x[b];[b]y[a]", None, None,
     "cycle in the graph: [a] feeds 'x' from 'y', which depends on it", 0),
    ("[a]x,y[a]", None, None, "cycle in the graph: [a] feeds 'x' from 'y', which depends on it", 0),
])
def test_link_errors(text, inputs, outputs, message, column):
    err = link_error(text, inputs, outputs)
    assert err.message == message
    assert err.column == column


def test_undefined_label_hint_lists_the_inputs():
    err = link_error("[2]null", ["0", "1"])
    assert err.hint == "produce it with a filter output [2] or use an input: [0], [1]"


def test_pad_count_errors():
    pads = pads_from({"split": (1, 2), "null": (1, 1), "src": (0, 1)})
    err = link_error("[0]null[a][b]", pads=pads)
    assert err.message == "too many output labels for 'null': it has 1 output pad(s)" and err.column == 10
    err = link_error("[0][1]null", pads=pads)
    assert err.message == "too many input labels for 'null': it has 1 input pad(s)" and err.column == 3
    err = link_error("[0]split,null", pads=pads)
    assert err.message == "'split' has 2 unlabelled output(s) but 'null' after it takes only 1"
    assert err.column == 9
    err = link_error("[0]src", pads=pads)
    assert err.message.startswith("too many input labels for 'src'")
    with pytest.raises(ValueError):
        resolve_links(parse_graph("null"), pads=lambda node: (-1, 1))


def test_check_links_without_pads_checks_labels_only():
    check_links(parse_graph("[0]split[a][b];[a]null[c];[b][c]hstack"))
    check_links(parse_graph("[0]split[a][b];[a]null;[b]null"), ["0"], ["out"])  # unlabelled: unknown
    with pytest.raises(GraphError, match=r"cycle in the graph: \[a\]"):
        check_links(parse_graph("[a]x[b];[b]y[a]"))
    with pytest.raises(GraphError, match=r"label \[b\] is produced but never used"):
        check_links(parse_graph("[0]split[a][b];[a]null[out]"), ["0"], ["out"])
    with pytest.raises(GraphError, match="is used as an input twice"):
        check_links(parse_graph("[0]null[a];[a]null;[a]null"))
    # with pads it is the full resolution
    with pytest.raises(GraphError, match="not connected"):
        check_links(parse_graph("[0]null[a];[0]null"), ["0"], ["a"], pads=guess_pads)


def test_reused_label_names_are_matched_in_order_like_ffmpeg():
    # issue 17: split's [a] feeds flip, flip's output [a] is stack's first input
    spec = parse_graph("[0]dtgan.split[a][b];[a]dtgan.flip[a];[a][b]dtgan.stack[out]")
    pads = pads_from({"dtgan.split": (1, 2), "dtgan.flip": (1, 1), "dtgan.stack": (2, 1)})
    assert links(resolve_links(spec, ["0"], None, pads=pads)) == {
        ("0", 0, 0, 0), (0, 0, 1, 0), (1, 0, 2, 0), (0, 1, 2, 1), (2, 0, "out", 0)}
    # scale2ref's idiom: the same names in and out of one filter
    spec = parse_graph("[0]split[main][ref];[main][ref]s2r[main][ref];[main][ref]hstack")
    pads = pads_from({"split": (1, 2), "s2r": (2, 2), "hstack": (2, 1)})
    assert links(resolve_links(spec, ["0"], ["out"], pads=pads)) == {
        ("0", 0, 0, 0), (0, 0, 1, 0), (0, 1, 1, 1), (1, 0, 2, 0), (1, 1, 2, 1), (2, 0, "out", 0)}


def test_label_matching_follows_ffmpeg_visiting_order():
    # a consumer before its producer (forward reference) links to the first producer after it
    spec = parse_graph("[x]hflip[y];[0]null[x];[y]null[x];[x]vflip")
    edges = links(resolve_links(spec, ["0"], ["out"]))
    assert edges == {(1, 0, 0, 0), ("0", 0, 1, 0), (0, 0, 2, 0), (2, 0, 3, 0), (3, 0, "out", 0)}
    # an output label takes the first free input of its name at or after its filter
    spec = parse_graph("[0]null[a];[a]null[b];[a]null;[1]null[a]")
    assert links(resolve_links(spec, ["0", "1"], ["b", "out"])) == {
        ("0", 0, 0, 0), (0, 0, 1, 0), (1, 0, "b", 0), (3, 0, 2, 0), ("1", 0, 3, 0),
        (2, 0, "out", 0)}
    # a label on a filter's own input and output is a loop, as in FFmpeg
    with pytest.raises(GraphError, match="cycle"):
        resolve_links(parse_graph("[a]null[a]"))


def test_reused_label_errors_point_at_the_extra_use():
    text = "[0]split[a][b];[a]null[a];[b]null[a]"
    err = link_error(text)
    assert err.message == "label [a] is defined twice (first by 'null')"
    assert err.column == text.rindex("[a]")
    text = "[0]null[a];[a]null[a];[a]null[a];[a]null;[a]null"
    err = link_error(text)
    assert err.message == "label [a] is used as an input twice" and err.column == text.rindex("[a]")


def test_topological_order_rejects_cycles():
    spec = parse_graph("[a]x[b];[b]y[a]")
    edges = [Edge(0, 0, 1, 0, "b", 7), Edge(1, 0, 0, 0, "a", 0)]
    with pytest.raises(GraphError, match="cycle"):
        topological_order(spec, edges)


def test_long_chains_do_not_recurse():
    text = "[0]" + ",".join(["null"] * 3000)
    spec = parse_graph(text)
    edges = resolve_links(spec, ["0"], ["out"])
    assert topological_order(spec, edges) == list(range(3000))


# --------------------------------------------------------------------------- fuzzing

NASTY = list("[]=:,;'\\ \t\n\r@.-_ab0x\u00e9\u65e5\x00\u2028")
any_text = st.text(alphabet=st.one_of(st.sampled_from(NASTY), st.characters()), max_size=40)


@FUZZ
@given(any_text)
def test_fuzz_parse_gives_a_spec_or_a_graph_error(text):
    try:
        spec = parse_graph(text)
    except GraphError as err:
        assert err.column is not None and 0 <= err.column <= len(text)
        assert err.text == text and "\n" not in str(err)
        return
    assert spec.filters()
    for node in spec.filters():
        assert text.startswith(node.name, node.column)
        for label in (*node.in_labels, *node.out_labels):
            assert text[label.column] == "["
    # whatever parses also writes and re-parses to the same structure
    canonical = to_string(spec)
    assert full(parse_graph(canonical)) == full(spec)


@FUZZ
@given(any_text)
def test_fuzz_link_checks_give_links_or_a_graph_error(text):
    try:
        spec = parse_graph(text)
        resolve_links(spec, pads=guess_pads)
    except GraphError as err:
        assert err.column is not None and 0 <= err.column <= len(text)
        assert err.pretty().startswith(str(err))


def _words(chars: frozenset[str], max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=sorted(chars), min_size=1, max_size=max_size)


# mixing per value, not per character, keeps generation cheap
values = st.one_of(st.text(alphabet="".join(NASTY), max_size=12),
                   st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8))
labels = st.one_of(_words(LABEL_CHARS, 6), st.text(alphabet=st.one_of(
    st.sampled_from(NASTY), st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=6)
).map(lambda name: Label(name, 0))
nodes = st.builds(
    FilterNode,
    name=_words(NAME_CHARS, 8),
    column=st.just(0),
    instance=st.one_of(st.just(""), _words(NAME_CHARS, 4)),
    positional=st.lists(values, max_size=3),
    named=st.dictionaries(_words(KEY_CHARS, 5), values, max_size=3),
    in_labels=st.lists(labels, max_size=2),
    out_labels=st.lists(labels, max_size=2),
)
specs = st.builds(GraphSpec, chains=st.lists(st.lists(nodes, min_size=1, max_size=3), min_size=1, max_size=3),
                  sws_flags=st.sampled_from([None, "", "bicubic", "lanczos+accurate_rnd:param0=2"]))


@settings(FUZZ, max_examples=150)  # each example draws ~40 values: generation dominates
@given(specs)
def test_fuzz_generated_graphs_round_trip(spec):
    canonical = to_string(spec)
    reparsed = parse_graph(canonical)
    assert full(reparsed) == full(spec)
    assert to_string(reparsed) == canonical


# --------------------------------------------------------------------------- against FFmpeg

_SETTING = re.compile(r"^\[AVFilterGraph @ \w+\] Setting '([^']+)' to value '(.*)'$", re.M)


def test_escaping_agrees_with_real_ffmpeg():
    """FFmpeg itself parses our canonical strings to the values we meant (one ffmpeg run)."""
    rng = random.Random(1234)
    alphabet = list("[]=:,;'\\ \t@.-_ab\u00e9")
    fixed = ["", " ", "a:b", "it's", "\\", "'", "''", "x=y", " lead", "trail ", "[0:v]", ";", ",",
             "a\\:b", "\t", "my file;1.dyn.safetensors", "k=v:w=z", "\\'\\"]
    vals = fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10))) for _ in range(60)]
    chain = [FilterNode("nullsrc", 0, named={"s": "16x16", "d": "0.04"})]
    expected = ["16x16", "0.04"]
    for i, value in enumerate(vals):
        # metadata's 'value' takes any string by name; format's first two options take any
        # string positionally (they are validated only at init, after FFmpeg logs them)
        chain.append(FilterNode("metadata", 0, named={"mode": "add", "key": f"k{i}", "value": value}))
        expected += ["add", f"k{i}", value]
    for a, b in zip(vals[::2], vals[1::2]):
        chain.append(FilterNode("format", 0, positional=[a, b]))
        expected += [a, b]
    text = to_string(GraphSpec([chain]))
    assert [v for f in parse_graph(text).filters() for v in (*f.positional, *f.named.values())] == expected
    proc = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "debug", "-filter_complex",
                           text, "-f", "null", "-"], capture_output=True, timeout=60)
    got = [m.group(2) for m in _SETTING.finditer(proc.stderr.decode("utf-8", "replace"))]
    assert got == expected
