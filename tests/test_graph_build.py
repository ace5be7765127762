"""Graph building and validation: every malformed graph fails before decoding, at its column."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pluggy
import pytest
import torch

from dtgan_plugin.errors import GraphError, MediaError, UsageError
from dtgan_plugin.filters import basic
from dtgan_plugin.filters.base import Filter, Option, Pad
from dtgan_plugin.graph import Graph
from dtgan_plugin.graph import ffmpeg_filters as FF
from dtgan_plugin.graph import nodes as B
from dtgan_plugin.hooks import hookimpl, hookspecs
from dtgan_plugin.hooks.manager import Registry
from dtgan_plugin.stream import DynamicsChunk, PadKind, StreamInfo, VideoChunk


class Motion(Filter):
    """video → dynamics (the mean colour of each frame)."""

    name = "t.motion"
    inputs = (Pad("source", PadKind.VIDEO),)
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        return infos[0].with_(kind=PadKind.DYNAMICS, dim=3)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        for c in inputs[0]:
            yield DynamicsChunk(c.frames.mean(dim=(2, 3)), c.start, c.fps)


class Drive(Filter):
    """image + dynamics → video."""

    name = "t.drive"
    inputs = (Pad("target", PadKind.IMAGE), Pad("dynamics", PadKind.DYNAMICS))
    outputs = (Pad("video", PadKind.VIDEO),)
    options = (Option("gain", float, 1.0, "how much the dynamics tint the image"),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        img, dyn = infos
        return StreamInfo(PadKind.VIDEO, fps=dyn.fps, width=img.width, height=img.height,
                          num_frames=dyn.num_frames)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        image = next(iter(inputs[0])).image
        for d in inputs[1]:
            tint = d.vectors[:, :, None, None] * self.opts["gain"]
            yield VideoChunk((image[None] * 0.5 + tint * 0.5).clamp(0, 1), d.start, d.fps)


class StagesPlugin:
    @hookimpl
    def dtgan_register_filters(self, register):
        register(Motion)
        register(Drive)


@pytest.fixture(scope="module")
def reg() -> Registry:
    pm = pluggy.PluginManager("dtgan")
    pm.add_hookspecs(hookspecs)
    pm.register(basic, name="dtgan_plugin.filters.basic")
    pm.register(StagesPlugin(), name="test")
    return Registry(pm)


def fails(text: str, reg: Registry, **kw: Any) -> GraphError:
    with pytest.raises(GraphError) as info:
        Graph.parse(text, registry=reg, **kw)
    err = info.value
    assert err.text == text and err.column is not None
    assert "\n" not in str(err)  # one line for the CLI
    return err


# ----------------------------------------------------------------------------- stage names

def test_unknown_stage_did_you_mean(reg):
    err = fails("[0]dtgan.resise=32:32[out]", reg)
    assert err.column == 3
    assert "unknown stage 'dtgan.resise'" in err.message
    assert "did you mean 'dtgan.resize'" in str(err)
    assert err.pretty().splitlines()[-1] == "  " + " " * 3 + "^"


def test_unknown_stage_without_close_match_lists_how_to_find(reg):
    err = fails("[0]zz.qqqq[out]", reg)
    assert "dtgan filters" in str(err)


def test_plain_name_of_a_native_stage_suggests_the_stage(reg):
    if not FF.ffmpeg_filter_table():
        pytest.skip("no ffmpeg to list its filters")
    err = fails("[0]resize=32:32[out]", reg)
    assert err.column == 3 and "did you mean 'dtgan.resize'" in str(err)
    err = fails("[0]hfilp[out]", reg)
    assert "did you mean 'hflip'" in str(err)


# ----------------------------------------------------------------------------------- options

def test_unknown_option_points_at_the_option(reg):
    text = "[0]dtgan.resize=32:32:widht=3[out]"
    err = fails(text, reg)
    assert err.column == text.index("widht")
    assert "unknown option 'widht'" in err.message


def test_bad_option_type_points_at_the_value(reg):
    text = "[0]dtgan.resize=w=abc:h=2[out]"
    err = fails(text, reg)
    assert err.column == text.index("w=abc")
    assert "expects int" in err.message


def test_bad_positional_option_points_at_it(reg):
    text = "[0]dtgan.resize=32:x32[out]"
    err = fails(text, reg)
    assert err.column == text.index("x32")


def test_bad_choice_and_too_many_positionals(reg):
    text = "[0]dtgan.resize=32:32:mode=lanczos[out]"
    assert fails(text, reg).column == text.index("mode")
    text = "[0]dtgan.flip=h:v[out]"
    assert fails(text, reg).column == text.index("v[")


def test_cross_option_check_from_constructor_points_at_stage(reg):
    text = "[0]dtgan.trim=start=1:start_time=2[out]"
    err = fails(text, reg)
    assert err.column == 3 and "not both" in err.message


# ------------------------------------------------------------------------------------- links

def test_dangling_label(reg):
    text = "[0]dtgan.resize=32:32[a];[b]dtgan.flip[out]"
    err = fails(text, reg)
    assert err.column == text.index("[b]") and "[b]" in err.message


def test_produced_label_never_used_with_declared_outputs(reg):
    text = "[0]dtgan.resize=32:32[a];[0]dtgan.flip[out]"
    err = fails(text, reg, outputs=["out"])
    assert err.column == text.index("[a]")


def test_reused_label(reg):
    text = "[0]dtgan.resize=32:32[a];[a]dtgan.flip[b];[a]dtgan.crop=8:8[c]"
    err = fails(text, reg)
    assert err.column == text.rindex("[a]") and "twice" in err.message


def test_cycle(reg):
    text = "[a]dtgan.resize=32:32[b];[b]dtgan.flip[a]"
    err = fails(text, reg)
    assert "cycle" in err.message


def test_unbalanced_bracket(reg):
    text = "[0]dtgan.resize=32:32[out"
    err = fails(text, reg)
    assert err.column == text.index("[out") and "unbalanced" in err.message


def test_too_many_inputs_for_a_stage(reg):
    text = "[0][1]dtgan.resize=32:32[out]"
    err = fails(text, reg)
    assert err.column == text.index("[1]")
    text = "[0][1][2]dtgan.stack[out]"
    assert fails(text, reg).column == text.index("[2]")


def test_too_few_inputs_for_a_stage(reg):
    text = "[0]dtgan.stack[out]"
    err = fails(text, reg, inputs=["0"])
    assert err.column == 3 and "not connected" in err.message


def test_open_pad_reads_the_next_input_like_ffmpeg(reg):
    g = Graph.parse("[0]dtgan.stack[out]", registry=reg)
    assert g.inputs == ["0", "1"]


def test_non_video_stream_specifier(reg):
    text = "[0:a]dtgan.resize=32:32[out]"
    err = fails(text, reg)
    assert err.column == 0 and "--keep-audio" in str(err)
    assert Graph.parse("[0:v]dtgan.resize=32:32[out]", registry=reg).inputs == ["0"]


# ------------------------------------------------------------------------------------- kinds

def test_pad_kind_mismatch_names_both_kinds_and_the_stage(reg):
    text = "[0]t.motion[d];[d]dtgan.trim=end=3[out]"
    err = fails(text, reg)
    assert err.column == text.index("dtgan.trim")
    assert "'dtgan.trim'" in err.message and "video" in err.message
    assert "dynamics" in err.message and "'t.motion'" in err.message


def test_image_input_into_a_video_only_stage(reg, tmp_path):
    text = "[0]dtgan.trim=end=3[out]"
    err = fails(text, reg, inputs={"0": str(tmp_path / "face.png")})
    assert "takes video but gets image from input [0]" in err.message


def test_image_into_geometry_stage_stays_an_image(reg):
    g = Graph.parse("[tgt]dtgan.resize=16:16[t];[0]t.motion[d];[t][d]t.drive[out]",
                    inputs={"tgt": "a.png", "0": "b.mp4"}, registry=reg)
    kinds = g.check_kinds({"tgt": PadKind.IMAGE, "0": PadKind.VIDEO})
    assert PadKind.IMAGE in kinds.values() and PadKind.DYNAMICS in kinds.values()
    # the same graph fed a video where the image goes fails
    with pytest.raises(GraphError, match="takes image but gets video"):
        g.check_kinds({"tgt": PadKind.VIDEO, "0": PadKind.VIDEO})


def test_dynamics_cannot_be_encoded(reg):
    text = "[0]t.motion[out]"
    err = fails(text, reg)
    assert "dynamics" in err.message and "dtgan.save" in str(err)


def test_split_carries_any_kind(reg):
    g = Graph.parse("[0]t.motion,dtgan.split[d1][d2];[1][d1]t.drive[o1];[2][d2]t.drive[o2]",
                    inputs={"0": "s.mp4", "1": "a.png", "2": "b.png"}, registry=reg)
    assert g.outputs == ["o1", "o2"]
    # both drives read the motion stage itself: the split is wired through
    drives = [st for st in g.stages.values() if st.node.name == "t.drive"]
    assert {st.inputs[1] for st in drives} == {B.Stream("stage", 0, 0)}


def test_dynamics_file_as_input_is_refused(reg):
    with pytest.raises(UsageError, match="dtgan.load"):
        Graph.parse("[0]dtgan.flip[out]", inputs={"0": "x.dyn.safetensors"}, registry=reg)


# ------------------------------------------------------------------------------ plain filters

def test_plain_filter_between_native_stages(reg):
    text = "[0]dtgan.resize=32:32,hflip,dtgan.crop=16:16[out]"
    err = fails(text, reg)
    assert err.column == text.index("hflip")
    assert "no ffmpeg process" in err.message and "dtgan.flip" in str(err)


def test_plain_filter_with_two_inputs(reg):
    text = "[0][1]overlay[out]"
    err = fails(text, reg)
    assert err.column == text.index("[1]")
    if FF.ffmpeg_filter_table():
        text = "[0]overlay[out]"
        assert "VV->V" in fails(text, reg).message
        assert "audio" in fails("[0]volume=2[out]", reg).message


def test_plain_filters_fold_into_decoder_and_encoder(reg):
    g = Graph.parse("[0]hflip,scale=32:32,dtgan.crop=16:16,vflip,format=yuv420p[out]",
                    registry=reg)
    crop = next(st for st in g.stages.values())
    (src,) = crop.inputs
    assert src.origin == "input" and g._vf(src.plain) == "hflip,scale=32:32"
    out = g.output_streams["out"]
    assert out.origin == "stage" and g._vf(out.plain) == "vflip,format=yuv420p"
    plan = g.explain()
    assert "decode [0] with ffmpeg -vf hflip,scale=32:32" in plan
    assert plan[-1].endswith("with ffmpeg -vf vflip,format=yuv420p")


def test_plain_only_graph_is_hosted_by_the_decoder(reg):
    g = Graph.parse("[0]hflip[out]", registry=reg)
    assert g.output_streams["out"] == B.Stream("input", "0", 0, (0,))
    assert g.stages == {}


def test_plain_split_fans_out_an_input(reg):
    text = "[0]split[a][b];[a]dtgan.resize=32:32[c];[b]hflip[d];[c][d]dtgan.stack[out]"
    g = Graph.parse(text, registry=reg)
    stack = next(st for st in g.stages.values() if st.node.name == "dtgan.stack")
    assert stack.inputs[0] == B.Stream("stage", 1, 0)
    # hflip still follows the input (through the split), so the decoder hosts it
    assert stack.inputs[1] == B.Stream("input", "0", 0, (2,))


def test_encoder_side_plain_filters_pass_through_split(reg):
    g = Graph.parse("[0]dtgan.resize=32:32,hflip,split[a][b];[a]null[o1];[b]vflip[o2]",
                    registry=reg)
    assert g._vf(g.output_streams["o2"].plain) == "hflip,vflip"
    text = "[0]dtgan.resize=32:32,hflip,split[a][b];[a]dtgan.crop=8:8[o1];[b]null[o2]"
    assert fails(text, reg).column == text.index("hflip")


def test_without_ffmpeg_plain_names_are_left_to_ffmpeg(reg, monkeypatch):
    monkeypatch.setattr(FF, "ffmpeg_filter_table", lambda: {})
    g = Graph.parse("[0]hfilp[out]", registry=reg)  # the decoder reports it when it starts
    assert g.outputs == ["out"]


# ------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("text", [
    "[0]dtgan.resize=w=32:h=32,hflip[out]",
    "[0]split[a][b];[a]dtgan.resize=32:32[c];[b]hflip[d];[c][d]dtgan.stack=direction=v[out]",
    "[0]dtgan.trim=start_time=0.5:end_time=1.5,scale=16:-2[x]",
    "dtgan.crop=8:8:0:0",
])
def test_to_string_round_trips(reg, text):
    g = Graph.parse(text, registry=reg)
    again = Graph.parse(g.to_string(), registry=reg)
    assert again.to_string() == g.to_string()
    assert again.explain() == g.explain()
    assert str(g) == g.to_string()


def test_default_registry_is_used(monkeypatch):
    g = Graph.parse("[0]dtgan.resize=32:32[out]")
    assert g.inputs == ["0"] and g.outputs == ["out"]


# ------------------------------------------------------------------------------------ binding

def test_bind_maps_paths_in_order(reg, tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    g = Graph.parse("[1]dtgan.flip[o2];[0]dtgan.flip[o1]", registry=reg)
    assert g.outputs == ["o2", "o1"]  # text order
    ins, outs = g.bind([a, b], ["x.mp4", "y.mp4"])
    assert ins == {"0": str(a), "1": str(b)} and outs == {"o2": "x.mp4", "o1": "y.mp4"}


def test_bind_errors(reg, tmp_path):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"x")
    g = Graph.parse("[1]dtgan.flip[out]", registry=reg)
    with pytest.raises(UsageError, match=r"input \[1\]"):
        g.bind([a], ["o.mp4"])
    with pytest.raises(UsageError, match="input '0'.*not used"):
        g.bind([a, a], ["o.mp4"])
    with pytest.raises(UsageError, match="1 output"):
        g.bind({"1": a}, ["o.mp4", "p.mp4"])
    with pytest.raises(UsageError, match="also an input"):
        g.bind({"1": a}, [a])
    with pytest.raises(MediaError, match="not found"):
        g.bind({"1": tmp_path / "missing.mp4"}, ["o.mp4"])


def test_resolve_device():
    from dtgan_plugin.system import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(" CPU ").type == "cpu"
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            resolve_device("cuda")


def test_two_outputs_with_one_path_are_refused(reg, tmp_path, monkeypatch):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    g = Graph.parse("[0]dtgan.split[x][y];[x]dtgan.flip[o1];[y]dtgan.flip[o2]", registry=reg)
    with pytest.raises(UsageError, match="'o1' and 'o2' both write to") as err:
        g.bind([a], [tmp_path / "g.mp4", tmp_path / "g.mp4"])
    assert "\n" not in str(err.value)
    # the same file by another spelling (relative, through '..') is the same output
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="both write to"):
        g.bind([a], ["g.mp4", str(tmp_path / "sub" / ".." / "g.mp4")])
    with pytest.raises(UsageError, match="both write to stdout"):
        g.bind([a], ["-", "-"])
    link = tmp_path / "link.mp4"
    link.symlink_to(a)
    with pytest.raises(UsageError, match="also an input"):
        g.bind([a], [link, "h.mp4"])
    ins, outs = g.bind([a], ["g.mp4", "h.mp4"])
    assert outs == {"o1": "g.mp4", "o2": "h.mp4"}


def _chain_setup_seconds(reg, n: int, src: str) -> float:
    import time

    text = "[0]" + ",".join(["dtgan.flip"] * n) + "[out]"
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        g = Graph.parse(text, registry=reg)
        g.bind([src], ["o.mp4"])
        g.explain()
        best = min(best, time.perf_counter() - t0)
    return best


def test_graph_setup_is_linear_in_its_size(reg, tmp_path):
    src = tmp_path / "a.mp4"
    src.write_bytes(b"x")
    _chain_setup_seconds(reg, 50, str(src))  # warm caches (ffmpeg filter table, imports)
    small = _chain_setup_seconds(reg, 300, str(src))
    large = _chain_setup_seconds(reg, 1000, str(src))
    # linear gives ~3.3x; quadratic ~11x. Generous for a shared, noisy machine.
    assert large < 7 * small + 0.05, (small, large)
