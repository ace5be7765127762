"""Media layer: readers, writers, y4m pipes, images and the media plugin (happy paths)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_clip
from dtgan_plugin.errors import MediaError, OptionError
from dtgan_plugin.media import (VideoWriter, find_ffmpeg, is_image_path, open_video,
                                open_video_stream, probe, read_image, write_image)
from dtgan_plugin.media.ffmpeg_bin import fps_fraction, fps_str, probe_file
from dtgan_plugin.media.video import DecordReader, FFmpegReader, Y4MReader
from dtgan_plugin.media.y4m import parse_header, planes_to_rgb
from dtgan_plugin.stream import PadKind, VideoChunk

REPO = Path(__file__).resolve().parents[1]


def u8(x: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] as the uint8 values they came from."""
    return (x * 255.0).round().to(torch.uint8)


def read_all(reader, chunk_size: int = 32) -> torch.Tensor:
    """Every frame of a reader, concatenated (only for tiny test clips)."""
    return torch.cat([c.frames for c in reader.chunks(chunk_size)])


def ffmpeg(*args: str, stdout=subprocess.DEVNULL, **kw) -> subprocess.CompletedProcess:
    """Run the ffmpeg binary with the given arguments, failing loudly."""
    return subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args],
                          check=True, stdout=stdout, **kw)


def streams_of(path: Path) -> str:
    """``ffmpeg -i`` stream lines (to check for Audio/Video streams)."""
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True)
    return "\n".join(line for line in out.stderr.splitlines() if "Stream #" in line)


def pyenv() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def frames(small_clip: Path) -> torch.Tensor:
    """The 30 frames of the small clip, decoded once."""
    with open_video(small_clip) as r:
        return read_all(r)


# ------------------------------------------------------------------------------ ffmpeg binary

def test_find_ffmpeg_is_an_executable_and_cached():
    exe = find_ffmpeg()
    assert os.access(exe, os.X_OK)
    assert find_ffmpeg() is exe
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True)
    assert out.stdout.startswith("ffmpeg version")


def test_find_ffmpeg_honours_env(monkeypatch, tmp_path):
    # a second copy under another path: only the variable can make find_ffmpeg pick it
    import shutil

    copy = tmp_path / "my-ffmpeg"
    shutil.copy2(find_ffmpeg(), copy)
    monkeypatch.setenv("DTGAN_FFMPEG", str(copy))
    assert find_ffmpeg() == str(copy) != shutil.which("ffmpeg")


@pytest.mark.parametrize("fps,expected", [(25.0, "25"), (30000 / 1001, "30000/1001"),
                                          (24000 / 1001, "24000/1001"), (12.5, "25/2"),
                                          ("60000/1001", "60000/1001"), (Fraction(15, 1), "15")])
def test_fps_is_kept_exact(fps, expected):
    assert fps_str(fps) == expected
    assert float(fps_fraction(fps)) == pytest.approx(float(Fraction(expected)))


# ------------------------------------------------------------------------------ decord reader

def test_decord_reader_info_and_frames(small_clip: Path, frames: torch.Tensor):
    with open_video(small_clip) as r:
        assert isinstance(r, DecordReader) and r.random_access
        assert r.info.kind is PadKind.VIDEO
        assert (r.info.width, r.info.height, r.info.num_frames, r.info.fps) == (64, 64, 30, 25.0)
        assert len(r) == 30 and r.path == str(small_clip) and not r.has_audio
    assert frames.shape == (30, 3, 64, 64) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert float(frames.std()) > 0.1  # a real picture, not a flat frame


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunk_sizes_give_the_same_frames(small_clip: Path, frames: torch.Tensor, chunk_size: int):
    with open_video(small_clip) as r:
        chunks = list(r.chunks(chunk_size))
    assert [c.start for c in chunks] == list(range(0, 30, chunk_size))
    assert all(isinstance(c, VideoChunk) and c.fps == 25.0 for c in chunks)
    assert max(len(c) for c in chunks) == min(chunk_size, 30)
    assert torch.equal(torch.cat([c.frames for c in chunks]), frames)


