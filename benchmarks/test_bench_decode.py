"""Media throughput: decode (decord, ffmpeg pipe, y4m) and encode (h264, ffv1) frames per second.

256x256, 300 frames, chunks of 32. Frames per second go into ``benchmark.extra_info["fps"]``.

    pytest -p no:cacheprovider benchmarks/test_bench_decode.py --benchmark-only
    pytest benchmarks/test_bench_decode.py        # also runs (each benchmark once per round)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from dtgan_plugin.media import VideoWriter, find_ffmpeg, open_video
from dtgan_plugin.media.video import DecordReader, FFmpegReader, Y4MReader

FRAMES = 300
SIZE = 256
CHUNK = 32
ROUNDS = 3


def _make_clip(path: Path, *extra: str) -> Path:
    """A synthetic SIZE x SIZE clip of FRAMES frames made with ffmpeg's lavfi source."""
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={SIZE}x{SIZE}:rate=25", "-frames:v", str(FRAMES), *extra,
                    str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_clip(tmp_path_factory.mktemp("bench_decode") / "clip.mp4",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def y4m_clip(clip: Path) -> Path:
    path = clip.with_suffix(".y4m")
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-i", str(clip), str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def chunk(clip: Path) -> torch.Tensor:
    """One decoded chunk, written repeatedly by the encode benchmarks (no whole clip in RAM)."""
    with open_video(clip) as reader:
        return reader.get_batch(list(range(CHUNK)))


def _decode_all(open_reader) -> int:
    n = 0
    with open_reader() as reader:
        for c in reader.chunks(CHUNK):
            n += len(c)
    assert n == FRAMES
    return n


def _record(benchmark, frames: int) -> float:
    """Put frames/s (from the median round) into extra_info and return it."""
    stats = getattr(benchmark, "stats", None)
    median = None
    if stats is not None:
        inner = getattr(stats, "stats", stats)
        median = getattr(inner, "median", None)
    fps = frames / median if median else float("nan")
    benchmark.extra_info["fps"] = round(fps, 1)
    benchmark.extra_info["frames"] = frames
    benchmark.extra_info["size"] = f"{SIZE}x{SIZE}"
    return fps


@pytest.mark.parametrize("reader", ["decord", "ffmpeg-pipe", "y4m"])
def test_decode_fps(benchmark, clip: Path, y4m_clip: Path, reader: str):
    if reader == "decord":
        def open_reader():
            r = open_video(clip)
            assert isinstance(r, DecordReader)
            return r
    elif reader == "ffmpeg-pipe":
        def open_reader():
            r = open_video(clip, vf="null")  # any vf= routes decoding through an ffmpeg pipe
            assert isinstance(r, FFmpegReader)
            return r
    else:
        def open_reader():
            r = open_video(y4m_clip)
            assert isinstance(r, Y4MReader)
            return r
    frames = benchmark.pedantic(_decode_all, args=(open_reader,), rounds=ROUNDS, iterations=1)
    assert frames == FRAMES
    assert _record(benchmark, FRAMES) != 0


@pytest.mark.parametrize("codec,ext", [("h264", ".mp4"), ("ffv1", ".mkv")])
def test_encode_fps(benchmark, tmp_path: Path, chunk: torch.Tensor, codec: str, ext: str):
    counter = iter(range(10**6))

    def encode() -> int:
        out = tmp_path / f"out{next(counter)}{ext}"
        with VideoWriter(out, fps=25, width=SIZE, height=SIZE, codec=codec) as writer:
            for _ in range(FRAMES // CHUNK):
                writer.write(chunk)
            writer.write(chunk[: FRAMES % CHUNK])
        assert writer.frames_written == FRAMES
        out.unlink()
        return FRAMES

    frames = benchmark.pedantic(encode, rounds=ROUNDS, iterations=1)
    assert frames == FRAMES
    assert _record(benchmark, FRAMES) != 0


@pytest.mark.parametrize("width,height", [(512, 512), (1920, 1080)])
def test_frame_conversion_ms(benchmark, width: int, height: int):
    """The writer's own CPU per frame: a float (3, H, W) frame in [0, 1] rounded, clamped and
    interleaved into rgb24 bytes (``VideoWriter._frame_bytes``, reused buffers), without ffmpeg."""
    writer = VideoWriter(Path("unused.mp4"), fps=25, width=width, height=height)
    frames = torch.rand(8, 3, height, width)

    def convert() -> int:
        for frame in frames:
            writer._frame_bytes(frame)
        return len(frames)

    benchmark.pedantic(convert, rounds=5, iterations=3, warmup_rounds=1)
    ms = benchmark.stats.stats.median / len(frames) * 1000
    benchmark.extra_info.update(ms_per_frame=round(ms, 3), width=width, height=height)
    print(f"\nrgb24 conversion at {width}x{height}: {ms:.2f} ms/frame")
    assert ms > 0
