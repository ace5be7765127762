"""Batch throughput: jobs/s and frames/s with 1 and 2 local workers, and what the dynamics
cache saves (one extraction for M targets of a source instead of M).

Run: ``python -m pytest benchmarks/test_bench_batch.py --benchmark-only``. Numbers land in
each benchmark's ``extra_info``. Sizes are small (64x64 clips, a tiny untrained model) so the
suite fits a 2-core CI machine; absolute speeds say more about process start-up and ffmpeg
than about the model, which ``test_bench_generator.py`` measures.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import make_clip  # noqa: E402

from dtgan_plugin.batch import BatchOptions, plan_from_folders, run_batch  # noqa: E402

FRAMES = 32
N_SRC, N_TGT = 2, 3
M_TARGETS = 4
CACHE_FRAMES = 96


def _png(path: Path, seed: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def bench_lib(tmp_path_factory):
    """Sources, targets and a tiny checkpoint for the batch benchmarks."""
    from dtgan_plugin.models import build_model, save_checkpoint
    from dtgan_plugin.models.config import EncoderConfig, GeneratorConfig, ModelConfig

    root = tmp_path_factory.mktemp("bench_batch")
    src, tgt, one = root / "src", root / "tgt", root / "one"
    for d in (src, tgt, one):
        d.mkdir()
    patterns = ("testsrc2", "testsrc", "smptebars")
    for i in range(N_SRC):
        make_clip(src / f"s{i}.mp4", frames=FRAMES, pattern=patterns[i % len(patterns)])
    make_clip(one / "long.mp4", frames=CACHE_FRAMES)
    for j in range(max(N_TGT, M_TARGETS)):
        _png(tgt / f"t{j}.png", j)
    cfg = ModelConfig(resolution=64,
                      encoder=EncoderConfig(widths=(8, 16, 32, 32), feature_dim=32, hidden=32),
                      generator_cfg=GeneratorConfig(base_width=8, max_width=32, dyn_channels=8))
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, build_model(cfg))
    return {"root": root, "src": src, "tgt": tgt, "one": one, "ckpt": ckpt}


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_batch_local(benchmark, bench_lib, workers):
    """Jobs/s and frames/s of a whole batch (worker start-up included)."""
    tgt_dir = bench_lib["root"] / f"tgt{N_TGT}"
    if not tgt_dir.exists():
        tgt_dir.mkdir()
        for j in range(N_TGT):
            shutil.copy(bench_lib["tgt"] / f"t{j}.png", tgt_dir)
    out = bench_lib["root"] / f"out_w{workers}"
    opts = BatchOptions(checkpoint=str(bench_lib["ckpt"]), device="cpu", jobs=workers,
                        progress=False)
    summaries = []

    def run() -> None:
        plan = plan_from_folders(bench_lib["src"], tgt_dir, out_dir=_fresh(out))
        summaries.append(run_batch(plan, opts, log=lambda msg: None))

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    last = summaries[-1]
    assert last["done"] == N_SRC * N_TGT and last["failed"] == 0
    benchmark.extra_info.update({
        "workers": workers, "jobs": last["jobs"], "frames": last["frames"],
        "jobs_per_s": last["jobs_per_s"], "frames_per_s": last["frames_per_s"],
        "extractions": last["extractions"],
    })


def test_bench_dynamics_cache(benchmark, bench_lib):
    """1 source x M targets: the batch extracts once; M separate transfers extract M times."""
    from dtgan_plugin.api import transfer

    tgt_dir = bench_lib["root"] / f"tgt{M_TARGETS}"
    if not tgt_dir.exists():
        tgt_dir.mkdir()
        for j in range(M_TARGETS):
            shutil.copy(bench_lib["tgt"] / f"t{j}.png", tgt_dir)
    ckpt = str(bench_lib["ckpt"])
    out = bench_lib["root"] / "out_cache"
    opts = BatchOptions(checkpoint=ckpt, device="cpu", jobs=1, progress=False)
    summaries = []

    def cached() -> None:
        plan = plan_from_folders(bench_lib["one"], tgt_dir, out_dir=_fresh(out))
        summaries.append(run_batch(plan, opts, log=lambda msg: None))

    benchmark.pedantic(cached, rounds=2, iterations=1, warmup_rounds=1)
    assert summaries[-1]["extractions"] == 1 and summaries[-1]["done"] == M_TARGETS
    if benchmark.disabled:  # --benchmark-disable: a smoke run, nothing was timed
        return
    t_cached = benchmark.stats.stats.median

    separate_dir = _fresh(bench_lib["root"] / "out_separate")
    separate_dir.mkdir()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        for j in range(M_TARGETS):
            transfer(bench_lib["one"] / "long.mp4", tgt_dir / f"t{j}.png",
                     separate_dir / f"t{j}.mp4", checkpoint=ckpt, device="cpu", progress=False)
        times.append(time.perf_counter() - t0)
    t_separate = float(np.median(times))
    from dtgan_plugin.batch import Report

    rows = Report(out / "report.jsonl").rows()
    extract_s = sum(r["extract_seconds"] for r in rows if r["dynamics"] == "extracted")
    benchmark.extra_info.update({
        "targets": M_TARGETS, "source_frames": CACHE_FRAMES,
        "batch_with_cache_s": round(t_cached, 3), "extractions_with_cache": 1,
        "separate_transfers_s": round(t_separate, 3), "extractions_separate": M_TARGETS,
        "one_extraction_s": round(extract_s, 3),
        "speedup": round(t_separate / t_cached, 3) if t_cached else None,
    })
