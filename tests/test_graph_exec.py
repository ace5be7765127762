"""Executing graphs: the threaded executor, the basic stages, real files and the CLI."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pluggy
import pytest
import torch

from conftest import audio_rms, make_clip, run_cli
from dtgan_plugin.errors import GraphError, MediaError, OptionError
from dtgan_plugin.filters import basic
from dtgan_plugin.filters.base import Filter, Option, Pad, RunContext
from dtgan_plugin.graph import Graph
from dtgan_plugin.graph.executor import Executor, Task
from dtgan_plugin.hooks import hookimpl, hookspecs
from dtgan_plugin.hooks.manager import Registry
from dtgan_plugin.stream import DynamicsChunk, ImagePacket, PadKind, StreamInfo, VideoChunk


# =================================================================================== helpers

def chunks_of(n: int, size: int = 8, chunk: int = 5, fps: float = 25.0) -> list[VideoChunk]:
    """``n`` frames whose red channel holds the frame index / 1000 (to trace frames)."""
    out = []
    for start in range(0, n, chunk):
        t = min(chunk, n - start)
        frames = torch.zeros(t, 3, size, size)
        frames[:, 0] = (torch.arange(start, start + t, dtype=torch.float32) / 1000)[:, None, None]
        out.append(VideoChunk(frames, start, fps))
    return out


def indices(chunks: list[VideoChunk]) -> list[int]:
    return [int(round(v * 1000)) for c in chunks for v in c.frames[:, 0, 0, 0].tolist()]


def run_stage(stage: Filter, *streams: list[Any], chunk_size: int = 5) -> list[Any]:
    stage.setup(RunContext(chunk_size=chunk_size))
    return list(stage.run([iter(s) for s in streams]))


class Boom(Filter):
    """video → video that fails after ``after`` chunks."""

    name = "t.boom"
    inputs = (Pad("in", PadKind.VIDEO),)
    outputs = (Pad("out", PadKind.VIDEO),)
    options = (Option("after", int, 2, "chunks passed before failing"),)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        for i, chunk in enumerate(inputs[0]):
            if i >= self.opts["after"]:
                raise OptionError("t.boom: exploded on purpose")
            yield chunk


class Interrupt(Filter):
    """video → video that raises KeyboardInterrupt at its second chunk (a user's Ctrl-C)."""

    name = "t.interrupt"
    inputs = (Pad("in", PadKind.VIDEO),)
    outputs = (Pad("out", PadKind.VIDEO),)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        for i, chunk in enumerate(inputs[0]):
            if i == 1:
                raise KeyboardInterrupt
            yield chunk


class Motion(Filter):
    """video → dynamics (mean colour per frame)."""

    name = "t.motion"
    inputs = (Pad("source", PadKind.VIDEO),)
    outputs = (Pad("dynamics", PadKind.DYNAMICS),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        return infos[0].with_(kind=PadKind.DYNAMICS, dim=3)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        for c in inputs[0]:
            yield DynamicsChunk(c.frames.mean(dim=(2, 3)), c.start, c.fps)


class Drive(Filter):
    """image + dynamics → video: the image tinted by the dynamics."""

    name = "t.drive"
    inputs = (Pad("target", PadKind.IMAGE), Pad("dynamics", PadKind.DYNAMICS))
    outputs = (Pad("video", PadKind.VIDEO),)

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        img, dyn = infos
        return StreamInfo(PadKind.VIDEO, fps=dyn.fps, width=img.width, height=img.height,
                          num_frames=dyn.num_frames)

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        image = next(iter(inputs[0])).image
        for d in inputs[1]:
            yield VideoChunk((image[None] * 0.5 + d.vectors[:, :, None, None] * 0.5), d.start,
                             d.fps)


class Closer(Filter):
    """Records setup/configure/close calls."""

    name = "t.closer"
    inputs = (Pad("in", PadKind.VIDEO),)
    outputs = (Pad("out", PadKind.VIDEO),)
    calls: list[str] = []

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        Closer.calls.append(f"setup:{ctx.chunk_size}")

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        Closer.calls.append(f"configure:{infos[0].width}x{infos[0].height}")
        return infos[0]

    def run(self, inputs: Sequence[Iterator[Any]]) -> Iterator[Any]:
        yield from inputs[0]

    def close(self) -> None:
        Closer.calls.append("close")


class StagesPlugin:
    @hookimpl
    def dtgan_register_filters(self, register):
        for cls in (Boom, Interrupt, Motion, Drive, Closer):
            register(cls)


@pytest.fixture(scope="module")
def reg() -> Registry:
    pm = pluggy.PluginManager("dtgan")
    pm.add_hookspecs(hookspecs)
    pm.register(basic, name="dtgan_plugin.filters.basic")
    pm.register(StagesPlugin(), name="test")
    return Registry(pm)


def decode(path: Path) -> torch.Tensor:
    """All frames of a (small) file, decoded by ffmpeg whatever the pixel format."""
    from dtgan_plugin.media.video import open_video

    with open_video(path, vf="null") as r:
        return torch.cat([c.frames for c in r.chunks(64)])


def probe(path: Path) -> Any:
    from dtgan_plugin.media.ffmpeg_bin import probe_file

    return probe_file(str(path))


def info_of(path: Path) -> StreamInfo:
    from dtgan_plugin.media.video import open_video

    with open_video(path) as r:
        return r.info


# ================================================================================== executor

def test_executor_runs_a_chain_and_bounds_queues():
    ex = Executor(queue_size=2)
    got: list[int] = []
    src = ex.add(Task("src", lambda _: iter(range(200))))
    mid = ex.add(Task("double", lambda ins: (x * 2 for x in ins[0]), inputs=[(src, 0)]))
    ex.add(Task("sink", lambda ins: got.extend(ins[0]), inputs=[(mid, 0)], n_outputs=0))
    res = ex.run()
    assert got == [x * 2 for x in range(200)]
    assert max(res.peaks.values()) <= 2 and ex.deadlocks_broken == 0


def _chain_executor(n: int, items: int) -> tuple[Executor, list[int]]:
    ex = Executor(queue_size=2)
    got: list[int] = []
    prev = ex.add(Task("src", lambda _: iter(range(items))))
    for i in range(n):
        prev = ex.add(Task(f"pass{i}", lambda ins: (x + 1 for x in ins[0]), inputs=[(prev, 0)]))
    ex.add(Task("sink", lambda ins: got.extend(ins[0]), inputs=[(prev, 0)], n_outputs=0))
    return ex, got


def test_executor_long_chain_is_linear():
    """A chain has no wait cycles: no cycle search, and waking is per channel (issue 13 #10)."""
    import time

    def timed(n: int) -> float:
        ex, got = _chain_executor(n, 20)
        t0 = time.perf_counter()
        ex.run()
        assert got == [x + n for x in range(20)]
        assert ex.cycle_checks == 0 and ex.deadlocks_broken == 0
        return time.perf_counter() - t0

    small = min(timed(150) for _ in range(2))
    large = min(timed(600) for _ in range(2))
    # linear gives ~4x; the old executor (global wake-ups, cycle walks) grew ~n^2 or worse
    assert large < 10 * small + 0.5, (small, large)


def test_executor_marks_only_cycle_channels():
    ex = Executor(queue_size=2)
    src = ex.add(Task("src", lambda _: iter(range(3))))
    a = ex.add(Task("a", lambda ins: iter(ins[0]), inputs=[(src, 0)]))
    b = ex.add(Task("b", lambda ins: iter(ins[0]), inputs=[(src, 0)]))
    j = ex.add(Task("join", lambda ins: (x for x, _ in zip(ins[0], ins[1])),
                    inputs=[(a, 0), (b, 0)]))
    ex.add(Task("sink", lambda ins: list(ins[0]) and None, inputs=[(j, 0)], n_outputs=0))
    ex.run()
    on = {f"{ex.tasks[c.producer].name}->{ex.tasks[c.consumer].name}": c.on_cycle
          for c in ex.channels}
    assert on == {"src->a": True, "src->b": True, "a->join": True, "b->join": True,
                  "join->sink": False}


def test_executor_diamond_with_skewed_branches_does_not_deadlock():
    # one branch drops 50 items before yielding: the join must buffer ~50 on the other branch
    ex = Executor(queue_size=2)
    pairs: list[tuple[int, int]] = []
    src = ex.add(Task("src", lambda _: iter(range(120))))
    skip = ex.add(Task("skip", lambda ins: (x for x in ins[0] if x >= 50), inputs=[(src, 0)]))
    keep = ex.add(Task("keep", lambda ins: (x for x in ins[0]), inputs=[(src, 0)]))
    ex.add(Task("join", lambda ins: pairs.extend(zip(ins[0], ins[1])),
                inputs=[(skip, 0), (keep, 0)], n_outputs=0))
    res = ex.run()
    assert pairs == [(50 + i, i) for i in range(70)]
    assert ex.deadlocks_broken > 0
    # buffering happened at the join input only, and no more than the skew needs
    assert res.peaks["keep->join"] <= 53
    assert res.peaks["src->skip"] <= 2 and res.peaks["src->keep"] <= 2


def test_executor_error_releases_blocked_producers_and_reraises():
    produced: list[int] = []
    cleaned = threading.Event()

    def src(_):
        for i in range(10_000):
            produced.append(i)
            yield i

    def bad(ins):
        for x in ins[0]:
            if x == 5:
                raise ValueError("stage failed")
            yield x

    ex = Executor(queue_size=2)
    a = ex.add(Task("src", src, cleanup=cleaned.set))
    b = ex.add(Task("bad", bad, inputs=[(a, 0)]))
    ex.add(Task("slow-sink", lambda ins: [time.sleep(0.001) for _ in ins[0]],
                inputs=[(b, 0)], n_outputs=0))
    aborted: list[bool] = []
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="stage failed"):
        ex.run(on_abort=[lambda: aborted.append(True)])
    assert time.perf_counter() - t0 < 5
    assert aborted == [True] and cleaned.is_set()
    assert len(produced) < 100  # the producer stopped instead of running to the end


def test_executor_keyboard_interrupt_in_a_task_aborts():
    def src(_):
        yield 1
        raise KeyboardInterrupt

    ex = Executor()
    a = ex.add(Task("src", src))
    ex.add(Task("sink", lambda ins: list(ins[0]), inputs=[(a, 0)], n_outputs=0))
    aborted: list[bool] = []
    with pytest.raises(KeyboardInterrupt):
        ex.run(on_abort=[lambda: aborted.append(True)])
    assert aborted == [True]


def test_consumer_that_stops_early_stops_the_producer():
    produced: list[int] = []

    def src(_):
        for i in range(100_000):
            produced.append(i)
            yield i

    ex = Executor(queue_size=2)
    a = ex.add(Task("src", src))
    first: list[int] = []

    def take3(ins):
        for x in ins[0]:
            first.append(x)
            if len(first) == 3:
                return

    ex.add(Task("take3", take3, inputs=[(a, 0)], n_outputs=0))
    ex.run()
    assert first == [0, 1, 2] and len(produced) < 20


def test_multi_output_task_routes_by_pad():
    ex = Executor()
    a = ex.add(Task("src", lambda _: ((i % 2, i) for i in range(10)), n_outputs=2, multi=True))
    evens: list[int] = []
    odds: list[int] = []
    ex.add(Task("e", lambda ins: evens.extend(ins[0]), inputs=[(a, 0)], n_outputs=0))
    ex.add(Task("o", lambda ins: odds.extend(ins[0]), inputs=[(a, 1)], n_outputs=0))
    ex.run()
    assert evens == [0, 2, 4, 6, 8] and odds == [1, 3, 5, 7, 9]


def test_add_refuses_forward_references():
    ex = Executor()
    with pytest.raises(ValueError):
        ex.add(Task("x", lambda ins: None, inputs=[(3, 0)], n_outputs=0))


# ============================================================================== basic stages

@pytest.mark.parametrize("size,want", [
    ((32, 32), (32, 32)), ((32, -1), (32, 16)), ((-1, 10), (20, 10)), ((0, 8), (64, 8)),
    ((-2, 11), (22, 11)), ((15, -2), (15, 8)),
])
def test_resize_size_rules(size, want):
    assert basic.scaled_size(64, 32, *size) == want


def test_resize_stage_modes_and_images():
    frames = torch.rand(4, 3, 20, 30)
    for mode in ("bilinear", "bicubic", "nearest", "area"):
        st = basic.Resize(w=15, h=10, mode=mode)
        (out,) = run_stage(st, [VideoChunk(frames, 0, 25.0)])
        assert out.frames.shape == (4, 3, 10, 15)
        assert 0 <= float(out.frames.min()) and float(out.frames.max()) <= 1
    (img,) = run_stage(basic.Resize(w=10), [ImagePacket(frames[0])])
    assert isinstance(img, ImagePacket) and img.image.shape == (3, 7, 10)
    info = basic.Resize(w=10).configure([StreamInfo(PadKind.VIDEO, width=30, height=20)])
    assert (info.width, info.height) == (10, 7)
    with pytest.raises(OptionError):
        basic.Resize(w=-1, h=-1)


def test_crop_stage_centre_and_bounds():
    frames = torch.rand(2, 3, 10, 20)
    (out,) = run_stage(basic.Crop(w=4, h=6), [VideoChunk(frames, 0, 25.0)])
    assert torch.equal(out.frames, frames[..., 2:8, 8:12])
    (out,) = run_stage(basic.Crop(w=4, h=6, x=0, y=1), [VideoChunk(frames, 0, 25.0)])
    assert torch.equal(out.frames, frames[..., 1:7, 0:4])
    with pytest.raises(OptionError, match="larger"):
        basic.Crop(w=30).configure([StreamInfo(PadKind.VIDEO, width=20, height=10)])
    with pytest.raises(OptionError, match="leaves"):
        basic.Crop(w=10, x=15).configure([StreamInfo(PadKind.VIDEO, width=20, height=10)])


def test_flip_stage():
    frames = torch.rand(2, 3, 4, 5)
    (out,) = run_stage(basic.Flip(), [VideoChunk(frames, 0, 25.0)])
    assert torch.equal(out.frames, frames.flip(-1))
    (out,) = run_stage(basic.Flip(direction="hv"), [VideoChunk(frames, 0, 25.0)])
    assert torch.equal(out.frames, frames.flip(-1).flip(-2))


@pytest.mark.parametrize("opts,want", [
    ({"start": 3, "end": 11}, list(range(3, 11))),
    ({"start": 7, "duration": 4}, list(range(7, 11))),
    ({"end": 2}, [0, 1]),
    ({"start": 18}, [18, 19]),
    ({"start_time": 0.2, "end_time": 0.6}, list(range(5, 15))),
    ({"start": 30}, []),
])
def test_trim_stage(opts, want):
    st = basic.Trim(**opts)
    info = st.configure([StreamInfo(PadKind.VIDEO, fps=25.0, num_frames=20)])
    out = run_stage(st, chunks_of(20))
    assert indices(out) == want and info.num_frames == len(want)
    starts = [c.start for c in out]
    assert starts == sorted(starts) and (not starts or starts[0] == 0)


def test_trim_option_conflicts():
    with pytest.raises(OptionError, match="only one"):
        basic.Trim(end=3, duration=2)
    with pytest.raises(OptionError, match="before it starts"):
        basic.Trim(start=5, end=2).frame_range(25.0)


def test_trim_stops_reading_after_the_range():
    pulled: list[int] = []

    def gen():
        for c in chunks_of(1000):
            pulled.append(c.start)
            yield c

    st = basic.Trim(end=12)
    st.setup(RunContext())
    out = list(st.run([gen()]))
    assert indices(out) == list(range(12)) and len(pulled) == 3


@pytest.mark.parametrize("out_fps,count", [(50.0, 40), (10.0, 8), (25.0, 20), (12.5, 10)])
def test_fps_stage(out_fps, count):
    st = basic.Fps(fps=out_fps)
    info = st.configure([StreamInfo(PadKind.VIDEO, fps=25.0, num_frames=20)])
    out = run_stage(st, chunks_of(20, chunk=7))
    got = indices(out)
    assert len(got) == count == info.num_frames
    assert got == sorted(got) and got[0] == 0
    assert all(c.fps == out_fps for c in out)
    starts = [c.start for c in out]
    lengths = [len(c) for c in out]
    assert starts == [sum(lengths[:i]) for i in range(len(out))]


def test_stack_sizes_and_lengths():
    a = chunks_of(10, size=8, chunk=4)
    b = [VideoChunk(torch.rand(3, 3, 4, 6), s, 25.0) for s in (0, 3)]  # 6 frames, 6x4
    st = basic.Stack()
    info = st.configure([StreamInfo(PadKind.VIDEO, width=8, height=8, num_frames=10),
                         StreamInfo(PadKind.VIDEO, width=6, height=4, num_frames=6)])
    out = run_stage(st, a, b)
    frames = torch.cat([c.frames for c in out])
    assert frames.shape == (10, 3, 8, 8 + 12) and (info.width, info.height) == (20, 8)
    assert info.num_frames == 10
    # the shorter second input repeats its last frame
    assert torch.equal(frames[6:, :, :, 8:], frames[5:6, :, :, 8:].expand(4, -1, -1, -1))
    st = basic.Stack(direction="v", shortest=True)
    info = st.configure([StreamInfo(PadKind.VIDEO, width=8, height=8, num_frames=10),
                         StreamInfo(PadKind.VIDEO, width=6, height=4, num_frames=6)])
    out = run_stage(st, chunks_of(10, size=8, chunk=4), b)
    frames = torch.cat([c.frames for c in out])
    assert frames.shape == (6, 3, 8 + 5, 8) and info.num_frames == 6
    assert (info.width, info.height) == (8, 13)


def test_split_stage_yields_pad_tuples():
    st = basic.Split(outputs=3)
    assert len(basic.Split.output_pads(st.opts)) == 3
    out = run_stage(st, chunks_of(4, chunk=2))
    assert [p for p, _ in out] == [0, 1, 2, 0, 1, 2]


# ============================================================================ graphs on files

@pytest.fixture(scope="module")
def lossless_clip(tmp_path_factory) -> Path:
    """20 frames of 64x64 ffv1 in yuv444p (no chroma subsampling)."""
    from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

    path = tmp_path_factory.mktemp("lossless") / "clip.mkv"
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "20", "-c:v", "ffv1",
                    "-pix_fmt", "yuv444p", str(path)], check=True)
    return path