def test_random_access_equals_sequential(small_clip: Path, frames: torch.Tensor):
    with open_video(small_clip) as r:
        assert torch.equal(r.frame(13), frames[13])
        assert torch.equal(r.frame(-1), frames[29])
        assert torch.equal(r.get_batch([29, 0, 5, 5]), frames[[29, 0, 5, 5]])
        # random access in between does not disturb streaming
        part = list(r.chunks(4, start=10, stop=17))
    assert [c.start for c in part] == [10, 14]
    assert torch.equal(torch.cat([c.frames for c in part]), frames[10:17])


@pytest.mark.parametrize("size", [None, (32, 24), (40, -1)])
def test_decord_streams_through_ffmpeg_with_identical_frames(small_clip: Path, size):
    """Sequential chunks come from an ffmpeg pipe (flat memory); they must equal decord's."""
    with DecordReader(str(small_clip), size=size, stream="decord") as r:
        ref = read_all(r, 8)
        assert torch.equal(r.get_batch(list(range(30))), ref)
    with DecordReader(str(small_clip), size=size) as r:
        assert r.stream == "ffmpeg"
        streamed = list(r.chunks(8))
        late = list(r.chunks(8, start=3, stop=20))  # a start inside the first chunk: piped too
    assert [c.start for c in streamed] == [0, 8, 16, 24]
    assert torch.equal(torch.cat([c.frames for c in streamed]), ref)
    assert [c.start for c in late] == [3, 8, 16] and [len(c) for c in late] == [5, 8, 4]
    assert torch.equal(torch.cat([c.frames for c in late]), ref[3:20])
    with pytest.raises(OptionError):
        DecordReader(str(small_clip), stream="pyav")


def test_resize_on_decode(small_clip: Path, frames: torch.Tensor):
    with open_video(small_clip, size=(32, 24)) as r:
        assert (r.info.width, r.info.height) == (32, 24)
        small = read_all(r, 8)
    assert small.shape == (30, 3, 24, 32)
    # the downscaled picture matches the full one, downscaled here
    ref = torch.nn.functional.interpolate(frames, size=(24, 32), mode="area")
    assert float((small - ref).abs().mean()) < 0.06
    with open_video(small_clip, size=(32, -1)) as r:  # -1 keeps the aspect ratio
        assert (r.info.width, r.info.height) == (32, 32)


@pytest.mark.parametrize("width", [8, 16, 24, 48])
def test_decord_sizes_its_get_batch_mishandles(tmp_path: Path, width: int):
    # decord 0.6 fails get_batch (and mis-shapes single frames) at these sizes; we work around
    clip = tmp_path / "narrow.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={width}x20:rate=25", "-frames:v", "5",
           "-c:v", "ffv1", "-pix_fmt", "bgr0", str(clip))
    with open_video(clip) as r:
        assert isinstance(r, DecordReader) and (r.info.width, r.info.height) == (width, 20)
        ours = read_all(r, 2)
        assert torch.equal(r.get_batch([4, 1]), ours[[4, 1]])
    with open_video(clip, vf="null") as r:
        assert torch.equal(ours, read_all(r))


def _rss_mb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) // 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_decord_memory_stays_flat_over_long_clip(tmp_path: Path):
    clip = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=30", "-frames:v", "3000",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip))
    seen, marks = 0, {}
    with open_video(clip) as r:
        for c in r.chunks(64):
            seen += len(c)
            if c.start in (1024, 2944):
                marks[c.start] = _rss_mb()
    assert seen == 3000
    # the clip as float is 3000*64*64*3*4 B = 147 MB; holding it would add ~95 MB between the
    # marks. Allocator caching makes RSS plateau a little above the first chunks, hence 40.
    assert marks[2944] - marks[1024] < 40, marks


# ------------------------------------------------------------------------------ ffmpeg reader

def test_ffmpeg_reader_with_vf_knows_size_before_decoding(small_clip: Path, frames: torch.Tensor):
    with open_video(small_clip, vf="hflip") as r:
        assert isinstance(r, FFmpegReader) and not r.random_access
        assert (r.info.width, r.info.height, r.info.fps) == (64, 64, 25.0)
        flipped = read_all(r, 7)
        again = read_all(r, 64)  # each chunks() call restarts ffmpeg
    assert torch.equal(flipped, again)
    assert flipped.shape == frames.shape
    assert float((flipped - frames.flip(-1)).abs().mean()) < 2 / 255
    with open_video(small_clip, vf="scale=32:16,fps=5") as r:
        assert (r.info.width, r.info.height, r.info.fps) == (32, 16, 5.0)
        assert r.info.num_frames is None
        assert read_all(r).shape == (6, 3, 16, 32)


