"""``dtgan eval``'s synthetic protocols with landmark models (issue 15): the renderer's exact
landmarks reach the model, scaled with the frames; data without landmarks is refused."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from dtgan_plugin import synthfaces as sf
from dtgan_plugin.errors import UsageError
from dtgan_plugin.evaluation.baselines import Method, ModelMethod, StaticBaseline
from dtgan_plugin.evaluation.data import SynthEvalData, VideoFolderData, open_eval_folder
from dtgan_plugin.evaluation.options import parse_synth_spec
from dtgan_plugin.evaluation.protocols import evaluate
from dtgan_plugin.synthfaces.landmarks import landmarks68

from conftest import make_clip, run_cli

#: a tiny landmark model: landmark encoder + geowarp generator (needs the target's landmarks)
LANDMARK_MODEL = {"resolution": 32, "generator": "geowarp", "dynamics_input": "landmarks",
                  "encoder": {"widths": [8, 16, 16, 32], "feature_dim": 32, "hidden": 32},
                  "generator_cfg": {"base_width": 8, "max_width": 32, "dyn_channels": 8,
                                    "identity_at_rest": True, "motion_hidden": 32}}


def _landmark_model() -> Any:
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    torch.manual_seed(0)
    return build_model(ModelConfig.from_dict(LANDMARK_MODEL)).eval()


@pytest.fixture(scope="module")
def landmark_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny landmark model, saved."""
    from dtgan_plugin.models.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("lmk") / "tiny.safetensors"
    save_checkpoint(path, _landmark_model())
    return path


def _spy(model: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[torch.Tensor]]:
    """Record what the encoder reads and the target landmarks the generator is given."""
    seen: dict[str, list[torch.Tensor]] = {"encoder": [], "generator": []}
    step, forward = model.encoder.step, model.generator.forward

    def spy_step(x: torch.Tensor, state: Any) -> Any:
        seen["encoder"].append(x.detach().clone())
        return step(x, state)

    def spy_forward(target: torch.Tensor, d: torch.Tensor, landmarks: Any = None) -> Any:
        seen["generator"].append(landmarks.detach().clone())
        return forward(target, d, landmarks)

    monkeypatch.setattr(model.encoder, "step", spy_step)
    monkeypatch.setattr(model.generator, "forward", spy_forward)
    return seen


def _ids(names: list[str]) -> tuple[list[int], list[int]]:
    """Source and target identity indices from names like ``id10/clip0->id30``."""
    pairs = [n.split("/clip")[0][2:] + " " + n.split("->id")[1] for n in names]
    return [int(p.split()[0]) for p in pairs], [int(p.split()[1]) for p in pairs]