def test_resize_then_hflip_on_a_file(small_clip, tmp_path):
    out = tmp_path / "out.mp4"
    g = Graph.parse("[0]dtgan.resize=w=32:h=32,hflip[out]")
    stats = g.run([small_clip], [out], progress=False)
    src, dst = info_of(small_clip), info_of(out)
    assert (dst.width, dst.height) == (32, 32)
    assert dst.num_frames == src.num_frames == 30 == stats.frames
    assert dst.fps == pytest.approx(src.fps)
    assert stats.outputs == {"out": 30} and stats.fps > 0


def test_hflip_really_flips_losslessly(lossless_clip, tmp_path):
    out = tmp_path / "flipped.mkv"
    Graph.parse("[0]dtgan.resize=32:32,hflip[out]").run(
        [lossless_clip], [out], progress=False, codec="ffv1")
    expected = basic.Resize(w=32, h=32).resize(decode(lossless_clip)).flip(-1)
    got = decode(out)
    assert got.shape == expected.shape
    # 8-bit quantisation of the resized frames is the only difference
    assert float((got - expected).abs().max()) <= 1.01 / 255
    assert float((got - expected.flip(-1)).abs().mean()) > 0.05  # and it is not unflipped


def test_decoder_hosted_filters_and_fan_out_fan_in(small_clip, tmp_path):
    out = tmp_path / "stack.mp4"
    text = "[0]split[a][b];[a]dtgan.resize=32:32[c];[b]hflip,scale=16:16[d];[c][d]dtgan.stack[out]"
    stats = Graph.parse(text).run([small_clip], [out], progress=False)
    info = info_of(out)
    assert (info.width, info.height) == (64, 32) and info.num_frames == 30 == stats.frames


