"""Our parser against the bundled ffmpeg on graphs written here, in FFmpeg's own style.

Each graph below exercises something FFmpeg's test filtergraphs rely on (the ``sws_flags``
header, multi-line and indented options, spaces around ``:``, escaped commas, quoted
arguments, stream specifiers, reused labels, ``|`` lists, free-form labels). ffmpeg runs each
one on a one-frame ``testsrc``; from its ``-v debug`` log we take every option value it sets
(and the options the header gives each ``scale``), and from ``-print_graphs_file`` every
link it made. Both must match what :func:`parse_graph` and :func:`resolve_links` say.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dtgan_plugin.errors import DtganError
from dtgan_plugin.graph.ast import FilterNode, GraphSpec
from dtgan_plugin.graph.parser import parse_graph, resolve_links, sws_options, to_string
from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

GRAPHS = {
    "header": "sws_flags=lanczos+accurate_rnd:param0=3;[0:v]scale=w=48:h=40,hflip",
    "header_spaced": "  sws_flags= bicubic ;\n[0]scale=40:24",
    "multiline_indented": """
        [0:v]
          scale=
            w=40:
            h=24 ,
          drawbox=
            x=2 :
            y=3:
            w = 10:
            h=8:
            color=red@0.5 ,
          pad = 48 : 32 : 4 : 4
    """,
    "spaces_around_colons": "[0]crop = 16 : 16 : 2 : 4 , pad=w=40 : h = 40 : x=iw/4 :y=0",
    "escaped_commas": r"[0]select=between(n\,0\,10),setpts=PTS-STARTPTS,"
                      r"metadata=mode=add:key=k:value=a\,b\;c",
    "quoted_arguments": "[0]metadata=mode=add:key=q:value='x, y; [z] a\\:b',"
                        "geq=lum='p(X,Y)':cb=128:cr=128,"
                        r"metadata=mode=add:key=it:value=it\\\'s",
    "stream_specifiers": "[0:v:0]split[l][r];[l][r]hstack;",
    "reused_labels": "[0]split[a][b];[a]hflip[a];[a][b]hstack",
    "reused_labels_long": "[0:v]split=3[a][b][c];[a]hflip[a];[b]vflip[b];[a][b]hstack[a];"
                          "[c]scale=64:32[c];[a][c]vstack",
    "forward_references": "[x]hflip[y];[0]null[x];[y]null[x];[x]vflip",
    "pipe_lists": "[0]split[l][r];[l][r]xstack=inputs=2:layout=0_0|w0_0,"
                  "format=pix_fmts=yuv420p|yuv444p",
    "free_form_labels": "[0]split[a/b][my label];[a/b]hflip[x+1];[ x+1 ][my label]hstack",
    "instances_and_unlabelled_input": "null@first,hflip@h,scale@s=32:-2",
}

_SECTION = re.compile(r"^Applying option filter_complex .*?$(.*?)^Parsing a group of options",
                      re.M | re.S)
_GRAPH_SET = re.compile(r"^\[AVFilterGraph @ \w+\] Setting '([^']*)' to value '(.*)'$", re.M)
_SWS_SET = re.compile(r"^\[Parsed_scale_(\d+) @ \w+\] Setting entry with key '([^']*)' to "
                      r"value '(.*)'$", re.M)
_GRAPH_PREFIX = re.compile(r"^G\d+_")


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    try:
        return find_ffmpeg()
    except DtganError as err:
        pytest.skip(f"no ffmpeg binary to compare with: {err}")


@pytest.fixture(scope="module")
def ffmpeg_run(ffmpeg, tmp_path_factory):
    """``name -> (log, graph)``, each graph run once for both tests."""
    cache: dict[str, tuple[str, dict]] = {}

    def get(name: str) -> tuple[str, dict]:
        if name not in cache:
            cache[name] = run_ffmpeg(ffmpeg, GRAPHS[name], tmp_path_factory.mktemp(name))
        return cache[name]
    return get


def run_ffmpeg(ffmpeg: str, text: str, tmp_path: Path) -> tuple[str, dict]:
    """ffmpeg's debug log and its -print_graphs JSON for ``text`` on a one-frame testsrc."""
    graph_json = tmp_path / "graph.json"
    proc = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "debug", "-f", "lavfi",
                           "-i", "testsrc=s=32x32:d=0.04", "-filter_complex", text,
                           "-print_graphs_file", str(graph_json), "-print_graphs_format", "json",
                           "-f", "null", "-"], capture_output=True, timeout=60)
    log = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-2000:]
    return log, json.loads(graph_json.read_text())["graphs"][0]


def our_values(spec: GraphSpec) -> list[tuple[str | None, str]]:
    """(key, value) of every option in FFmpeg's order; positional values have no key here."""
    return [pair for node in spec.filters()
            for pair in [(None, v) for v in node.positional] + list(node.named.items())]