def test_ffmpeg_reader_start_stop(small_clip: Path):
    with open_video(small_clip, vf="null") as r:
        full = read_all(r)
        part = list(r.chunks(4, start=5, stop=12))
    assert [c.start for c in part] == [5, 8]
    assert torch.equal(torch.cat([c.frames for c in part]), full[5:12])


def test_files_decord_cannot_index_fall_back_to_ffmpeg(tmp_path: Path):
    # a Matroska written to a pipe has no duration; MPEG-TS trips decord at EOF
    mkv = tmp_path / "streamed.mkv"
    with open(mkv, "wb") as fh:
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10", "-frames:v", "12",
               "-c:v", "libx264", "-f", "matroska", "-", stdout=fh)
    ts = make_clip(tmp_path / "clip.ts", frames=12, size=32)
    gif = tmp_path / "clip.gif"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10", "-frames:v", "12", str(gif))
    for path in (mkv, ts, gif):
        with open_video(path) as r:
            assert isinstance(r, FFmpegReader)
            assert read_all(r).shape == (12, 3, 32, 32)


# ------------------------------------------------------------------------------ y4m

def test_y4m_header_parsing():
    h = parse_header(b"YUV4MPEG2 W64 H48 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG\n")
    assert (h.width, h.height, h.fps, h.colorspace, h.full_range) == (64, 48, Fraction(30000, 1001),
                                                                       "420jpeg", False)
    assert h.frame_bytes == 64 * 48 * 3 // 2
    h = parse_header(b"YUV4MPEG2 W7 H5 F25:1 C444p10 XCOLORRANGE=FULL")
    assert h.full_range and h.bit_depth == 10 and h.frame_bytes == 7 * 5 * 3 * 2
    assert parse_header(b"YUV4MPEG2 W7 H5 F25:1 C420").chroma_size == (4, 3)


def test_y4m_conversion_limited_and_full_range():
    # one gray, one pure red pixel pair in limited range; BT.601 red is Y=81 U=90 V=240
    hdr = parse_header(b"YUV4MPEG2 W2 H1 F25:1 C444")
    raw = np.array([[128, 81, 128, 90, 128, 240]], dtype=np.uint8)
    rgb = planes_to_rgb(raw, hdr)[0]
    assert rgb[:, 0, 0].tolist() == pytest.approx([112 / 219] * 3, abs=1e-5)
    assert u8(rgb[:, 0, 1]).tolist() == pytest.approx([255, 0, 0], abs=2)
    full = parse_header(b"YUV4MPEG2 W1 H1 F25:1 Cmono XCOLORRANGE=FULL")
    assert planes_to_rgb(np.array([[255]], dtype=np.uint8), full)[0, :, 0, 0].tolist() == [1, 1, 1]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p", "yuv422p", "gray"])
def test_y4m_file_matches_ffmpeg_rgb(tmp_path: Path, pix_fmt: str):
    y4m = tmp_path / "clip.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30000/1001", "-frames:v", "9",
           "-pix_fmt", pix_fmt, "-strict", "-1", str(y4m))
    with open_video(y4m) as r:
        assert isinstance(r, Y4MReader) and r.random_access
        assert r.info.num_frames == 9 and r.info.meta["fps_fraction"] == "30000/1001"
        ours = read_all(r, 4)
        assert torch.equal(r.frame(6), ours[6])
    with open_video(y4m, vf="null") as r:  # ffmpeg's own yuv->rgb24
        ref = read_all(r)
    assert ours.shape == ref.shape == (9, 3, 32, 48)
    assert float((ours - ref).abs().mean()) < 1.5 / 255
    assert float((ours - ref).abs().max()) < 24 / 255  # chroma upsampling differs at edges


@pytest.mark.parametrize("deep,shallow", [("yuv420p10le", "yuv420p"), ("yuv444p16le", "yuv444p"),
                                          ("gray12le", "gray")])