def test_two_outputs_and_dynamics_fan_out(small_clip, rgb_image, reg, tmp_path):
    o1, o2 = tmp_path / "o1.mp4", tmp_path / "o2.mp4"
    text = ("[0]t.motion,dtgan.split[d1][d2];[1][d1]t.drive[o1];"
            "[1]dtgan.resize=40:24[t];[t][d2]t.drive,vflip[o2]")
    g = Graph.parse(text, registry=reg)
    stats = g.run([small_clip, rgb_image], [o1, o2], progress=False)
    assert stats.outputs == {"o1": 30, "o2": 30}
    assert (info_of(o1).width, info_of(o1).height) == (80, 48)
    assert (info_of(o2).width, info_of(o2).height) == (40, 24)


@pytest.mark.parametrize("direction,size", [("h", (128, 64)), ("v", (64, 128))])
def test_stack_output_size(small_clip, tmp_path, direction, size):
    other = make_clip(tmp_path / "other.mp4", frames=30, size=32, pattern="smptebars")
    out = tmp_path / "stacked.mp4"
    Graph.parse(f"[0][1]dtgan.stack={direction}[out]").run([small_clip, other], [out],
                                                            progress=False)
    info = info_of(out)
    assert (info.width, info.height) == size and info.num_frames == 30


