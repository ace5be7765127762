"""Throughput of the procedural face renderer (``synthfaces``) on CPU (pytest-benchmark).

Run alone (other CPU load skews every figure)::

    PYTHONPATH=. .venv/bin/python -m pytest benchmarks/test_bench_synthfaces.py --benchmark-only \
        --benchmark-columns=median,ops,rounds

Cases:

* ``render[64]``, ``render[128]`` — :func:`render` of 16 clips × 16 frames (16 identities);
* ``sample_batch[64]`` — what the trainer calls per step: 16 fresh clips of 16 frames with
  their targets and cross-identity truths (half the pairs are cross pairs, rendered twice).

``extra_info`` holds frames/s (from the median wall time), frames per CPU-second (from the
least process CPU time, which a busy machine distorts much less), torch's thread count, the
1-minute load average and the batch shape.
The renderer is meant to feed training on the fly: ≥ 2,000 frames/s at 64×64 on a free 2-core
CPU. Set ``DTGAN_BENCH_ASSERT=1`` to make that a hard check.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from dtgan_plugin import synthfaces as sf

CLIPS, FRAMES = 16, 16


class _CpuTimed:
    """Wraps a function and keeps the least process CPU time of its calls: on a loaded
    machine wall time mostly measures the other processes, CPU time much less so."""

    def __init__(self, fn) -> None:
        self.fn, self.best = fn, float("inf")

    def __call__(self, *args):
        start = time.process_time()
        out = self.fn(*args)
        self.best = min(self.best, time.process_time() - start)
        return out


def _record(benchmark, timed: _CpuTimed, frames: int, size: int) -> float:
    if benchmark.disabled:  # --benchmark-disable: a smoke run, nothing was timed
        return 0.0
    fps = frames / benchmark.stats.stats.median
    benchmark.extra_info.update(
        frames_per_s=round(fps, 1), frames_per_cpu_s=round(frames / timed.best, 1), size=size,
        clips=CLIPS, frames_per_clip=FRAMES, threads=torch.get_num_threads(),
        load_avg_1min=round(os.getloadavg()[0], 2))
    return fps


@pytest.mark.parametrize("size", [64, 128])
def test_bench_render(benchmark, size: int) -> None:
    """Render 16 clips × 16 frames in one call."""
    g = torch.Generator().manual_seed(0)
    identity = sf.sample_identities(CLIPS, g)
    params, _ = sf.sample_dynamics(CLIPS, FRAMES, g)
    sf.render(identity, params, size)  # warm-up: first calls pay for lazy initialisation
    timed = _CpuTimed(sf.render)
    out = benchmark.pedantic(timed, args=(identity, params, size), rounds=5,
                             warmup_rounds=1, iterations=1)
    assert out.shape == (CLIPS, FRAMES, 3, size, size)
    fps = _record(benchmark, timed, CLIPS * FRAMES, size)
    if fps and size == 64 and os.environ.get("DTGAN_BENCH_ASSERT") == "1":
        assert fps >= 2000, f"renderer at 64x64: {fps:.0f} frames/s < 2000"


def test_bench_sample_batch(benchmark) -> None:
    """One training batch: sources, targets and truths (50% cross pairs) at 64×64."""
    ds = sf.SynthFaceClips(num_identities=200, clips_per_identity=1, T=FRAMES, size=64,
                           seed=0, split="train")
    counter = iter(range(10**9))

    def step() -> dict:
        return ds.sample_batch(CLIPS, torch.Generator().manual_seed(next(counter)))

    step()
    timed = _CpuTimed(step)
    batch = benchmark.pedantic(timed, rounds=5, warmup_rounds=1, iterations=1)
    assert batch["source"].shape == (CLIPS, FRAMES, 3, 64, 64)
    # counts the source frames; the cross pairs' truths and targets come on top
    if not _record(benchmark, timed, CLIPS * FRAMES, 64):
        return
    benchmark.extra_info["batches_per_s"] = round(1 / benchmark.stats.stats.median, 2)