def test_cli_evaluates_a_landmark_model_on_every_protocol(landmark_checkpoint: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = run_cli("eval", "-c", f"tiny={landmark_checkpoint}", "--synth",
                  "identities=40:clips=2:frames=8", "--protocols", "P1,P2,P3,P4,P5",
                  "--baselines", "static", "-o", str(out), "--examples", "1", "--no-progress",
                  timeout=240)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    assert report["protocols"] == ["P1", "P2", "P3", "P4", "P5"] and report["clips"] == 8
    tiny = report["methods"]["tiny"]
    for proto, key in (("P1", "l1"), ("P1", "ssim"), ("P2", "l1"), ("P2", "psnr"),
                       ("P4", "leakage"), ("P5", "temporal_error"), ("P5", "excess_jitter")):
        assert math.isfinite(tiny[proto][key]["mean"]), (proto, key)
    for key in ("corr_mean", "mae_expr", "mae_motion"):
        assert math.isfinite(tiny["P3"][key]), key
    assert math.isfinite(tiny["P2"]["l1_vs_static"])
    assert any("exact 68 landmarks" in n for n in report["notes"])


@pytest.mark.parametrize("size", [32, 64])
def test_the_model_reads_the_renderers_exact_landmarks(size: int, monkeypatch) -> None:
    """At the model's size the points are landmarks68's (+ 0.5: a landmarker's continuous
    pixel coordinates) bit for bit; at twice it, the frames are resized to the model's 32 px
    and the points with them (landmarks68 at 32 px)."""
    data = SynthEvalData(parse_synth_spec(f"identities=40:clips=1:frames=5:size={size}"),
                         size=32)
    batch = next(data.batches(16))
    src_ids, tgt_ids = _ids(batch.names)
    src_idn, tgt_idn = sf.identities_for(0, src_ids), sf.identities_for(0, tgt_ids)
    # the names say which faces were rendered: the frames confirm it
    assert torch.equal(batch.source, sf.render(src_idn, batch.params, size))
    assert torch.equal(batch.source_lmk, landmarks68(src_idn, batch.params, size) + 0.5)
    neutral = sf.neutral_params(len(tgt_ids))
    assert torch.equal(batch.cross_target_lmk, landmarks68(tgt_idn, neutral, size)[:, 0] + 0.5)

    model = _landmark_model()
    seen = _spy(model, monkeypatch)
    res = evaluate([ModelMethod("tiny", model)], data, protocols=["P1", "P2"], examples=0)
    assert math.isfinite(res["methods"]["tiny"]["P2"]["l1"]["mean"])
    want_src = landmarks68(src_idn, batch.params, 32) + 0.5
    want_tgt = landmarks68(tgt_idn, neutral, 32)[:, 0] + 0.5
    # one batch: P1's pass (target = the clip's frame 0), then P2's (target = B's neutral face)
    assert len(seen["encoder"]) == 2 and len(seen["generator"]) == 2
    check = torch.equal if size == 32 else lambda a, b: torch.allclose(a, b, atol=1e-4)
    assert check(seen["encoder"][0], want_src) and check(seen["encoder"][1], want_src)
    assert check(seen["generator"][0], want_src[:, 0])
    assert check(seen["generator"][1], want_tgt)


def test_a_synth_folder_replays_its_clips_landmarks(tmp_path: Path, monkeypatch) -> None:
    from dtgan_plugin.training.datagen import write_dataset

    write_dataset(tmp_path / "ds", identities=11, clips=1, size=32, frames=5, seed=0,
                  progress=False)
    data = open_eval_folder(tmp_path / "ds", frames=16, size=32)
    batch = next(data.batches(4))
    ids = [0, 10]  # the test split; each clip's target is the other identity
    params, _ = sf.clip_dynamics(0, ids, [0, 0], 5)
    want_src = landmarks68(sf.identities_for(0, ids), params, 32) + 0.5
    want_tgt = landmarks68(sf.identities_for(0, ids[::-1]), sf.neutral_params(2), 32)[:, 0] + 0.5
    assert torch.allclose(batch.source_lmk, want_src, atol=1e-4)
    assert torch.allclose(batch.cross_target_lmk, want_tgt, atol=1e-4)
    model = _landmark_model()
    seen = _spy(model, monkeypatch)
    res = evaluate([ModelMethod("tiny", model), StaticBaseline()], data,
                   protocols=["P1", "P2", "P5"], examples=0)
    assert math.isfinite(res["methods"]["tiny"]["P2"]["l1"]["mean"])
    assert torch.allclose(seen["generator"][-1], want_tgt, atol=1e-4)


class _FramesOnly(Method):
    """A method of one's own written before landmarks existed: ``(source, target)`` only."""

    name = "frames-only"

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return target.unsqueeze(1).expand_as(source).clone()


def test_methods_without_landmarks_are_called_with_frames_only() -> None:
    data = SynthEvalData(parse_synth_spec("identities=20:clips=1:frames=4"), size=32)
    res = evaluate([_FramesOnly(), StaticBaseline()], data, protocols=["P1", "P2"], examples=0)
    mine, static = (res["methods"][n]["per_clip"] for n in ("frames-only", "static"))
    assert mine == static
    assert not any("landmark" in n for n in res["notes"])


def test_a_landmark_model_without_landmarks_is_one_clear_error(landmark_checkpoint: Path,
                                                               tmp_path: Path, capsys) -> None:
    from dtgan_plugin.cli import main

    videos = tmp_path / "videos"
    videos.mkdir()
    make_clip(videos / "a.mp4", frames=6, size=32)
    rc = main(["eval", "-c", f"tiny={landmark_checkpoint}", "--data", str(videos), "-o",
               str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "tiny is a landmark model" in err and "a folder of videos has none" in err, err
    assert "'dtgan data' wrote" in err and "dtgan eval --real" in err, err
    assert not (tmp_path / "r" / "report.json").exists()
    # the Python entry point refuses it too, and so does the method called without points
    method = ModelMethod("tiny", _landmark_model())
    with pytest.raises(UsageError, match="a folder of videos has none"):
        evaluate([method], VideoFolderData(videos, [videos / "a.mp4"], frames=6, size=32))
    frames = torch.rand(1, 3, 3, 32, 32)
    with pytest.raises(UsageError, match="needs the source's landmarks"):
        method(frames, frames[:, 0])