@pytest.mark.parametrize("opts,count", [("start=5:end=20", 15), ("duration=7", 7),
                                        ("start_time=0.2:end_time=0.6", 10)])
def test_trim_frame_counts_on_files(small_clip, tmp_path, opts, count):
    out = tmp_path / "trim.mp4"
    stats = Graph.parse(f"[0]dtgan.trim={opts}[out]").run([small_clip], [out], progress=False,
                                                           chunk_size=4)
    assert stats.frames == count == info_of(out).num_frames


def test_chunk_size_does_not_change_the_result(lossless_clip, tmp_path):
    text = "[0]dtgan.trim=start=3:end=17,dtgan.fps=fps=50,dtgan.crop=20:20[out]"
    results = []
    for cs in (3, 32):
        out = tmp_path / f"cs{cs}.mkv"
        Graph.parse(text).run([lossless_clip], [out], progress=False, chunk_size=cs,
                              codec="ffv1")
        results.append(decode(out))
    assert results[0].shape[0] == 28 and torch.equal(results[0], results[1])


def test_keep_audio(audio_clip, tmp_path):
    out = tmp_path / "with_audio.mp4"
    Graph.parse("[0]dtgan.resize=32:32[out]").run([audio_clip], [out], progress=False,
                                                   keep_audio=True)
    assert probe(out).audio_codecs
    silent = tmp_path / "silent.mp4"
    Graph.parse("[0]dtgan.resize=32:32[out]").run([audio_clip], [silent], progress=False)
    assert not probe(silent).audio_codecs


