"""Streaming keeps memory flat: a 10x longer video must not need more memory.

Each graph runs in a fresh interpreter so the peak RSS (``ru_maxrss``) belongs to that run
alone; ffmpeg's own processes are children and are not counted, which is what we want: the
Python side (decoded chunks, queues, stages) is ours to bound.

The graph runs exactly as a user runs it: ``dtgan graph`` with its defaults on an .mp4 (decord
indexes it, an ffmpeg pipe streams it). Measured: 290-296 MiB over 300 frames, 297-305 MiB over
3,000. What keeps it flat: pooled chunk buffers (``media/framepool.py``), chunks capped at
8 MiB (``stream.frames_per_chunk``), decord's read-ahead kept out of the streaming path
(``DecordReader`` docstring), and the CLI's allocator setting (``tune_allocator``).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg
from dtgan_plugin.media.framepool import FramePool, to_float_into

SCRIPT = r"""
import resource, sys
from dtgan_plugin.cli import main

rc = main(["graph", "[0]dtgan.resize=128:128[out]", "-i", sys.argv[1], "-o", sys.argv[2],
           "--no-progress"])
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _clip(path: Path, frames: int) -> Path:
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc2=size=256x256:rate=25", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


def _peak_rss(src: Path, out: Path) -> int:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("DTGAN_MALLOC_TUNING", None)
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(src), str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    rc, rss_kib = res.stdout.split()[-2:]
    assert rc == "0", res.stderr
    return int(rss_kib)


def _frames(path: Path) -> int:
    from dtgan_plugin.media.video import open_video

    with open_video(path) as reader:
        return int(reader.info.num_frames)


def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    short = _clip(tmp_path / "short.mp4", 300)
    long = _clip(tmp_path / "long.mp4", 3000)
    rss_short = _peak_rss(short, tmp_path / "short_out.mp4")
    rss_long = _peak_rss(long, tmp_path / "long_out.mp4")
    assert (_frames(tmp_path / "short_out.mp4"), _frames(tmp_path / "long_out.mp4")) == (300, 3000)
    print(f"peak RSS: 300 frames {rss_short / 1024:.0f} MiB, 3000 frames {rss_long / 1024:.0f} MiB")
    # a 3000-frame 256x256 float32 video is 2.4 GB: holding even 1% of it would show
    assert rss_long <= rss_short * 1.10, (rss_short, rss_long)


def test_frame_pool_reuses_a_buffer_only_when_every_view_is_gone():
    pool = FramePool((4, 3, 8, 8))
    a = pool.acquire()
    view = a[1:3].permute(0, 2, 3, 1)  # a view keeps the buffer as much as the tensor does
    ptr = a.data_ptr()
    del a
    gc.collect()
    assert pool.free == 0
    b = pool.acquire()
    assert b.data_ptr() != ptr and pool.allocated == 2
    b.zero_()
    view.fill_(1.0)  # still valid memory, and not b's
    assert float(b.sum()) == 0.0 and float(view.sum()) == view.numel()
    del view, b
    gc.collect()
    assert pool.free == 2
    c = pool.acquire(3)
    assert c.shape == (3, 3, 8, 8) and pool.allocated == 2 and pool.free == 1
    pool.close()
    del c
    gc.collect()
    assert pool.free == 0  # a closed pool keeps nothing


def test_frame_pool_survives_other_threads_and_converts_exactly():
    import threading

    pool = FramePool((2, 3, 4, 5))
    u8 = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), np.uint8))
    out = to_float_into(u8.numpy(), pool.acquire())
    want = u8.permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(out, want)
    box = [out]
    del out
    t = threading.Thread(target=box.clear)  # the last reference dies on another thread
    t.start()
    t.join()
    gc.collect()
    assert pool.free == 1


def test_allocator_tuning_follows_the_setting_then_the_default():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from dtgan_plugin.graph.executor import tune_allocator as t; "
            "print(t(default=sys.argv[1] == 'on'))")
    linux = sys.platform.startswith("linux")
    for value, default, want in (("1", "off", linux), ("0", "on", False), ("", "on", linux),
                                 ("", "off", False)):
        env = dict(os.environ, PYTHONPATH=str(root))
        env.pop("DTGAN_MALLOC_TUNING", None)
        if value:
            env["DTGAN_MALLOC_TUNING"] = value
        res = subprocess.run([sys.executable, "-c", code, default], capture_output=True,
                             text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == str(want), (value, default, res.stdout)
