"""Media layer: every bad input gives one clear line (MediaError/OptionError/EncodeError)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_clip
from dtgan_plugin.errors import DtganError, EncodeError, MediaError, OptionError
from dtgan_plugin.media import (FrameRangeError, VideoWriter, find_ffmpeg, open_video,
                                open_video_stream, probe, read_image, write_image)
from dtgan_plugin.media.y4m import parse_header

REPO = Path(__file__).resolve().parents[1]


def one_line(err: pytest.ExceptionInfo) -> str:
    """The error's message, checked to be a single line that is not a traceback or C++ dump."""
    text = str(err.value)
    assert "\n" not in text and text.strip() == text and text
    assert "Traceback" not in text and ".cc:" not in text and "0x" not in text
    assert isinstance(err.value, DtganError)
    return text


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory: pytest.TempPathFactory, small_clip: Path) -> Path:
    """Broken media made once: truncated mp4s, a text file, empty and zero-frame videos."""
    d = tmp_path_factory.mktemp("bad")
    ff = find_ffmpeg()
    data = small_clip.read_bytes()
    (d / "half.mp4").write_bytes(data[: len(data) // 2])  # moov is at the end: lost
    fast = d / "fast.mp4"
    subprocess.run([ff, "-loglevel", "error", "-y", "-i", str(small_clip), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True)
    fdata = fast.read_bytes()
    (d / "fast_half.mp4").write_bytes(fdata[: len(fdata) // 2])  # index kept, frames lost
    (d / "notes.mp4").write_text("this is not a video\nsecond line\n")
    (d / "empty.mp4").write_bytes(b"")
    (d / "random.mkv").write_bytes(np.random.default_rng(0).bytes(20000))
    subprocess.run([ff, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1",
                    "-c:a", "aac", str(d / "audio_only.mp4")], check=True)
    subprocess.run([ff, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=32x32:rate=10:duration=1", "-vf", "select=0", "-c:v", "ffv1",
                    str(d / "zero_frames.mkv")], check=True)
    (d / "zero_frames.y4m").write_bytes(b"YUV4MPEG2 W32 H32 F25:1 C420jpeg\n")
    (d / "folder.mp4").mkdir()
    return d


# ------------------------------------------------------------------------------ readers

@pytest.mark.parametrize("name,expect", [
    ("missing.mp4", "not found"),
    ("empty.mp4", "empty (0 bytes)"),
    ("half.mp4", "truncated"),
    ("notes.mp4", "text file, not a video"),
    ("random.mkv", "cannot read video"),
    ("audio_only.mp4", "no video stream (audio only)"),
    ("zero_frames.mkv", "contains no frames"),
    ("zero_frames.y4m", "contains no frames"),
    ("folder.mp4", "is a directory"),
])
def test_bad_video_inputs(bad_dir: Path, capfd, name: str, expect: str):
    with pytest.raises(MediaError) as err:
        with open_video(bad_dir / name) as r:
            list(r.chunks())
    text = one_line(err)
    assert expect in text and name in text
    assert "(" in text  # every message carries a hint on how to fix it
    # decord's own C++ log lines must not reach the user
    assert "video_reader.cc" not in capfd.readouterr().err


def test_truncated_mp4_with_index_fails_cleanly_in_process(bad_dir: Path, capfd):
    # the index survives, the frames do not: decord must raise, not crash or hang
    with pytest.raises(MediaError) as err:
        with open_video(bad_dir / "fast_half.mp4") as r:
            for _ in r.chunks(8):
                pass
    assert "truncated or corrupt" in one_line(err)
    assert "video_reader.cc" not in capfd.readouterr().err


def test_bad_inputs_through_the_ffmpeg_reader(bad_dir: Path):
    for name, expect in [("notes.mp4", "text file"), ("half.mp4", "truncated"),
                         ("audio_only.mp4", "no video stream"), ("empty.mp4", "empty")]:
        with pytest.raises(MediaError) as err:
            open_video(bad_dir / name, vf="hflip")
        assert expect in one_line(err), name


def test_bad_filter_chain_fails_at_open(small_clip: Path):
    with pytest.raises(MediaError) as err:
        open_video(small_clip, vf="scale=32")
    text = one_line(err)
    assert "scale=32" in text and "Invalid size" in text
    with pytest.raises(MediaError) as err:
        open_video(small_clip, vf="hflip,nosuchfilter")
    assert "No such filter: 'nosuchfilter'" in one_line(err)


def test_image_passed_as_video(rgb_image: Path):
    with pytest.raises(MediaError, match="is an image, not a video"):
        open_video(rgb_image)


def test_sequential_reader_refuses_random_access(small_clip: Path):
    with open_video(small_clip, vf="hflip") as r:
        with pytest.raises(MediaError) as err:
            r.frame(0)
        assert "random access" in one_line(err)
        with pytest.raises(TypeError):
            len(r)  # unknown until read


def test_bad_ranges_and_options(small_clip: Path):
    with open_video(small_clip) as r:
        with pytest.raises(FrameRangeError) as err:
            r.frame(30)
        assert "out of range" in one_line(err) and isinstance(err.value, IndexError)
        with pytest.raises(IndexError):
            r.get_batch([0, -31])
        with pytest.raises(OptionError):
            list(r.chunks(0))
        with pytest.raises(OptionError):
            list(r.chunks(4, start=5, stop=2))
        with pytest.raises(FrameRangeError):
            list(r.chunks(4, start=31))
    with pytest.raises(MediaError, match="closed"):
        list(r.chunks())
    for size in [(0, 10), (-1, -1), "big", (10, -5)]:
        with pytest.raises(OptionError):
            open_video(small_clip, size=size)


def test_garbage_and_truncated_streams():
    with pytest.raises(MediaError) as err:
        open_video_stream(io.BytesIO(b"hello, this is text\n" * 50))
    assert "Invalid data" in one_line(err)
    with pytest.raises(MediaError, match="empty"):
        open_video_stream(io.BytesIO(b""))
    header = b"YUV4MPEG2 W4 H4 F25:1 C444\n"
    cut = header + b"FRAME\n" + bytes(48) + b"FRAME\n" + bytes(10)
    with open_video_stream(io.BytesIO(cut)) as r:
        with pytest.raises(MediaError) as err:
            list(r.chunks())
    assert "ended in the middle of frame 1" in one_line(err)
    bad_marker = header + b"FRAME\n" + bytes(48) + b"JUNK\n"
    with open_video_stream(io.BytesIO(bad_marker)) as r:
        with pytest.raises(MediaError, match="expected a FRAME marker"):
            list(r.chunks())


@pytest.mark.parametrize("line,expect", [
    (b"YUV4MPEG2 W0 H4 F25:1", "no valid frame size"),
    (b"YUV4MPEG2 W4 H4 F25:0", "malformed"),
    (b"YUV4MPEG2 W4 H4 F25:1 C411p99", "not supported"),
    (b"YUV4MPEG2 Wx H4", "malformed"),
    (b"MPEG2 W4", "not a YUV4MPEG2"),
])
def test_bad_y4m_headers(line: bytes, expect: str):
    with pytest.raises(MediaError) as err:
        parse_header(line)
    assert expect in one_line(err)


def test_stdin_garbage_is_one_line_in_a_real_pipe():
    code = ("from dtgan_plugin.media import open_video\n"
            "from dtgan_plugin.errors import DtganError\n"
            "try:\n    open_video('-')\n"
            "except DtganError as e:\n    print(e)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], input=b"plain text\n", capture_output=True,
                         env=env, timeout=120)
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1 and "stdin" in lines[0] and "Invalid data" in lines[0]
    assert out.stderr == b""


def test_probe_errors(bad_dir: Path):
    with pytest.raises(MediaError, match="not found"):
        probe(bad_dir / "nope.mp4")
    with pytest.raises(MediaError, match="stdin"):
        probe("-")


# ------------------------------------------------------------------------------ writer

def test_unknown_codec_lists_choices(tmp_path: Path):
    with pytest.raises(OptionError) as err:
        VideoWriter(tmp_path / "o.mp4", fps=25, width=8, height=8, codec="hevc")
    text = one_line(err)
    for name in ("h264", "h264rgb", "ffv1", "vp9", "gif", "png", "y4m"):
        assert name in text


@pytest.mark.parametrize("name,codec,expect", [
    ("o.mp4", "ffv1", "cannot be written to a .mp4"),
    ("o.webm", "h264", "cannot be written to a .webm"),
    ("o.gif", "vp9", "cannot be written"),
    ("o.xyz", "auto", "cannot choose a codec"),
    ("o.png", "auto", "pattern"),
    ("o.png", "png", "pattern"),
])
def test_incompatible_codec_and_container(tmp_path: Path, name, codec, expect):
    with pytest.raises(OptionError) as err:
        VideoWriter(tmp_path / name, fps=25, width=8, height=8, codec=codec)
    assert expect in one_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw,expect", [
    ({"crf": 60}, "crf for h264 must be"),
    ({"crf": 10, "codec": "ffv1", "name": "o.mkv"}, "crf applies to h264 and vp9"),
    ({"preset": "turbo"}, "preset 'turbo' is not valid"),
    ({"preset": "good", "name": "o.gif"}, "preset applies"),
    ({"fps": 0}, "invalid frame rate"),
    ({"width": 0}, "width must be a positive integer"),
    ({"vf": "scale=oops"}, "invalid filter chain"),
    ({"audio_from": "SRC", "name": "o.gif"}, "cannot carry audio"),
])
def test_bad_writer_options(tmp_path: Path, small_clip: Path, kw, expect):
    args = {"fps": 25, "width": 8, "height": 8}
    name = kw.pop("name", "o.mp4")
    if kw.get("audio_from") == "SRC":
        kw["audio_from"] = small_clip
    args.update(kw)
    with pytest.raises(OptionError) as err:
        VideoWriter(tmp_path / name, **args)
    assert expect in one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_output_folder_missing_or_taken(tmp_path: Path):
    with pytest.raises(MediaError) as err:
        VideoWriter(tmp_path / "nope" / "o.mp4", fps=25, width=8, height=8)
    assert "does not exist" in one_line(err)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="is a directory"):
        VideoWriter(tmp_path / "dir.mp4", fps=25, width=8, height=8)
    (tmp_path / "keep.mp4").write_bytes(b"x")
    with pytest.raises(MediaError, match="already exists"):
        VideoWriter(tmp_path / "keep.mp4", fps=25, width=8, height=8, overwrite=False)
    assert (tmp_path / "keep.mp4").read_bytes() == b"x"
    with pytest.raises(MediaError, match="audio source not found"):
        VideoWriter(tmp_path / "a.mp4", fps=25, width=8, height=8, audio_from=tmp_path / "no.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.mp4", "keep.mp4"]


def test_frame_shape_and_type_mismatch(tmp_path: Path):
    with VideoWriter(tmp_path / "o.mkv", fps=25, width=16, height=8) as w:
        with pytest.raises(MediaError) as err:
            w.write(torch.zeros(2, 3, 16, 8))
        assert "8x16 does not match the writer's 16x8" in one_line(err)
        with pytest.raises(MediaError, match=r"\(T, 3, H, W\)"):
            w.write(torch.zeros(2, 8, 16, 3))
        with pytest.raises(MediaError, match="float frames in"):
            w.write(torch.zeros(1, 3, 8, 16, dtype=torch.int64))
        with pytest.raises(MediaError, match="VideoChunk or a tensor"):
            w.write([1, 2, 3])
        w.write(torch.zeros(1, 3, 8, 16))
    assert [p.name for p in tmp_path.iterdir()] == ["o.mkv"]


def test_ffmpeg_dying_mid_write_is_an_encode_error(tmp_path: Path):
    w = VideoWriter(tmp_path / "o.mp4", fps=25, width=64, height=64)
    w.write(torch.rand(2, 3, 64, 64))
    w._proc.kill()  # simulate ffmpeg crashing (or being killed) while we write
    w._proc.wait()
    with pytest.raises(EncodeError) as err:
        for _ in range(50):  # the pipe buffer may take a few writes to notice
            w.write(torch.rand(8, 3, 64, 64))
    assert "encoding" in one_line(err)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone
    with pytest.raises(EncodeError, match="aborted|cannot take frames"):
        w.write(torch.rand(1, 3, 64, 64))


def test_encoder_failure_at_close_is_an_encode_error(tmp_path: Path):
    # an option libx264 rejects surfaces when ffmpeg opens the encoder, with its own reason
    w = VideoWriter(tmp_path / "o.mp4", fps=25, width=64, height=64,
                    options={"profile:v": "nonsense"})
    with pytest.raises(EncodeError) as err:
        w.write(torch.rand(4, 3, 64, 64))
        w.close()
    assert "profile" in one_line(err).lower()
    assert list(tmp_path.iterdir()) == []


def test_closing_without_frames_and_writing_after_close(tmp_path: Path):
    w = VideoWriter(tmp_path / "o.mkv", fps=25, width=8, height=8)
    with pytest.raises(EncodeError) as err:
        w.close()
    assert "no frames" in one_line(err)
    assert list(tmp_path.iterdir()) == []
    w2 = VideoWriter(tmp_path / "p.mkv", fps=25, width=8, height=8)
    w2.write(torch.zeros(1, 3, 8, 8))
    w2.close()
    with pytest.raises(EncodeError, match="closed"):
        w2.write(torch.zeros(1, 3, 8, 8))


def test_stdout_refuses_audio(small_clip: Path):
    with pytest.raises(OptionError, match="stdout cannot carry audio"):
        VideoWriter("-", fps=25, width=8, height=8, audio_from=small_clip)


# ------------------------------------------------------------------------------ images

def test_bad_images(tmp_path: Path, rgb_image: Path, small_clip: Path):
    cases = {
        "missing.png": ("not found", None),
        "notes.png": ("not an image", b"just some text\n"),
        "cut.png": ("truncated or corrupt", rgb_image.read_bytes()[:-40]),
        "empty.jpg": ("empty (0 bytes)", b""),
        "video.png": ("not an image", small_clip.read_bytes()),
    }
    for name, (expect, data) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(MediaError) as err:
            read_image(tmp_path / name)
        assert expect in one_line(err), name
    with pytest.raises(MediaError, match="is a directory"):
        read_image(tmp_path)
    with pytest.raises(OptionError, match="alpha must be one of"):
        read_image(rgb_image, alpha="blend")


def test_bad_image_writes(tmp_path: Path):
    img = torch.rand(3, 8, 8)
    with pytest.raises(MediaError, match="does not exist"):
        write_image(tmp_path / "no" / "x.png", img)
    with pytest.raises(OptionError, match="extension"):
        write_image(tmp_path / "x.gifx", img)
    with pytest.raises(MediaError, match=r"\(3, H, W\)"):
        write_image(tmp_path / "x.png", torch.rand(8, 8, 3))
    assert list(tmp_path.iterdir()) == []


def test_bad_ffmpeg_env(monkeypatch):
    monkeypatch.setenv("DTGAN_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(MediaError) as err:
        find_ffmpeg()
    assert "DTGAN_FFMPEG" in one_line(err)


def test_ts_clip_helper_still_decodes(tmp_path: Path):
    # guards the fallback list: .ts goes to ffmpeg, never to decord's failing EOF path
    clip = make_clip(tmp_path / "c.ts", frames=5, size=16)
    with open_video(clip) as r:
        assert sum(len(c) for c in r.chunks()) == 5