def test_keep_audio_stays_in_sync_after_a_trim(late_tone_clip, tmp_path):
    # silence for the first second, then a tone: cutting 1 s of video must cut 1 s of audio
    src = late_tone_clip
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    Graph.parse("[0]dtgan.flip[out]").run([src], [whole], progress=False, keep_audio=True)
    Graph.parse("[0]dtgan.trim=start_time=1.2[out]").run([src], [cut], progress=False,
                                                         keep_audio=True)
    assert audio_rms(whole, 0.5) < 0.01          # the source's silent start
    assert audio_rms(cut, 0.5) > 0.2             # the tone, from the cut's first frame
    assert decode(cut).shape[0] == 20


def test_keep_audio_from_a_named_file(small_clip, audio_clip, tmp_path):
    out = tmp_path / "dubbed.mp4"
    Graph.parse("[0]dtgan.flip[out]").run([small_clip], [out], progress=False,
                                          keep_audio=audio_clip)
    assert probe(out).audio_codecs


def test_keep_audio_follows_the_stream_to_its_input(small_clip, audio_clip, rgb_image, reg,
                                                    tmp_path):
    # the output comes from input 1's dynamics, so its audio is copied, not input 0's
    out = tmp_path / "driven.mp4"
    g = Graph.parse("[1]t.motion[d];[0][d]t.drive[out]", registry=reg)
    g.run([rgb_image, audio_clip], [out], progress=False, keep_audio=True)
    assert probe(out).audio_codecs


