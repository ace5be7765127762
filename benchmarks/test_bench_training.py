"""Training throughput at 64x64 on this machine: iterations/s and clips/s of both stages.

Run: ``make bench`` or ``pytest benchmarks/test_bench_training.py --benchmark-only``. Figures
go to ``benchmark.extra_info`` (it_per_s, clips_per_s, frames_per_s) and are printed.
"""

from __future__ import annotations

import itertools
import os
import warnings

import pytest
import torch

from dtgan_plugin.training.config import load_config
from dtgan_plugin.training.trainer import Trainer

CASES = {
    # the shipped default64 recipe: batch 4 clips x 8 frames, D_S + D_T, joint encoder
    "gan_default64": {},
    # the same without the adversarial terms (L1 only), to show what the two Ds cost
    "gan_l1_only": {"loss": {"use_ds": False, "use_dt": False}},
    # what each D_T option costs per step (README "Does D_T lower the temporal error?")
    "gan_dt_mismatch": {"loss": {"dt_mismatch": 1.0}},
    "gan_dt_frames_diff": {"model": {"discriminator": {"clip_input": "frames+diff"}}},
    "gan_feature_matching": {"loss": {"w_fm": 10.0}},
}


def _trainer(tmp_path, overrides: dict) -> Trainer:
    cfg = load_config("default64")
    cfg.run.out_dir = str(tmp_path)
    cfg.run.num_threads = int(os.environ.get("DTGAN_BENCH_THREADS", "2"))
    for section, values in overrides.items():
        for key, value in values.items():
            if section == "model":  # a plain (nested) dict, validated when the model is built
                cfg.model.setdefault(key, {}).update(value)
            else:
                setattr(getattr(cfg, section), key, value)
    return Trainer(cfg, progress=False)


@pytest.mark.parametrize("case", list(CASES))
def test_bench_gan_step(benchmark, tmp_path, case: str) -> None:
    warnings.filterwarnings("ignore")
    tr = _trainer(tmp_path, CASES[case])
    counter = itertools.count(tr.cfg.pretrain.steps + tr.cfg.loss.adv_start)

    def step() -> None:
        tr.step = next(counter)
        tr._seed_step()
        tr._gan_step()

    step()  # warm-up
    benchmark.pedantic(step, rounds=3, iterations=1)
    if benchmark.disabled:  # --benchmark-disable: a smoke run, nothing was timed
        return
    sec = benchmark.stats.stats.median
    bs, t = tr.cfg.data.batch_size, tr.cfg.data.frames
    info = {"it_per_s": 1 / sec, "clips_per_s": bs / sec, "frames_per_s": bs * t / sec,
            "batch": bs, "frames": t, "threads": torch.get_num_threads()}
    benchmark.extra_info.update(info)
    print(f"\n{case}: {info['it_per_s']:.2f} it/s, {info['clips_per_s']:.1f} clips/s, "
          f"{info['frames_per_s']:.0f} frames/s (batch {bs} x {t} frames, 64x64)")


def test_bench_pretrain_step(benchmark, tmp_path) -> None:
    warnings.filterwarnings("ignore")
    tr = _trainer(tmp_path, {})
    counter = itertools.count()

    def step() -> None:
        tr.step = next(counter)
        tr._seed_step()
        tr._pretrain_step()

    step()
    benchmark.pedantic(step, rounds=3, iterations=1)
    if benchmark.disabled:
        return
    sec = benchmark.stats.stats.median
    bs, t = tr.cfg.pretrain.batch_size, tr.cfg.data.frames
    benchmark.extra_info.update({"it_per_s": 1 / sec, "clips_per_s": bs / sec})
    print(f"\npretrain: {1 / sec:.2f} it/s, {bs / sec:.1f} clips/s (batch {bs} x {t} frames)")
