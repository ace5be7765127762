"""Peak memory of a streaming run at three output sizes: 256x256, 1920x1080 and 3840x2160.

Issue 13's goal: the peak of a 4K output stays within 1.5x the peak of a 256x256 output plus
the frames' own budget. Each run is a fresh ``dtgan`` process over a 300-frame 256x256 clip
(the input is small, so what grows is the output side alone), and its peak RSS is
``ru_maxrss`` from ``os.wait4`` (that process; its ffmpeg decoder is a child of it and is
counted only if it is larger, which at 256x256 it is not). The output is y4m to a pipe
(``-o -`` into /dev/null): the same streaming writer and queues, with no encoder's time in
the measurement, so a 4K run takes about a minute instead of several.

The frames' own budget is what the queues may hold by design at the output size::

    (DEFAULT_QUEUE + 2) x max(CHUNK_BYTES, one frame)

A chunk of output frames is at most ``CHUNK_BYTES`` (8 MiB), or one frame when a single frame
is larger (4K float32 is 95 MiB); a channel holds ``DEFAULT_QUEUE`` (3) chunks, and beside it
the stage producing the next chunk and the writer converting the previous one each hold one.

Two commands, each at the three sizes:

    dtgan graph '[0]dtgan.resize=W:H[out]' -i clip.mp4 -o -
    dtgan transfer -s clip.mp4 -t face.png -o - --crop none --size N   (N = 256, 1080, 2160)

``transfer --size`` makes square outputs, so its "1080p" and "4K" are 1080x1080 and
2160x2160 (the same heights). Figures go into ``benchmark.extra_info`` and are printed:

Measured on 2 shared cores (load ~5), peak MiB / budget MiB: graph 335 / 40 (256x256),
489 / 119 (1080p), 1023 / 475 (4K: over the 978 limit by 45); transfer 378 / 40 (256),
452 / 67 (1080), 688 / 267 (2160: within 826).

    pytest -p no:cacheprovider -s benchmarks/test_bench_memory.py --benchmark-only
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dtgan_plugin.graph.executor import DEFAULT_QUEUE
from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg
from dtgan_plugin.stream import CHUNK_BYTES, frame_bytes, frames_per_chunk

FRAMES = 300
CLIP = 256
MIB = 1 << 20
#: output sizes (width, height) per label, for each command
SIZES = {"graph": {"256": (256, 256), "1080p": (1920, 1080), "4k": (3840, 2160)},
         "transfer": {"256": (256, 256), "1080p": (1080, 1080), "4k": (2160, 2160)}}
#: peak MiB, budget MiB and seconds of each run, for the final check
PEAKS: dict[tuple[str, str], dict[str, float]] = {}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench_memory")
    clip, face = root / "clip.mp4", root / "face.png"
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={CLIP}x{CLIP}:rate=25", "-frames:v", str(FRAMES),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=128x128", "-frames:v", "1", str(face)], check=True)
    return {"clip": clip, "face": face}


def frames_budget(width: int, height: int) -> int:
    """Bytes of output frames the queues may hold by design (see the module docstring)."""
    chunk = frames_per_chunk(32, width, height) * frame_bytes(width, height)
    return (DEFAULT_QUEUE + 2) * max(CHUNK_BYTES, chunk)


def _args(command: str, label: str, media: dict[str, Path]) -> list[str]:
    w, h = SIZES[command][label]
    if command == "graph":
        return ["graph", f"[0]dtgan.resize={w}:{h}[out]", "-i", str(media["clip"]), "-o", "-",
                "--no-progress"]
    return ["transfer", "-s", str(media["clip"]), "-t", str(media["face"]), "-o", "-",
            "--crop", "none", "--size", str(w), "--no-progress"]


def peak_rss(args: list[str]) -> tuple[int, float]:
    """Peak RSS in bytes and wall seconds of ``dtgan ARGS`` run in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("DTGAN_MALLOC_TUNING", None)  # the CLI's own allocator setting, as users run it
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "dtgan_plugin", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        assert proc.returncode == 0, err.read().decode()[-2000:]
    return usage.ru_maxrss * 1024, seconds  # Linux reports KiB


def _measure(command: str, label: str, media: dict[str, Path]) -> dict[str, float]:
    rss, seconds = peak_rss(_args(command, label, media))
    w, h = SIZES[command][label]
    PEAKS[command, label] = row = {
        "peak_mib": round(rss / MIB, 1), "budget_mib": round(frames_budget(w, h) / MIB, 1),
        "fps": round(FRAMES / seconds, 1), "seconds": round(seconds, 1)}
    return row


@pytest.mark.parametrize("label", list(SIZES["graph"]))
@pytest.mark.parametrize("command", list(SIZES))
def test_peak_memory(benchmark, media, command: str, label: str) -> None:
    """One run per size (a peak needs no repeats: it is the same every time within a few MiB)."""
    row: dict[str, float] = {}
    benchmark.pedantic(lambda: row.update(_measure(command, label, media)), rounds=1,
                       iterations=1)
    w, h = SIZES[command][label]
    benchmark.extra_info.update(row, command=command, output=f"{w}x{h}", frames=FRAMES,
                                chunk_frames=frames_per_chunk(32, w, h),
                                chunk_bytes=CHUNK_BYTES, load=round(os.getloadavg()[0], 2))
    print(f"\n{command} {w}x{h}: peak {row['peak_mib']:.0f} MiB, frames' budget "
          f"{row['budget_mib']:.0f} MiB ({frames_per_chunk(32, w, h)} frames/chunk), "
          f"{row['fps']:.1f} frames/s")


@pytest.mark.parametrize("command", list(SIZES))
def test_4k_peak_within_goal(benchmark, media, command: str) -> None:
    """peak(4K) <= 1.5 x peak(256x256) + the 4K frames' budget (runs re-measured if needed)."""
    for label in ("256", "4k"):
        if (command, label) not in PEAKS:
            _measure(command, label, media)
    small, big = PEAKS[command, "256"], PEAKS[command, "4k"]
    limit = 1.5 * small["peak_mib"] + big["budget_mib"]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(peak_256_mib=small["peak_mib"], peak_4k_mib=big["peak_mib"],
                                budget_4k_mib=big["budget_mib"], limit_mib=round(limit, 1),
                                ratio=round(big["peak_mib"] / small["peak_mib"], 2))
    print(f"\n{command}: peak 4K {big['peak_mib']:.0f} MiB vs limit {limit:.0f} MiB "
          f"(1.5 x {small['peak_mib']:.0f} + {big['budget_mib']:.0f})")
    assert big["peak_mib"] <= limit, (PEAKS, limit)