def ffmpeg_edges(spec: GraphSpec, graph: dict
                 ) -> tuple[set[tuple[int, int, int, int]], dict[int, tuple[int, int]]]:
    """Filter-to-filter links ffmpeg made (through the filters it inserted) and pad counts."""
    filters = {pad["filter_id"]: f for f in graph["filters"]
               for pad in (*f.get("filter_inputs", []), *f.get("filter_outputs", []))}
    # ffmpeg names our i-th filter Parsed_<name>_<i>, or <name>_<id> for name@id
    ids = {(f"{node.name}_{node.instance}" if node.instance else f"Parsed_{node.name}_{i}"): i
           for i, node in enumerate(spec.filters())}

    def index(fid: str) -> int | None:
        return ids.get(_GRAPH_PREFIX.sub("", fid))

    def follow(fid: str, pad_name: str) -> tuple[str, str]:
        # an inserted filter (auto_scale_N for format conversion) has one input and output
        while index(fid) is None and fid in filters and filters[fid].get("filter_outputs"):
            out = filters[fid]["filter_outputs"][0]
            fid, pad_name = out["dest_filter_id"], out["dest_pad_name"]
        return fid, pad_name

    edges, pads = set(), {}
    for fid, f in filters.items():
        src = index(fid)
        if src is None:
            continue
        pads[src] = (f["nb_inputs"], f["nb_outputs"])
        for out in f.get("filter_outputs", []):
            dst_id, dst_pad_name = follow(out["dest_filter_id"], out["dest_pad_name"])
            dst = index(dst_id)
            if dst is None:
                continue  # a graph output
            dst_pad = next(i["input_index"] for i in filters[dst_id]["filter_inputs"]
                           if i["pad_name"] == dst_pad_name)
            edges.add((src, out["output_index"], dst, dst_pad))
    return edges, pads


@pytest.mark.parametrize("name", GRAPHS)
def test_ffmpeg_sets_the_option_values_we_parse(ffmpeg_run, name):
    spec = parse_graph(GRAPHS[name])
    log, _ = ffmpeg_run(name)
    section = _SECTION.search(log)
    assert section, "the -v debug log has no filter_complex section"
    theirs = _GRAPH_SET.findall(section.group(1))
    ours = our_values(spec)
    assert [v for _, v in theirs] == [v for _, v in ours]
    assert all(key is None or key == their_key for (their_key, _), (key, _) in zip(theirs, ours))
    # the header: every scale filter gets exactly the pairs sws_options() gives
    scales = [i for i, node in enumerate(spec.filters()) if node.name == "scale"]
    entries: dict[int, list[tuple[str, str]]] = {}
    for idx, key, value in _SWS_SET.findall(section.group(1)):
        entries.setdefault(int(idx), []).append((key, value))
    expected = sws_options(spec.sws_flags) if spec.sws_flags is not None else None
    assert entries == ({i: expected for i in scales} if expected is not None else {})
    # what we write, ffmpeg reads the same way
    assert our_values(parse_graph(to_string(spec))) == ours


@pytest.mark.parametrize("name", GRAPHS)
def test_ffmpeg_links_the_labels_as_we_do(ffmpeg_run, name):
    spec = parse_graph(GRAPHS[name])
    _, graph = ffmpeg_run(name)
    edges, pads = ffmpeg_edges(spec, graph)
    index = {id(node): i for i, node in enumerate(spec.filters())}

    def pad_counts(node: FilterNode) -> tuple[int, int]:
        return pads[index[id(node)]]

    ours = {(e.src, e.src_pad, e.dst, e.dst_pad)
            for e in resolve_links(spec, ["0"], None, pads=pad_counts)
            if isinstance(e.src, int) and isinstance(e.dst, int)}
    assert ours == edges
    assert len(pads) == len(spec.filters())


def test_the_graphs_cover_what_they_claim():
    """Each feature named in the module docstring really occurs in the graphs above."""
    specs = {name: parse_graph(text) for name, text in GRAPHS.items()}
    assert specs["header"].sws_flags and specs["header_spaced"].sws_flags == "bicubic"
    assert "\n" in GRAPHS["multiline_indented"] and " : " in GRAPHS["spaces_around_colons"]
    assert "a,b;c" in [v for _, v in our_values(specs["escaped_commas"])]
    assert "x, y; [z] a:b" in [v for _, v in our_values(specs["quoted_arguments"])]
    labels = {lb.name for spec in specs.values() for node in spec.filters() for lb in node.in_labels}
    assert {"0:v", "0:v:0", "a/b", "x+1", "my label"} <= labels
    assert any("|" in v for _, v in our_values(specs["pipe_lists"]))
    reused = specs["reused_labels"].filters()
    assert [lb.name for lb in reused[1].out_labels] == ["a"] == [lb.name for lb in reused[1].in_labels]
