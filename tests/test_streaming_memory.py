"""Streaming keeps memory flat: a 10x longer video must not need more memory.

Each graph runs in a fresh interpreter so the peak RSS (``ru_maxrss``) belongs to that run
alone; ffmpeg's own processes are children and are not counted, which is what we want: the
Python side (decoded chunks, queues, stages) is ours to bound.

Two choices keep the measurement about the executor and its stages:

* chunks of 8 frames (6 MiB each at 256x256 in float32) keep the bounded queues' changing
  fill level small next to the ~250 MiB a torch process starts with, and
  ``DTGAN_MALLOC_TUNING=1`` removes glibc's heap settling in over the first ~1,000 frames
  (see :func:`dtgan_plugin.graph.executor.tune_allocator`), so the 10% bound resolves a few
  leaked chunks (measured: 268 and 270 MiB);
* the clips are MPEG-TS, which the ffmpeg-pipe reader decodes. decord, which reads .mp4,
  buffers decoded frames ahead by itself (its own memory grows to 150-450 MiB at 256x256
  in the first ~1,000 frames, then stays there), which would drown the signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

SCRIPT = r"""
import resource, sys
from dtgan_plugin.graph import Graph

stats = Graph.parse("[0]dtgan.resize=128:128[out]").run([sys.argv[1]], [sys.argv[2]],
                                                         progress=False, chunk_size=8)
print(stats.frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _clip(path: Path, frames: int) -> Path:
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc2=size=256x256:rate=25", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


def _peak_rss(src: Path, out: Path) -> tuple[int, int]:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DTGAN_MALLOC_TUNING="1", PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(src), str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    frames, rss_kib = res.stdout.split()[-2:]
    return int(frames), int(rss_kib)


def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    short = _clip(tmp_path / "short.ts", 300)
    long = _clip(tmp_path / "long.ts", 3000)
    n_short, rss_short = _peak_rss(short, tmp_path / "short_out.mp4")
    n_long, rss_long = _peak_rss(long, tmp_path / "long_out.mp4")
    assert (n_short, n_long) == (300, 3000)
    print(f"peak RSS: 300 frames {rss_short / 1024:.0f} MiB, 3000 frames {rss_long / 1024:.0f} MiB")
    # a 3000-frame 256x256 float32 video is 2.4 GB: holding even 1% of it would show
    assert rss_long <= rss_short * 1.10, (rss_short, rss_long)


def test_allocator_tuning_is_opt_in():
    code = "from dtgan_plugin.graph.executor import tune_allocator as t; print(t(), t())"
    root = Path(__file__).resolve().parents[1]
    for value, want in (("1", "True True"), ("0", "False False")):
        env = dict(os.environ, DTGAN_MALLOC_TUNING=value, PYTHONPATH=str(root))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        expected = want if sys.platform.startswith("linux") else "False False"
        assert res.stdout.split("\n")[-2].strip() == expected