def test_error_mid_stream_aborts_and_leaves_no_output(small_clip, reg, tmp_path):
    out = tmp_path / "never.mp4"
    other = tmp_path / "other.mp4"
    g = Graph.parse("[0]dtgan.split[a][b];[a]t.boom=after=2[o1];[b]dtgan.flip[o2]", registry=reg)
    with pytest.raises(OptionError, match="exploded"):
        g.run([small_clip], [out, other], progress=False, chunk_size=4)
    assert list(tmp_path.iterdir()) == []  # neither output, nor any temporary file


def test_interrupt_aborts_cleanly(small_clip, reg, tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        Graph.parse("[0]t.interrupt[out]", registry=reg).run([small_clip], [out],
                                                             progress=False, chunk_size=4)
    assert list(tmp_path.iterdir()) == []
    alive = [t.name for t in threading.enumerate() if t.name.startswith("dtgan:")]
    assert alive == []


def test_a_graph_runs_twice_with_fresh_stages(small_clip, tmp_path):
    g = Graph.parse("[0]dtgan.trim=end=5[out]")
    a = g.run([small_clip], [tmp_path / "a.mp4"], progress=False)
    b = g.run([small_clip], [tmp_path / "b.mp4"], progress=False)
    assert a.frames == b.frames == 5


def test_still_image_output(rgb_image, tmp_path):
    from dtgan_plugin.media.image import read_image

    out = tmp_path / "small.png"
    stats = Graph.parse("[0]dtgan.resize=40:24,dtgan.flip[out]").run([rgb_image], [out],
                                                                    progress=False)
    assert stats.frames == 1
    img = read_image(out)
    want = basic.Resize(w=40, h=24).resize(read_image(rgb_image)[None])[0].flip(-1)
    assert img.shape == (3, 24, 40) and float((img - want).abs().max()) <= 1.01 / 255


def test_stdin_to_stdout(small_clip, tmp_path, monkeypatch, capfdbinary):
    import io
    import sys

    from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

    y4m = subprocess.run([find_ffmpeg(), "-loglevel", "error", "-i", str(small_clip),
                          "-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(y4m)))
    capfdbinary.readouterr()
    stats = Graph.parse("[0]dtgan.resize=32:32[out]").run(["-"], ["-"], progress=False)
    out = capfdbinary.readouterr().out
    assert stats.frames == 30 and out.startswith(b"YUV4MPEG2 W32 H32")
    assert out.count(b"FRAME") == 30


def test_torch_threads_are_restored(small_clip, tmp_path):
    from dtgan_plugin.graph import threads as B

    before = torch.get_num_threads()
    seen: list[int] = []

    class Spy(Filter):
        name = "t.spy"
        inputs = (Pad("in", PadKind.VIDEO),)
        outputs = (Pad("out", PadKind.VIDEO),)

        def run(self, inputs):
            for chunk in inputs[0]:
                seen.append(torch.get_num_threads())
                yield chunk

    class P:
        @hookimpl
        def dtgan_register_filters(self, register):
            register(Spy)

    pm = pluggy.PluginManager("dtgan")
    pm.add_hookspecs(hookspecs)
    pm.register(P(), name="spy")
    g = Graph.parse("[0]t.spy[out]", registry=Registry(pm))
    g.run([small_clip], [tmp_path / "o.mp4"], progress=False, threads=1)
    assert set(seen) == {1} and torch.get_num_threads() == before
    assert 1 <= B.auto_threads(2) <= before
    with pytest.raises(Exception, match="threads"):
        g.run([small_clip], [tmp_path / "p.mp4"], progress=False, threads=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(small_clip, rgb_image, tmp_path):
    out = tmp_path / "cuda.mp4"
    text = "[0]split[a][b];[a]dtgan.resize=32:32[c];[b]dtgan.crop=32:32,dtgan.flip[d];[c][d]dtgan.stack[out]"
    stats = Graph.parse(text).run([small_clip], [out], progress=False, device="cuda")
    cpu = tmp_path / "cpu.mp4"
    Graph.parse(text).run([small_clip], [cpu], progress=False, device="cpu")
    assert stats.frames == 30
    assert float((decode(out) - decode(cpu)).abs().mean()) < 2 / 255


def test_setup_configure_close_are_called(small_clip, reg, tmp_path):
    Closer.calls.clear()
    Graph.parse("[0]dtgan.resize=24:16,t.closer[out]", registry=reg).run(
        [small_clip], [tmp_path / "o.mp4"], progress=False, chunk_size=8)
    assert Closer.calls == ["setup:8", "configure:24x16", "close"]
    Closer.calls.clear()
    with pytest.raises(OptionError):
        Graph.parse("[0]t.closer,t.boom=after=0[out]", registry=reg).run(
            [small_clip], [tmp_path / "p.mp4"], progress=False)
    assert Closer.calls[-1] == "close"


def test_configure_errors_become_graph_errors_before_decoding(small_clip, tmp_path):
    text = "[0]dtgan.crop=100:10[out]"
    with pytest.raises(GraphError) as info:
        Graph.parse(text).run([small_clip], [tmp_path / "o.mp4"], progress=False)
    assert info.value.column == 3 and "larger" in info.value.message
    assert not (tmp_path / "o.mp4").exists()


def test_empty_output_is_an_error(small_clip, tmp_path):
    with pytest.raises(MediaError, match="no frames"):
        Graph.parse("[0]dtgan.trim=start=100[out]").run([small_clip], [tmp_path / "o.mp4"],
                                                        progress=False)
    assert list(tmp_path.iterdir()) == []


def test_image_output_from_image_input(rgb_image, tmp_path):
    out = tmp_path / "one.mp4"
    stats = Graph.parse("[0]dtgan.resize=40:24[out]").run([rgb_image], [out], progress=False)
    assert stats.frames == 1 and (info_of(out).width, info_of(out).height) == (40, 24)


def test_progress_bar_goes_to_stderr(small_clip, tmp_path, capfd):
    Graph.parse("[0]dtgan.flip[out]").run([small_clip], [tmp_path / "o.mp4"], progress=True)
    captured = capfd.readouterr()
    assert captured.out == "" and "frame" in captured.err


# ======================================================================================= CLI
# Two runs in a subprocess (the real entry point); the rest call cli.main in-process, which
# is the same code without paying for a fresh interpreter each time.

def error_lines(text: str) -> list[str]:
    """stderr lines, less warnings about plugins of the environment that failed to load."""
    return [line for line in text.strip().splitlines()
            if not line.startswith("dtgan: warning: plugin")]


def cli(capfd, *args: str) -> tuple[int, str, str]:
    from dtgan_plugin.cli import main

    capfd.readouterr()
    rc = main(list(args))
    out, err = capfd.readouterr()
    return rc, out, err


def test_cli_graph_runs(small_clip, tmp_path):
    out = tmp_path / "cli.mp4"
    res = run_cli("graph", "[0]dtgan.resize=32:32,hflip[out]", "-i", str(small_clip),
                  "-o", str(out), "--no-progress", "--device", "cpu")
    assert res.returncode == 0, res.stderr.decode()
    assert info_of(out).width == 32 and b"wrote" in res.stderr


def test_cli_usage_error_exits_2_with_one_line(small_clip, tmp_path):
    res = run_cli("graph", "[0]dtgan.resise=32:32[out]", "-i", str(small_clip),
                  "-o", str(tmp_path / "o.mp4"))
    assert res.returncode == 2
    lines = error_lines(res.stderr.decode())
    assert len(lines) == 1 and "did you mean 'dtgan.resize'" in lines[0], lines
    assert b"Traceback" not in res.stderr and not (tmp_path / "o.mp4").exists()


def test_cli_named_inputs_and_outputs(small_clip, tmp_path, capfd):
    out = tmp_path / "named.mp4"
    rc, _, err = cli(capfd, "graph", "[src]dtgan.crop=32:32[small]", "-i", f"src={small_clip}",
                     "-o", f"small={out}", "--no-progress")
    assert rc == 0, err
    assert info_of(out).width == 32


def test_cli_dry_run_prints_the_plan(small_clip, tmp_path, capfd):
    rc, out, err = cli(capfd, "graph", "[0]hflip,dtgan.resize=32:32,vflip[out]", "-i",
                       str(small_clip), "-o", str(tmp_path / "x.mp4"), "--dry-run")
    assert rc == 0, err
    assert "decode [0] with ffmpeg -vf hflip" in out and "-vf vflip" in out
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("args,needle", [
    (["[0]dtgan.resize=32:32:foo=1[out]"], "unknown option 'foo'"),
    (["[0]dtgan.resize=32:32,hflip,dtgan.crop=8:8[out]"], "no ffmpeg process"),
    (["[0]dtgan.flip[out]", "--crf", "99"], "CRF must be between"),
    (["[0]dtgan.flip[out]", "--device", "tpu"], "unknown device"),
    (["[0]dtgan.flip[out]", "-o", "b.mp4"], "1 output"),
    (["[0]dtgan.flip[out]", "--codec", "nope"], "unknown codec"),
])
def test_cli_usage_errors(small_clip, tmp_path, capfd, args, needle):
    rc, _, err = cli(capfd, "graph", *args, "-i", str(small_clip), "-o", str(tmp_path / "o.mp4"))
    lines = error_lines(err)
    assert rc == 2, err
    assert len(lines) == 1 and needle in lines[0], lines
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()


def test_cli_missing_output_flag_is_usage_error(small_clip, capfd):
    rc, _, err = cli(capfd, "graph", "[0]dtgan.flip[out]", "-i", str(small_clip))
    assert rc == 2 and "Traceback" not in err


def test_cli_verbose_shows_the_caret(small_clip, tmp_path, capfd):
    rc, _, err = cli(capfd, "--verbose", "graph", "[0]dtgan.resise[out]", "-i", str(small_clip),
                     "-o", str(tmp_path / "o.mp4"))
    assert rc == 2 and "   ^" in err


def test_cli_missing_input_file_is_runtime_error(tmp_path, capfd):
    rc, _, err = cli(capfd, "graph", "[0]dtgan.flip[out]", "-i", str(tmp_path / "nope.mp4"),
                     "-o", str(tmp_path / "o.mp4"))
    assert rc == 1 and len(error_lines(err)) == 1, err


def test_io_argument_binding(tmp_path):
    from dtgan_plugin.errors import UsageError
    from dtgan_plugin.cli.graph import bind_inputs, bind_outputs

    weird = tmp_path / "a=b.mp4"
    weird.write_bytes(b"x")
    assert bind_inputs(["x.mp4", "tgt=face.png", str(weird)]) == {
        "0": "x.mp4", "tgt": "face.png", "2": str(weird)}
    assert bind_outputs(["a.mp4", "b.mp4"]) == (None, ["a.mp4", "b.mp4"])
    assert bind_outputs(["o1=a.mp4"]) == (["o1"], {"o1": "a.mp4"})
    with pytest.raises(UsageError, match="every -o or none"):
        bind_outputs(["o1=a.mp4", "b.mp4"])
    with pytest.raises(UsageError, match="twice"):
        bind_inputs(["v=a.mp4", "v=b.mp4"])
    with pytest.raises(UsageError, match="empty"):
        bind_inputs(["v="])


def test_cli_refuses_one_path_for_two_outputs(small_clip, tmp_path):
    """``dtgan graph … -o g.mp4 -o g.mp4`` is refused before any work (issue 13 #7)."""
    text = "[0]dtgan.split[a][b];[a]dtgan.flip[o1];[b]dtgan.flip[o2]"
    out = tmp_path / "g.mp4"
    res = run_cli("graph", text, "-i", str(small_clip), "-o", str(out), "-o", str(out))
    err = res.stderr.decode().strip()
    assert res.returncode == 2 and "g.mp4" in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "link").symlink_to(small_clip.parent)  # the input by another path
    res = run_cli("graph", "[0]dtgan.flip[out]", "-i", str(small_clip),
                  "-o", str(tmp_path / "link" / small_clip.name))
    err = res.stderr.decode().strip()
    assert res.returncode == 2 and "also an input" in err, err