def test_y4m_high_bit_depth_matches_8bit(tmp_path: Path, deep: str, shallow: str):
    out = {}
    for fmt in (deep, shallow):
        path = tmp_path / f"{fmt}.y4m"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=25", "-frames:v", "3",
               "-pix_fmt", fmt, "-strict", "-1", str(path))
        with open_video(path) as r:
            out[fmt] = read_all(r)
    # testsrc2 draws in 8 bits, so the deep version carries the same picture (to rounding)
    assert float((out[deep] - out[shallow]).abs().max()) < 2 / 255
    assert float((out[deep] - out[shallow]).abs().mean()) < 0.5 / 255


def test_y4m_file_with_frame_parameters_reads_sequentially_and_again(tmp_path: Path):
    header = b"YUV4MPEG2 W4 H2 F25:1 C444 XCOLORRANGE=FULL\n"
    records = [b"FRAME Ixyz\n" + bytes([v]) * 24 for v in (0, 128, 255)]
    path = tmp_path / "params.y4m"
    path.write_bytes(header + b"".join(records))
    with open_video(path) as r:
        assert not r.random_access and r.info.num_frames is None
        first = read_all(r, 2)
        again = read_all(r, 1)
        with pytest.raises(MediaError, match="sequential"):
            r.frame(0)
    assert torch.equal(first, again) and first.shape == (3, 3, 2, 4)
    assert first[:, 0, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0], abs=1e-6)


Y4M_READER = """
import json, sys
from dtgan_plugin.media import open_video
kw = json.loads(sys.argv[1])
with open_video("-", **kw) as r:
    frames = [c.frames for c in r.chunks(4)]
import torch
x = torch.cat(frames)
print(json.dumps({"n": x.shape[0], "shape": list(x.shape[1:]), "fps": r.info.fps,
                  "frac": r.info.meta.get("fps_fraction"), "mean": float(x.mean())}))
"""


def _read_stdin(data: bytes, **kw) -> dict:
    out = subprocess.run([sys.executable, "-c", Y4M_READER, json.dumps(kw)], input=data,
                         capture_output=True, env=pyenv(), timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_y4m_on_stdin_from_ffmpeg():
    y4m = subprocess.run([find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i",
                          "testsrc2=size=64x48:rate=30000/1001", "-frames:v", "11",
                          "-f", "yuv4mpegpipe", "-"], capture_output=True, check=True).stdout
    res = _read_stdin(y4m)
    assert res["n"] == 11 and res["shape"] == [3, 48, 64]
    assert res["frac"] == "30000/1001" and res["fps"] == pytest.approx(30000 / 1001)
    # with a filter chain the stream goes through ffmpeg and still keeps the exact rate
    with open_video_stream(io.BytesIO(y4m), vf="scale=32:24") as r:
        assert (r.info.width, r.info.height, r.info.meta["fps_fraction"]) == (32, 24, "30000/1001")
        x = read_all(r, 4)
    assert x.shape == (11, 3, 24, 32)
    assert float(x.mean()) == pytest.approx(res["mean"], abs=0.02)


def test_non_y4m_stream_goes_through_ffmpeg():
    mkv = subprocess.run([find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i",
                          "testsrc2=size=32x32:rate=24", "-frames:v", "10", "-c:v", "ffv1",
                          "-f", "matroska", "-"], capture_output=True, check=True).stdout
    with open_video_stream(io.BytesIO(mkv)) as r:
        assert (r.info.fps, r.info.width, r.info.num_frames) == (24.0, 32, None)
        assert read_all(r).shape == (10, 3, 32, 32)
        with pytest.raises(MediaError, match="only once"):
            next(iter(r.chunks()))


def test_writer_y4m_on_stdout_reads_back(small_clip: Path, frames: torch.Tensor):
    code = f"""
import sys
from dtgan_plugin.media import open_video, VideoWriter
print("text on stderr", file=sys.stderr)
with open_video({str(small_clip)!r}) as r, VideoWriter("-", fps=30000/1001, width=64, height=64) as w:
    for c in r.chunks(8):
        w.write(c)
"""
    produced = subprocess.run([sys.executable, "-c", code], capture_output=True, env=pyenv(),
                              timeout=120)
    assert produced.returncode == 0, produced.stderr.decode()
    assert produced.stdout.startswith(b"YUV4MPEG2 W64 H64 F30000:1001")
    with open_video_stream(io.BytesIO(produced.stdout)) as r:
        assert isinstance(r, Y4MReader) and r.info.meta["fps_fraction"] == "30000/1001"
        back = read_all(r)
    assert back.shape == (30, 3, 64, 64)
    assert float((back - frames).abs().mean()) < 0.02


def test_fifo_input(tmp_path: Path, small_clip: Path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    y4m = tmp_path / "clip.y4m"
    ffmpeg("-i", str(small_clip), "-f", "yuv4mpegpipe", str(y4m))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    feeder = subprocess.Popen(["/bin/sh", "-c", f'cat "{y4m}" > "{fifo}"'])
    try:
        with open_video(fifo) as r:
            assert read_all(r).shape == (30, 3, 64, 64)
    finally:
        feeder.wait(timeout=30)


# ------------------------------------------------------------------------------ writer

@pytest.mark.parametrize("name,codec", [("lossless.mkv", "ffv1"), ("lossless.mkv", "h264rgb"),
                                        ("lossless.avi", "auto"), ("lossless.mp4", "h264rgb")])
def test_lossless_roundtrip_is_bit_exact(tmp_path: Path, frames: torch.Tensor, name, codec):
    out = tmp_path / name
    with VideoWriter(out, fps=25, width=64, height=64, codec=codec) as w:
        w.write(frames[:12])
        w.write(VideoChunk(frames[12:], start=12, fps=25.0))
        assert w.frames_written == 30
    with open_video(out) as r:
        assert r.info.num_frames == 30 and r.info.fps == 25.0
        back = read_all(r)
    assert torch.equal(u8(back), u8(frames))


def test_h264_writes_decodable_file_with_right_count_and_fps(tmp_path: Path, frames):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=30000 / 1001, width=64, height=64) as w:
        assert w.codec == "h264"
        w.write(u8(frames))  # uint8 frames are taken as they are
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with open_video(out) as r:
        assert r.info.num_frames == 30
        assert r.info.fps == pytest.approx(30000 / 1001)
        back = read_all(r)
    # crf 18 is visually lossless; testsrc2's sharp colour edges lose most to 4:2:0 chroma
    assert float((back - frames).abs().mean()) < 0.03


def test_writer_uses_a_hidden_temp_name_until_close(tmp_path: Path, frames):
    out = tmp_path / "out.mkv"
    w = VideoWriter(out, fps=25, width=64, height=64)
    w.write(frames[:3])
    temp = w.temp_path
    assert temp is not None and temp.parent == tmp_path
    assert temp.name.startswith(".out.partial-") and temp.suffix == ".mkv"
    assert not out.exists()
    assert w.close() == out
    assert not temp.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]
    assert w.close() == out  # idempotent


