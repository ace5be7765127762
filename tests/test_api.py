"""The Python API builds graphs as objects; Transferer edits like the stages; bounded stages.

Independent of the shipped model: a small freshly initialised checkpoint drives everything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dtgan_plugin import dynamics_ops as ops
from dtgan_plugin.errors import DtganError, MediaError, OptionError
from dtgan_plugin.stream import (CHUNK_BYTES, DynamicsChunk, ImagePacket, PadKind, StreamInfo,
                                 VideoChunk, frame_bytes)

from conftest import make_clip, small_checkpoint

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small checkpoint whose output depends on the dynamics."""
    return small_checkpoint(tmp_path_factory.mktemp("ck") / "small.safetensors", nudge=0.05)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "c.mp4", frames=12, size=40, fps=30)


@pytest.fixture(scope="module")
def frames(clip: Path) -> torch.Tensor:
    from dtgan_plugin.media import open_video

    with open_video(clip) as r:
        return r.get_batch(list(range(12)))


@pytest.fixture(scope="module")
def rgba_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40x40 RGBA PNG whose left half is transparent."""
    from PIL import Image

    arr = np.full((40, 40, 4), 200, np.uint8)
    arr[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 6
    arr[:, :20, 3] = 0
    path = tmp_path_factory.mktemp("img") / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    return path


# ---------------------------------------------------------------------- graphs as objects

def test_transfer_builds_its_graph_without_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                ckpt: Path, clip: Path, rgb_image: Path) -> None:
    from dtgan_plugin import api
    from dtgan_plugin.graph import Graph, parser

    odd = str(tmp_path / "it's; a [path],=.safetensors")  # every graph special character
    spec, inputs = api.transfer_spec(target=str(rgb_image), source=str(clip), dynamics=None,
                                     checkpoint=odd, reference_frame=2, amplify=0.1 + 0.2,
                                     smooth=True, size=None, fit="pad", alpha="refuse")
    assert inputs == {"tgt": str(rgb_image), "src": str(clip)}
    nodes = {n.name: n for n in spec.filters()}
    assert nodes["dtgan.amplify"].named["factor"] == repr(0.1 + 0.2)  # no rounding through text
    assert nodes["dtgan.dynamics"].named["checkpoint"] == odd  # held unescaped, as the AST does
    assert [n.name for n in spec.chains[0]] == ["dtgan.dynamics", "dtgan.smooth", "dtgan.amplify"]
    # the same graph as the text a user would write: it round-trips through to_string
    text = Graph(spec, inputs=list(inputs), outputs=["out"]).to_string()
    assert parser.to_string(parser.parse_graph(text)) == text

    def no_parsing(*_a: object, **_k: object) -> None:
        raise AssertionError("the API must not parse graph text")

    monkeypatch.setattr(parser, "parse_graph", no_parsing)
    out = tmp_path / "o.mkv"
    stats = api.transfer(clip, rgb_image, out, checkpoint=str(ckpt), device="cpu",
                         amplify=1.5, smooth=True, progress=False)
    assert stats.frames == 12 and out.exists()


# --------------------------------------------------------------- Transferer like the stages

def test_transferer_flush_answers_in_the_layout_pushed(ckpt: Path, frames: torch.Tensor,
                                                       rgb_image: Path) -> None:
    from dtgan_plugin import Transferer

    arr = (frames * 255).round().byte().permute(0, 2, 3, 1).numpy()
    tr = Transferer(rgb_image, str(ckpt), device="cpu", reference_frame=20)
    held = tr.push(arr)  # the reference frame never arrives: flush raises, in either layout
    assert isinstance(held, np.ndarray) and held.shape == (0, 32, 32, 3)
    tr = Transferer(rgb_image, str(ckpt), device="cpu")
    tr.push(arr[:5])
    rest = tr.flush()
    assert isinstance(rest, np.ndarray) and rest.dtype == np.uint8 and rest.shape[1:] == (32, 32, 3)
    tt = Transferer(rgb_image, str(ckpt), device="cpu")
    tt.push(frames[:5])
    assert isinstance(tt.flush(), torch.Tensor)


def test_smooth_stage_and_one_euro_are_the_same_numbers() -> None:
    from dtgan_plugin.filters.model_stages import SmoothStage

    torch.manual_seed(1)
    vec = torch.randn(50, 6).cumsum(0)
    stage = SmoothStage(mincutoff=0.5, beta=0.1)
    chunks = [DynamicsChunk(vec[a:a + 7], a, 30.0) for a in range(0, 50, 7)]
    staged = torch.cat([c.vectors for c in stage.run([iter(chunks)])])
    direct = ops.OneEuro(0.5, 0.1)(vec, 30.0)
    assert torch.equal(staged, direct)
    assert staged.diff(dim=0).abs().mean() < vec.diff(dim=0).abs().mean()
    # state carries across calls: two halves equal one whole
    halves = ops.OneEuro(0.5, 0.1)
    assert torch.equal(torch.cat([halves(vec[:20], 30.0), halves(vec[20:], 30.0)]), direct)


def test_transferer_smooth_and_amplify_match_the_stage_functions(ckpt: Path, frames: torch.Tensor,
                                                                 rgb_image: Path) -> None:
    from dtgan_plugin import Transferer
    from dtgan_plugin.inference import DynamicsExtractor, Renderer, load_model
    from dtgan_plugin.media import read_image

    got = Transferer(rgb_image, str(ckpt), device="cpu", smooth=True, amplify=2.0,
                     fps=30.0).push(frames)
    model = load_model(str(ckpt), "cpu")
    d = DynamicsExtractor(model).push(frames)
    d = ops.amplify(ops.OneEuro()(d, 30.0), 2.0)
    want = Renderer(model, read_image(rgb_image)).render(d)
    assert torch.equal(got, want)
    plain = Transferer(rgb_image, str(ckpt), device="cpu").push(frames)
    assert not torch.allclose(got, plain)


# ---------------------------------------------------------------------------------- alpha

def test_alpha_policies_in_api_and_transferer(tmp_path: Path, ckpt: Path, clip: Path,
                                              frames: torch.Tensor, rgba_image: Path) -> None:
    from dtgan_plugin import Transferer, transfer

    with pytest.raises(MediaError) as err:
        transfer(clip, rgba_image, tmp_path / "r.mkv", checkpoint=str(ckpt), progress=False)
    assert "alpha='composite'" in (err.value.hint or "") and not (tmp_path / "r.mkv").exists()
    for mode in ("composite", "drop"):
        out = tmp_path / f"{mode}.mkv"
        assert transfer(clip, rgba_image, out, checkpoint=str(ckpt), device="cpu",
                        alpha=mode, progress=False).frames == 12
    comp = Transferer(rgba_image, str(ckpt), device="cpu", alpha="composite").push(frames[:2])
    drop = Transferer(rgba_image, str(ckpt), device="cpu", alpha="drop").push(frames[:2])
    assert comp.shape == drop.shape == (2, 3, 32, 32) and not torch.equal(comp, drop)
    with pytest.raises(MediaError):
        Transferer(rgba_image, str(ckpt), device="cpu")


def test_image_stage_reads_with_the_alpha_policy(rgba_image: Path) -> None:
    from dtgan_plugin.filters.model_stages import ImageStage
    from dtgan_plugin.media.image import ALPHA_MODES, read_image

    assert {o.name: o for o in ImageStage.options}["alpha"].choices == ALPHA_MODES
    stage = ImageStage(file=str(rgba_image), alpha="composite")
    info = stage.configure([])
    assert (info.kind, info.width, info.height) == (PadKind.IMAGE, 40, 40)
    (packet,) = list(stage.run([]))
    assert torch.equal(packet.image, read_image(rgba_image, alpha="composite"))
    assert float(packet.image[:, :, :20].min()) == 1.0  # transparent half: white
    with pytest.raises(MediaError):
        ImageStage(file=str(rgba_image)).configure([])


# ----------------------------------------------------------------------- non-finite dynamics

def _write_dyn(path: Path, vectors: torch.Tensor, fps: str) -> Path:
    from safetensors.torch import save_file

    save_file({"vectors": vectors.contiguous()}, str(path),
              metadata={"format": "dtgan-dynamics", "format_version": "1", "fps": fps})
    return path


def test_dynamics_file_with_nan_or_bad_fps_is_refused(tmp_path: Path) -> None:
    from dtgan_plugin.dynfile import DynamicsFile

    vec = torch.zeros(20, 32)
    assert DynamicsFile(_write_dyn(tmp_path / "ok.dyn.safetensors", vec, "30")).fps == 30.0
    vec[5:10] = float("nan")
    with pytest.raises(MediaError, match="from frame 5"):
        DynamicsFile(_write_dyn(tmp_path / "nan.dyn.safetensors", vec, "30"))
    inf = torch.zeros(20, 32)
    inf[17, 3] = float("inf")
    with pytest.raises(MediaError, match="from frame 17"):
        DynamicsFile(_write_dyn(tmp_path / "inf.dyn.safetensors", inf, "30"))
    for fps in ("0", "1e9", "-5", "nan", "inf", "fast"):
        with pytest.raises(MediaError, match="fps"):
            DynamicsFile(_write_dyn(tmp_path / "f.dyn.safetensors", torch.zeros(4, 32), fps))


def test_dynamics_writer_refuses_zero_fps(tmp_path: Path) -> None:
    from dtgan_plugin.dynfile import DynamicsWriter

    out = tmp_path / "z.dyn.safetensors"
    with pytest.raises(MediaError, match="0 fps"):
        with DynamicsWriter(out) as w:
            w.write(DynamicsChunk(torch.zeros(3, 8), 0, 0.0))
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even the raw temporary


def test_transfer_stage_refuses_nonfinite_dynamics_naming_the_frame(ckpt: Path) -> None:
    from dtgan_plugin.filters.model_stages import TransferStage

    stage = TransferStage(checkpoint=str(ckpt))
    stage.configure([StreamInfo(PadKind.IMAGE, width=32, height=32),
                     StreamInfo(PadKind.DYNAMICS, fps=25.0, dim=32)])
    good = DynamicsChunk(torch.zeros(10, 32), 0, 25.0)
    bad = torch.zeros(10, 32)
    bad[3, 0] = float("nan")
    run = stage.run([iter([ImagePacket(torch.rand(3, 32, 32))]),
                     iter([good, DynamicsChunk(bad, 10, 25.0)])])
    assert len(next(run)) == 10
    with pytest.raises(MediaError, match="frame 13"):
        next(run)


def test_transferer_refuses_nonfinite_frames(ckpt: Path, frames: torch.Tensor,
                                             rgb_image: Path) -> None:
    from dtgan_plugin import Transferer

    poisoned = frames[:4].clone()
    poisoned[2] = float("nan")
    with pytest.raises(MediaError, match="not finite"):
        Transferer(rgb_image, str(ckpt), device="cpu").push(poisoned)


# ------------------------------------------------------------------- bounded output chunks

def _resize_stage(w: int, h: int, chunk_size: int = 32):  # noqa: ANN202
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.filters.basic import Resize

    stage = Resize(w=w, h=h)
    stage.setup(RunContext(chunk_size=chunk_size))
    return stage


def test_resize_output_chunks_stay_within_the_byte_budget() -> None:
    stage = _resize_stage(512, 512)
    src = torch.rand(32, 3, 16, 16)
    outs = list(stage.run([iter([VideoChunk(src, 100, 25.0)])]))
    per = max(1, CHUNK_BYTES // frame_bytes(512, 512))
    assert per < 32 and all(0 < len(c) <= per for c in outs)
    assert all(c.frames.numel() * 4 <= CHUNK_BYTES for c in outs)
    assert [c.start for c in outs] == list(range(100, 132, per))
    assert torch.equal(torch.cat([c.frames for c in outs]), stage.resize(src))
    # a frame bigger than the budget on its own: one frame a chunk
    big = list(_resize_stage(1024, 1024).run([iter([VideoChunk(src[:3], 0, 25.0)])]))
    assert [len(c) for c in big] == [1, 1, 1]


def test_transfer_stage_output_chunks_stay_within_the_byte_budget(ckpt: Path) -> None:
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.filters.model_stages import TransferStage

    stage = TransferStage(checkpoint=str(ckpt), size=512)
    stage.setup(RunContext(chunk_size=32))
    stage.configure([StreamInfo(PadKind.IMAGE, width=32, height=32),
                     StreamInfo(PadKind.DYNAMICS, fps=25.0, dim=32)])
    outs = list(stage.run([iter([ImagePacket(torch.rand(3, 32, 32))]),
                           iter([DynamicsChunk(torch.randn(9, 32) * 0.1, 0, 25.0)])]))
    assert sum(len(c) for c in outs) == 9
    assert all(c.frames.numel() * 4 <= CHUNK_BYTES for c in outs)
    assert [c.start for c in outs] == list(range(0, 9, len(outs[0])))


def test_stack_output_chunks_stay_within_the_byte_budget() -> None:
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.filters.basic import Stack

    stage = Stack(direction="h")
    stage.setup(RunContext(chunk_size=32))
    a = VideoChunk(torch.rand(32, 3, 400, 400), 0, 25.0)
    b = VideoChunk(torch.rand(32, 3, 400, 400), 0, 25.0)
    outs = list(stage.run([iter([a]), iter([b])]))
    assert sum(len(c) for c in outs) == 32 and len(outs) == 16  # two 400x800 frames a chunk
    assert all(c.frames.numel() * 4 <= CHUNK_BYTES for c in outs)
    assert torch.equal(outs[0].frames[0], torch.cat([a.frames[0], b.frames[0]], dim=-1))


def test_huge_resize_is_refused_before_any_work(tmp_path: Path, clip: Path) -> None:
    from dtgan_plugin.graph import Graph

    with pytest.raises(OptionError, match="too large"):
        _resize_stage(12000, 12000).configure([StreamInfo(PadKind.VIDEO, width=40, height=40)])
    with pytest.raises(OptionError, match="too large"):  # also when the input size was unknown
        list(_resize_stage(20000, 100).run([iter([VideoChunk(torch.rand(1, 3, 8, 8), 0, 25.0)])]))
    out = tmp_path / "huge.mp4"
    with pytest.raises(DtganError, match="too large"):
        Graph.parse("[0]dtgan.resize=12000:12000[out]").run([str(clip)], [str(out)],
                                                             progress=False)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- frame-count bounds

def test_fps_and_retime_refuse_frame_count_blowups() -> None:
    from dtgan_plugin.filters.basic import Fps
    from dtgan_plugin.filters.model_stages import RetimeStage
    from dtgan_plugin.graph import Graph

    with pytest.raises(DtganError, match="<= 1000"):
        Graph.parse("[0]dtgan.fps=fps=1000000000[out]")
    src = StreamInfo(PadKind.VIDEO, fps=5.0, num_frames=10)
    with pytest.raises(OptionError, match="output frames per input frame"):
        Fps(fps=1000).configure([src])
    assert Fps(fps=500).configure([src]).num_frames == 1000  # 100x: allowed
    dyn = StreamInfo(PadKind.DYNAMICS, fps=25.0, num_frames=10)
    with pytest.raises(OptionError, match="output frames per input frame"):
        RetimeStage(speed=0.001).configure([dyn])
    assert RetimeStage(speed=0.5, loop=3).configure([dyn]).num_frames == 57


def test_fps_upsampling_output_chunks_stay_within_the_byte_budget() -> None:
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.filters.basic import Fps

    stage = Fps(fps=250)
    stage.setup(RunContext(chunk_size=32))
    src = torch.rand(8, 3, 300, 300)  # 10 output frames per input frame
    outs = list(stage.run([iter([VideoChunk(src, 0, 25.0)])]))
    assert sum(len(c) for c in outs) == 80
    assert all(c.frames.numel() * 4 <= CHUNK_BYTES for c in outs)
    assert [c.start for c in outs] == list(range(0, 80, len(outs[0])))
    assert torch.equal(torch.cat([c.frames for c in outs]), src.repeat_interleave(10, dim=0))
