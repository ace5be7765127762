"""Training: the tiny config end to end, exact resume after SIGKILL, torchrun DDP, configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dtgan_plugin.errors import ConfigError
from dtgan_plugin.training.config import load_config

from conftest import run_cli

# a still smaller variant of the built-in tiny config, to keep CI fast
FAST = ["--set", "optim.steps=8", "--set", "pretrain.steps=4", "--set", "run.log_every=1",
        "--set", "run.checkpoint_every=2", "--set", "run.sample_every=4"]


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_training_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", *FAST)
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12
    for name in ("model.safetensors", "train_state.safetensors", "log.jsonl", "losses.png",
                 "samples_latest.png"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "samples").glob("*.gif"))
    rows = _log(out / "log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert {"pre_class", "pre_params"} <= set(rows[0])
    assert {"l1", "d_s", "d_t", "g_s", "g_t"} <= set(rows[-1])
    # the exported model loads through the public checkpoint loader
    from dtgan_plugin.models.checkpoint import load_checkpoint

    model = load_checkpoint(out / "model.safetensors")
    assert model.config.resolution == 32


def test_kept_checkpoints_average_into_their_mean(tmp_path: Path) -> None:
    from dtgan_plugin.models.checkpoint import load_checkpoint, read_checkpoint_metadata

    out = tmp_path / "run"
    res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", *FAST,
                  "--set", "run.keep_checkpoints=true")
    assert res.returncode == 0, res.stderr.decode()
    kept = sorted((out / "checkpoints").glob("model_*.safetensors"))
    assert [p.name for p in kept][-3:] == ["model_000008.safetensors",
                                           "model_000010.safetensors",
                                           "model_000012.safetensors"]
    avg = tmp_path / "avg.safetensors"
    res = run_cli("average", *map(str, kept[-3:]), "-o", str(avg))
    assert res.returncode == 0, res.stderr.decode()
    assert json.loads(res.stdout)["steps"] == [8, 10, 12]
    models = [load_checkpoint(p) for p in kept[-3:]]
    mean = load_checkpoint(avg).state_dict()
    for k, v in mean.items():
        torch.testing.assert_close(v, sum(m.state_dict()[k] for m in models) / 3,
                                   atol=1e-6, rtol=0)
    assert read_checkpoint_metadata(avg)["extra"]["steps"] == [8, 10, 12]
    # one-line errors: a single checkpoint, the output among the inputs, another config
    other = tmp_path / "other.safetensors"
    from dtgan_plugin.models import ModelConfig, build_model
    from dtgan_plugin.models.checkpoint import save_checkpoint

    save_checkpoint(other, build_model(ModelConfig(resolution=64)))
    for args, needle in [((str(kept[0]),), "at least 2"),
                         ((str(kept[0]), str(avg)), "one of the inputs"),
                         ((str(kept[0]), str(other)), "another model configuration")]:
        target = args[-1] if needle == "one of the inputs" else str(tmp_path / "x.safetensors")
        res = run_cli("average", *args, "-o", target)
        err = res.stderr.decode().strip()
        assert res.returncode != 0 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.safetensors").exists()


def test_training_is_deterministic_and_resumes_exactly_after_sigkill(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    res = run_cli("train", "tiny", "--out-dir", str(ref), "--no-progress", *FAST)
    assert res.returncode == 0, res.stderr.decode()
    reference = _log(ref / "log.jsonl")

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "dtgan_plugin", "train", "tiny", "--out-dir",
                             str(out), "--no-progress", *FAST], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "train_state.safetensors"
    deadline = time.time() + 240
    # wait until a checkpoint past stage 1 exists, then kill without warning
    while time.time() < deadline:
        if state.exists() and (out / "log.jsonl").exists() and len(_log(out / "log.jsonl")) >= 7:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists()
    done_before = len(_log(out / "log.jsonl"))
    assert done_before < 12, "the run finished before it could be killed"
    res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", "--resume", *FAST)
    assert res.returncode == 0, res.stderr.decode()
    resumed = _log(out / "log.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    for a, b in zip(reference, resumed):
        for key, value in a.items():
            if key in ("elapsed_s", "stage"):
                continue
            assert b[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (a["step"], key)
    assert not list(out.glob(".*partial*"))


def test_torchrun_two_processes_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "dtgan_plugin", "train", "tiny", "--out-dir", str(out), "--no-progress",
           "--set", "optim.steps=4", "--set", "pretrain.steps=2", "--set", "run.log_every=1",
           "--set", "run.num_threads=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    rows = _log(out / "log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))  # rank 0 alone writes the log
    assert (out / "model.safetensors").exists()


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nstepz = 3\n")
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        load_config(bad)
    res = run_cli("train", str(bad))
    assert res.returncode == 2
    err = res.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    res = run_cli("train", str(tmp_path / "missing.toml"))
    assert res.returncode == 2 and "does not exist" in res.stderr.decode()
    bad.write_text("[data]\nsize = 'big'\n")
    with pytest.raises(ConfigError, match="data.size"):
        load_config(bad)
    res = run_cli("train", "tiny", "--out-dir", str(tmp_path / "none"), "--resume")
    assert res.returncode == 2 and "no checkpoint" in res.stderr.decode()


def test_kornia_augmentation_is_consistent_across_clip_and_target() -> None:
    from dtgan_plugin.training.augment import ClipAugment
    from dtgan_plugin.training.config import AugmentConfig

    torch.manual_seed(0)
    aug = ClipAugment(AugmentConfig(reverse=0.0, speed=0.0))
    frame = torch.rand(2, 3, 32, 32)
    clip = frame.unsqueeze(1).repeat(1, 5, 1, 1, 1)
    tgt, src, truth = aug(frame, clip, clip.clone())
    # identical inputs must stay identical: the same parameters for every frame and the target
    assert torch.allclose(src, tgt.unsqueeze(1).expand_as(src), atol=1e-6)
    assert torch.equal(src, truth)
    assert not torch.allclose(tgt, frame)  # and something did happen


def test_temporal_augmentation_keeps_frame_zero() -> None:
    from dtgan_plugin.training.augment import temporal_indices
    from dtgan_plugin.training.config import AugmentConfig

    torch.manual_seed(1)
    idx = temporal_indices(64, 8, AugmentConfig(reverse=0.5, speed=0.5))
    assert (idx[:, 0] == 0).all() and idx.max() <= 7 and idx.min() >= 0
    assert (idx == torch.tensor([0, 7, 6, 5, 4, 3, 2, 1])).all(1).any()  # some reversed
    assert (idx != torch.arange(8)).any(1).sum() > 10  # and some changed speed


def test_learning_rate_schedule_by_steps_or_by_time():
    from types import SimpleNamespace

    from dtgan_plugin.training.trainer import Trainer

    cfg = load_config("tiny", ["optim.steps=100", "optim.decay_start=0.5"])
    by_steps = SimpleNamespace(cfg=cfg, _t0=time.time() - 1e6)  # the clock does not matter
    assert [Trainer._lr_factor(by_steps, s) for s in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]

    cfg = load_config("tiny", ["optim.steps=100", "optim.decay_start=0.5",
                               "optim.schedule=\"time\"", "run.time_limit_s=100"])
    now = time.time()
    early = SimpleNamespace(cfg=cfg, _t0=now - 10)     # 10% of the time, 10% of the steps
    assert Trainer._lr_factor(early, 10) == 1.0
    late = SimpleNamespace(cfg=cfg, _t0=now - 75)      # 75% of the time gone, 10% of the steps
    assert Trainer._lr_factor(late, 10) == pytest.approx(0.5, abs=0.02)
    assert Trainer._lr_factor(SimpleNamespace(cfg=cfg, _t0=now - 500), 10) == 0.0
    assert Trainer._lr_factor(early, 75) == pytest.approx(0.5)  # steps ahead of the clock

    with pytest.raises(ConfigError, match="time_limit_s"):
        load_config("tiny", ["optim.schedule=\"time\""])
    with pytest.raises(ConfigError, match="schedule"):
        load_config("tiny", ["optim.schedule=\"cosine\""])


def test_every_built_in_config_loads_and_is_listed_in_the_help():
    from dtgan_plugin.training.config import builtin_configs

    names = builtin_configs()
    assert {"tiny", "default64", "default64_long"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.model.get("resolution", cfg.data.size) == cfg.data.size, name
    help_text = " ".join(run_cli("train", "--help").stdout.decode().split())
    assert ", ".join(names) in help_text


def test_matching_aware_dt_and_widened_fine_tune(tmp_path: Path) -> None:
    """dt_mismatch and w_fm log their terms; a fine-tune switching D_T to frames+diff keeps
    the rest."""
    from safetensors.torch import load_file

    base = tmp_path / "base"
    res = run_cli("train", "tiny", "--out-dir", str(base), "--no-progress", *FAST,
                  "--set", "pretrain.steps=0", "--set", "optim.steps=2")
    assert res.returncode == 0, res.stderr.decode()
    tuned = tmp_path / "tuned"
    res = run_cli("train", "tiny", "--out-dir", str(tuned), "--no-progress", *FAST,
                  "--set", "pretrain.steps=0", "--set", "loss.dt_mismatch=1.0",
                  "--set", "loss.w_fm=1.0",
                  "--set", 'model.discriminator.clip_input="frames+diff"',
                  "--set", f'run.init_from="{base / "train_state.safetensors"}"',
                  "--set", "optim.steps=1", "--set", "run.checkpoint_every=100")
    assert res.returncode == 0, res.stderr.decode()
    err = res.stderr.decode()
    assert "discriminator tensors did not fit" in err and "clip.cnn.0" in err
    assert {"d_t_mismatch", "fm_s", "fm_t"} <= set(_log(tuned / "log.jsonl")[-1])
    # before any step, the widened D_T equals the old one on frames and is silent on diffs
    from dtgan_plugin.training.config import load_config as _load
    from dtgan_plugin.training.trainer import Trainer

    cfg = _load("tiny", ["model.discriminator.clip_input=\"frames+diff\"",
                         f'run.init_from="{base / "train_state.safetensors"}"',
                         f'run.out_dir="{tmp_path / "probe"}"'])
    trainer = Trainer(cfg, progress=False)
    old = load_file(str(base / "train_state.safetensors"))
    key = "clip.cnn.0.parametrizations.weight.original"
    w_old, w_new = old[f"module.discriminators.{key}"], trainer.discs.state_dict()[key]
    assert w_new.shape[1] == 2 * w_old.shape[1]
    torch.testing.assert_close(w_new[:, :3], w_old)
    assert not w_new[:, 3:].any()
    g_old = {k[len("module.generator."):]: v for k, v in old.items()
             if k.startswith("module.generator.")}
    for k, v in trainer.model.generator.state_dict().items():
        torch.testing.assert_close(v, g_old[k])


def test_nested_overrides_and_new_loss_options_are_checked() -> None:
    cfg = load_config("tiny", ["model.discriminator.clip_input=\"frames+diff\"",
                               "model.generator_cfg.identity_at_rest=true"])
    assert cfg.model["discriminator"]["clip_input"] == "frames+diff"
    assert cfg.model["discriminator"]["clip_base_width"] == 8  # the rest of the table kept
    assert cfg.model["generator_cfg"]["identity_at_rest"] is True
    with pytest.raises(ConfigError, match="is a value, not a table"):
        load_config("tiny", ["model.resolution.x=1"])
    with pytest.raises(ConfigError, match="dt_mismatch"):
        load_config("tiny", ["loss.dt_mismatch=-1"])
    with pytest.raises(ConfigError, match="w_fm"):
        load_config("tiny", ["loss.w_fm=-0.5"])