def test_abort_and_exception_leave_nothing(tmp_path: Path, frames):
    w = VideoWriter(tmp_path / "a.mp4", fps=25, width=64, height=64)
    w.write(frames[:5])
    w.abort()
    w.abort()
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "b.mkv", fps=25, width=64, height=64) as w2:
            w2.write(frames[:5])
            raise RuntimeError("boom")
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "c_%03d.png", fps=25, width=64, height=64) as w3:
            w3.write(frames[:2])
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []
    assert w._proc is None and w2._proc is None


def test_existing_output_is_replaced_atomically(tmp_path: Path, frames):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"old")
    with VideoWriter(out, fps=25, width=64, height=64) as w:
        w.write(frames[:2])
        assert out.read_bytes() == b"old"  # untouched until the new file is complete
    with open_video(out) as r:
        assert r.info.num_frames == 2


@pytest.mark.parametrize("name,reader_frames", [("out.gif", 10), ("out.webm", 10),
                                                ("out.y4m", 10), ("seq_%04d.png", 10)])
def test_other_codecs_are_decodable(tmp_path: Path, frames, name, reader_frames):
    out = tmp_path / name
    with VideoWriter(out, fps=10, width=64, height=64) as w:
        w.write(frames[:10])
    if "%" in name:
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == [f"seq_{i:04d}.png" for i in range(1, 11)]
        assert torch.equal(u8(read_image(tmp_path / "seq_0001.png")), u8(frames[0]))
    with open_video(out) as r:
        back = read_all(r)
        if "%" not in name:  # an image sequence has no frame rate of its own
            assert r.info.fps == pytest.approx(10.0)
    assert back.shape == (reader_frames, 3, 64, 64)
    tolerance = {".gif": 0.05, ".webm": 0.04, ".y4m": 0.02}.get(out.suffix, 0.01)
    assert float((back - frames[:10]).abs().mean()) < tolerance


def test_odd_size_h264_is_padded_to_even(tmp_path: Path):
    x = torch.rand(4, 3, 47, 63)
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, fps=25, width=63, height=47) as w:
        w.write(x)
    with open_video(out) as r:
        assert (r.info.width, r.info.height, r.info.num_frames) == (64, 48, 4)


def test_writer_vf_runs_inside_the_encoder(tmp_path: Path, frames):
    out = tmp_path / "flip.mkv"
    with VideoWriter(out, fps=25, width=64, height=64, vf="hflip") as w:
        w.write(frames[:6])
    with open_video(out) as r:
        assert torch.equal(u8(read_all(r)), u8(frames[:6].flip(-1)))
    out2 = tmp_path / "small.mkv"
    with VideoWriter(out2, fps=25, width=64, height=64, vf="scale=32:16") as w:
        w.write(frames[:3])
    with open_video(out2) as r:
        assert (r.info.width, r.info.height) == (32, 16)


def test_writer_accepts_single_frames_and_numpy(tmp_path: Path, frames):
    out = tmp_path / "one.mkv"
    with VideoWriter(out, fps=25, width=64, height=64) as w:
        w.write(frames[0])
        w.write(u8(frames[1:3]).numpy())
        w.write(frames[:0])  # an empty chunk is a no-op
        assert w.frames_written == 3
    with open_video(out) as r:
        assert torch.equal(u8(read_all(r)), u8(frames[:3]))


def test_writer_rounds_clamps_and_zeroes_nan(tmp_path: Path):
    values = torch.tensor([0.0, 0.5, 1.0, 1.7, -0.3, float("nan"), 0.2, 254.6 / 255])
    x = values.view(1, 1, 1, 8).expand(2, 3, 4, 8).contiguous()
    out = tmp_path / "levels.mkv"
    with VideoWriter(out, fps=25, width=8, height=4) as w:
        w.write(x)
        w.write(x.double()[:1])  # other float dtypes are accepted too
    with open_video(out) as r:
        back = u8(read_all(r))
    assert back.shape == (3, 3, 4, 8)
    assert back[0, 0, 0].tolist() == [0, 128, 255, 255, 0, 0, 51, 255]
    assert torch.equal(back[2], back[0])


# ------------------------------------------------------------------------------ audio

def test_audio_is_copied_with_audio_from(tmp_path: Path, audio_clip: Path):
    with open_video(audio_clip) as r:
        assert r.has_audio
        x = read_all(r)
    out = tmp_path / "with audio.mp4"
    with VideoWriter(out, fps=25, width=64, height=64, audio_from=audio_clip) as w:
        w.write(x)
    lines = streams_of(out)
    assert "Audio: aac" in lines and "Video: h264" in lines
    assert [p.name for p in tmp_path.iterdir()] == ["with audio.mp4"]
    with open_video(out) as r:
        assert r.info.num_frames == 50 and r.has_audio


def test_audio_is_cut_to_the_video_and_reencoded_when_needed(tmp_path: Path, audio_clip: Path,
                                                              frames):
    out = tmp_path / "short.webm"  # webm cannot hold AAC: re-encoded to Opus
    with VideoWriter(out, fps=25, width=64, height=64, audio_from=audio_clip) as w:
        w.write(frames[:10])
    assert "Audio: opus" in streams_of(out)
    info = probe_file(str(out))
    assert info.duration == pytest.approx(10 / 25, abs=0.08)  # not the source's 2 s
    with open_video(out) as r:
        assert r.info.num_frames == 10


def test_no_audio_unless_asked_and_silent_source_is_fine(tmp_path: Path, audio_clip: Path,
                                                         small_clip: Path, frames):
    plain = tmp_path / "plain.mp4"
    with VideoWriter(plain, fps=25, width=64, height=64) as w:
        w.write(frames[:5])
    assert "Audio" not in streams_of(plain)
    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, fps=25, width=64, height=64, audio_from=small_clip) as w:
        w.write(frames[:5])
    lines = streams_of(silent)
    assert "Video" in lines and "Audio" not in lines


# ------------------------------------------------------------------------------ file names

@pytest.mark.parametrize("name", ["with space.mp4", "quote's \"double\".mkv", "ünïcødé ✓.mp4",
                                  "-leading-dash.mp4", "colon:name.mkv", "50%.mkv"])
def test_awkward_file_names(tmp_path: Path, frames, name):
    out = tmp_path / name
    with VideoWriter(out, fps=25, width=64, height=64) as w:
        w.write(frames[:4])
    assert [p.name for p in tmp_path.iterdir()] == [name]
    with open_video(out) as r:
        assert r.info.num_frames == 4
    with open_video(out, vf="null") as r:  # the ffmpeg reader gets the same name right
        assert read_all(r).shape[0] == 4
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # relative, dash-first names must not be taken for options
        with open_video(name) as r:
            assert r.info.num_frames == 4
    finally:
        os.chdir(cwd)


def test_awkward_audio_and_image_names(tmp_path: Path, audio_clip: Path, rgb_image: Path, frames):
    src = tmp_path / "-sound 'ü'.mp4"
    src.write_bytes(audio_clip.read_bytes())
    out = tmp_path / "-out ü.mkv"
    with VideoWriter(out, fps=25, width=64, height=64, audio_from=src) as w:
        w.write(frames[:5])
    assert "Audio" in streams_of(out)
    img = tmp_path / "-tärget 'x'.png"
    img.write_bytes(rgb_image.read_bytes())
    assert read_image(img).shape == (3, 48, 80)


# ------------------------------------------------------------------------------ images

def _save(path: Path, arr: np.ndarray, mode: str | None = None, **kw) -> Path:
    from PIL import Image

    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    im.save(path, **kw)
    return path


def test_read_rgb_png_exactly(rgb_image: Path):
    from PIL import Image

    x = read_image(rgb_image)
    ref = np.array(Image.open(rgb_image))
    assert x.shape == (3, 48, 80) and x.dtype == torch.float32
    assert torch.equal(u8(x), torch.from_numpy(ref).permute(2, 0, 1))


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".bmp", ".tiff"])
def test_read_other_formats(tmp_path: Path, rgb_image: Path, ext):
    from PIL import Image

    path = tmp_path / f"img{ext}"
    Image.open(rgb_image).save(path)
    x = read_image(path)
    assert x.shape == (3, 48, 80)
    tol = 0.05 if ext in (".jpg", ".webp") else 0.0
    assert float((x - read_image(rgb_image)).abs().mean()) <= tol


def test_grayscale_palette_and_16bit_are_converted(tmp_path: Path):
    ramp = (np.arange(40 * 30).reshape(30, 40) % 256).astype(np.uint8)
    gray = read_image(_save(tmp_path / "g.png", ramp))
    assert gray.shape == (3, 30, 40) and torch.equal(gray[0], gray[2])
    assert torch.equal(u8(gray[1]), torch.from_numpy(ramp))
    from PIL import Image

    palette = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
    im = Image.frombytes("P", (40, 30), ramp.tobytes())
    im.putpalette(palette.tobytes())
    im.save(tmp_path / "p.png")
    pal = read_image(tmp_path / "p.png")
    assert torch.equal(u8(pal), torch.from_numpy(palette[ramp]).permute(2, 0, 1))
    deep = (np.arange(40 * 30).reshape(30, 40) * 53).astype(np.uint16)
    g16 = read_image(_save(tmp_path / "g16.png", deep))
    assert torch.allclose(g16[0].double(), torch.from_numpy(deep / 65535.0), atol=1e-6)
    # 16-bit colour: Pillow would cut it to 8 bits; every 16-bit level must survive
    rgb48 = np.random.default_rng(1).integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    for pix_fmt, ext in (("rgb48le", ".png"), ("rgb48le", ".tiff")):
        path = tmp_path / f"rgb48{ext}"
        ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", "40x30", "-i", "-",
               "-frames:v", "1", str(path), input=rgb48.astype("<u2").tobytes())
        x16 = read_image(path)
        assert x16.shape == (3, 30, 40)
        assert torch.equal((x16.double() * 65535).round().to(torch.int32),
                           torch.from_numpy(rgb48.astype(np.int32)).permute(2, 0, 1))


def test_alpha_refused_by_default_then_composited_or_dropped(tmp_path: Path):
    rgba = np.zeros((10, 12, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0
    rgba[:, :6, 3] = 255
    path = _save(tmp_path / "alpha.png", rgba)
    with pytest.raises(MediaError, match="alpha") as info:
        read_image(path)
    assert "composite" in str(info.value) and "\n" not in str(info.value)
    comp = read_image(path, alpha="composite")
    assert u8(comp[:, 0, 0]).tolist() == [200, 0, 0]    # opaque: the colour
    assert u8(comp[:, 0, 11]).tolist() == [255, 255, 255]  # transparent: white
    drop = read_image(path, alpha="drop")
    assert u8(drop[:, 0, 11]).tolist() == [200, 0, 0]
    opaque = rgba.copy()
    opaque[..., 3] = 255  # an alpha channel that is all opaque carries nothing: accepted
    assert read_image(_save(tmp_path / "opaque.png", opaque)).shape == (3, 10, 12)
    from PIL import Image

    index = np.zeros((10, 12), dtype=np.uint8)
    index[:, :6] = 1
    pal = Image.frombytes("P", (12, 10), index.tobytes())
    pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    pal.save(tmp_path / "tp.png", transparency=0)  # palette entry 0 is transparent
    with pytest.raises(MediaError, match="alpha"):
        read_image(tmp_path / "tp.png")
    assert u8(read_image(tmp_path / "tp.png", alpha="composite")[:, 0, 11]).tolist() == [255] * 3


def test_write_image_roundtrip_and_atomic(tmp_path: Path, rgb_image: Path):
    x = read_image(rgb_image)
    out = tmp_path / "copy.png"
    assert write_image(out, x) == out
    assert torch.equal(u8(read_image(out)), u8(x))
    assert [p.name for p in tmp_path.iterdir()] == ["copy.png"]
    write_image(tmp_path / "copy.jpg", u8(x))
    assert read_image(tmp_path / "copy.jpg").shape == (3, 48, 80)


def test_probe_and_is_image_path(small_clip: Path, rgb_image: Path, tmp_path: Path):
    info = probe(small_clip)
    assert (info.kind, info.width, info.height, info.num_frames, info.fps) == (
        PadKind.VIDEO, 64, 64, 30, 25.0)
    img = probe(rgb_image)
    assert (img.kind, img.width, img.height) == (PadKind.IMAGE, 80, 48)
    assert is_image_path("a/b.PNG") and is_image_path("x.jpeg") and is_image_path("t.tif")
    assert not is_image_path("v.mp4") and not is_image_path("seq_%05d.png")


# ------------------------------------------------------------------------------ plugin

def test_media_plugin_registers_readers_and_writers():
    from dtgan_plugin.hooks import get_registry, reset_plugins

    reset_plugins()
    reg = get_registry()
    readers = {e.name: e for e in reg.entries("readers")}
    assert {"decord", "ffmpeg", "y4m"} <= set(readers)
    assert readers["decord"].extra["priority"] > readers["ffmpeg"].extra["priority"]
    assert ".mp4" in readers["decord"].extra["extensions"]
    assert "*" in readers["ffmpeg"].extra["extensions"]
    assert readers["decord"].plugin == "dtgan_plugin.media.plugin"
    writer = reg.get("writers", "ffmpeg")
    assert writer is not None and ".mp4" in writer.extra["extensions"]


def test_plugin_openers_work(small_clip: Path, tmp_path: Path, frames):
    from dtgan_plugin.media import plugin

    with plugin.open_ffmpeg(small_clip) as r:
        assert isinstance(r, FFmpegReader) and read_all(r).shape == (30, 3, 64, 64)
    with plugin.open_decord(small_clip, size=(32, 32)) as r:
        assert isinstance(r, DecordReader) and r.info.width == 32
    w = plugin.open_writer(tmp_path / "o.mkv", fps=25, width=64, height=64)
    w.write(frames[:2])
    assert w.close().exists()


def test_plugin_import_is_light():
    code = ("import sys, dtgan_plugin.media.plugin, dtgan_plugin.media.ffmpeg_bin; "
            "print('torch' in sys.modules, 'decord' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=pyenv(), timeout=60)
    assert out.returncode == 0, out.stderr
    # dtgan_plugin/__init__ may import torch for the public API; decord must stay lazy
    assert out.stdout.split()[1] == "False"
