"""Landmark models at inference and in training: fitting points like frames, streaming dynamics
from given or found landmarks (lost faces filled, flushed at the end), the geowarp renderer,
export refusal, and a few training steps with resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import ConfigError, UsageError

SMALL_LMK = {"resolution": 32, "generator": "geowarp", "dynamics_input": "landmarks",
             "encoder": {"widths": [8, 16, 16, 32], "feature_dim": 32, "hidden": 32},
             "generator_cfg": {"base_width": 8, "max_width": 32, "dyn_channels": 8,
                               "identity_at_rest": True, "motion_hidden": 32}}


def _model(seed: int = 0, nudge: float = 0.5):
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    torch.manual_seed(seed)
    model = build_model(ModelConfig.from_dict(SMALL_LMK))
    with torch.no_grad():  # off the identity, so the output depends on the dynamics
        for p in model.generator.motion.parameters():
            p.add_(torch.randn_like(p) * nudge)
    return model.eval()


def _clip(frames: int = 12, size: int = 32, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A procedural clip (T, 3, S, S) in [0, 1] and its exact landmarks (T, 68, 2)."""
    from dtgan_plugin.synthfaces import identities_for
    from dtgan_plugin.synthfaces.dynamics import sample_dynamics
    from dtgan_plugin.synthfaces.landmarks import landmarks68
    from dtgan_plugin.synthfaces.renderer import render

    params, _ = sample_dynamics(1, frames, torch.Generator().manual_seed(seed))
    idn = identities_for(0, [seed])
    return render(idn, params, size)[0], landmarks68(idn, params, size)[0]


@pytest.mark.parametrize("policy", ["crop", "pad", "stretch"])
def test_fit_points_follow_fit_image(policy: str) -> None:
    from dtgan_plugin.inference import fit_image, fit_points

    h, w, size = 60, 100, 40
    img = torch.zeros(3, h, w)
    point = (70.5, 20.5)  # continuous coordinates: the centre of pixel (70, 20)
    img[:, 19:22, 69:72] = 1.0
    fitted = fit_image(img, size, policy)[0]
    ys, xs = torch.nonzero(fitted > 0.3, as_tuple=True)
    weights = fitted[ys, xs]
    found = ((xs.float() + 0.5) * weights).sum() / weights.sum(), \
        ((ys.float() + 0.5) * weights).sum() / weights.sum()
    mapped = fit_points(torch.tensor([point]), h, w, size, policy)[0]
    assert float(mapped[0]) == pytest.approx(float(found[0]), abs=0.35)
    assert float(mapped[1]) == pytest.approx(float(found[1]), abs=0.35)


def test_dynamics_from_given_landmarks_stream_like_the_whole_clip() -> None:
    from dtgan_plugin.inference import DynamicsExtractor

    model = _model()
    frames, pts = _clip()
    whole = model.encoder.extract(pts[None])[0]
    ex = DynamicsExtractor(model)
    parts = [ex.push(frames[a:a + 5], pts[a:a + 5]) for a in range(0, 12, 5)]
    parts.append(ex.flush())
    d = torch.cat(parts)
    assert d.shape == whole.shape
    torch.testing.assert_close(d, whole, atol=1e-5, rtol=1e-4)
    assert float(d[0].abs().max()) == 0.0 and float(d[1:].abs().max()) > 0


def test_given_landmarks_are_checked() -> None:
    from dtgan_plugin.inference import DynamicsExtractor

    model = _model()
    frames, pts = _clip(frames=4)
    with pytest.raises(UsageError, match=r"landmarks must be \(4, 68, 2\)"):
        DynamicsExtractor(model).push(frames, pts[:3])
    bad = pts.clone()
    bad[2, 5, 0] = float("nan")
    with pytest.raises(UsageError, match="NaN"):
        DynamicsExtractor(model).push(frames, bad)


class _LosingLandmarker:
    """Replays known points, but finds no face on the frames in ``lost``."""

    name = "replay"
    native_layout = "ibug68"

    def __init__(self, pts: torch.Tensor, lost: set[int]) -> None:
        self.pts, self.lost, self.next = pts.numpy(), lost, 0

    def detect(self, frames: np.ndarray) -> list[list]:
        from dtgan_plugin.faces.mediapipe_landmarker import face_from_points

        out = []
        for _ in range(len(frames)):
            i, self.next = self.next, self.next + 1
            out.append([] if i in self.lost else
                       [face_from_points(self.pts[i], frames.shape[1:3], "ibug68", self.pts[i])])
        return out

    def reset(self) -> None:
        self.next = 0


def test_lost_faces_are_filled_and_the_last_frames_come_at_flush() -> None:
    from dtgan_plugin.inference import DynamicsExtractor

    model = _model()
    frames, pts = _clip(frames=10)
    # frames 8 and 9 have no face: their points wait for a face that never comes, so they
    # are only settled (as copies of frame 7) by flush
    ex = DynamicsExtractor(model, landmarker=_LosingLandmarker(pts, {3, 8, 9}))
    got = [ex.push(frames[:5]), ex.push(frames[5:])]
    assert sum(len(g) for g in got) == 8
    rest = ex.flush()
    assert len(rest) == 2
    filled = pts.clone()
    filled[3] = (pts[2] + pts[4]) / 2
    filled[8] = filled[9] = pts[7]
    expect = model.encoder.extract(filled[None])[0]
    torch.testing.assert_close(torch.cat([*got, rest]), expect, atol=1e-5, rtol=1e-4)


def test_no_face_at_all_is_a_clear_error() -> None:
    from dtgan_plugin.errors import MediaError
    from dtgan_plugin.inference import DynamicsExtractor

    model = _model()
    frames, pts = _clip(frames=4)
    ex = DynamicsExtractor(model, landmarker=_LosingLandmarker(pts, {0, 1, 2, 3}))
    assert len(ex.push(frames)) == 0
    with pytest.raises(MediaError, match="no face found"):
        ex.flush()


def test_geowarp_renderer_uses_the_target_landmarks() -> None:
    from dtgan_plugin.inference import Renderer

    model = _model()
    frames, pts = _clip(frames=6)
    target = frames[0]
    still = Renderer(model, target, target_landmarks=pts[0]).render(
        torch.zeros(3, model.config.dyn_dim))
    assert float((still - target).abs().max()) < 2e-3  # identity at rest
    d = model.encoder.extract(pts[None])[0]
    moved = Renderer(model, target, target_landmarks=pts[0]).render(d)
    elsewhere = Renderer(model, target, target_landmarks=pts[0] + 3.0).render(d)
    assert float((moved[1:] - target).abs().mean()) > 1e-3
    assert float((moved - elsewhere).abs().max()) > 1e-3  # the landmarks steer the warp


def test_landmark_models_are_not_exported() -> None:
    from dtgan_plugin.export.onnx_export import check_exportable
    from dtgan_plugin.errors import DtganError

    with pytest.raises(DtganError, match="landmark model"):
        check_exportable(_model(), 17)


def _train_cfg(out: Path, **over: object):
    from dtgan_plugin.training.config import config_from_dict

    raw = {"run": {"out_dir": str(out), "num_threads": 1, "log_every": 1, "sample_every": 3,
                   "checkpoint_every": 2, "device": "cpu"},
           "data": {"source": "synth", "size": 32, "frames": 4, "identities": 30,
                    "batch_size": 2},
           "augment": {"landmark_noise": 0.01},
           "pretrain": {"steps": 2, "batch_size": 4, "freeze": False},
           "optim": {"steps": 2}, "loss": {"w_landmarks": 1.0, "w_dyn": 0.5, "adv_start": 1},
           "model": SMALL_LMK}
    for key, value in over.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw)


def test_a_landmark_model_trains_resumes_and_logs_its_landmark_loss(tmp_path: Path) -> None:
    import json

    from dtgan_plugin.models import load_checkpoint
    from dtgan_plugin.training.trainer import Trainer

    out = tmp_path / "run"
    summary = Trainer(_train_cfg(out), progress=False).run()
    assert summary["steps"] == 4
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    pre = [r for r in rows if r["stage"] == "pretrain"]
    gan = [r for r in rows if r["stage"] == "gan"]
    assert pre and all(np.isfinite(r["pre_lmk_px"]) for r in pre)
    assert gan and all(np.isfinite(r["lmk_px"]) and np.isfinite(r["dyn"]) for r in gan)
    assert "d_s" in gan[-1] and "g_t" in gan[-1]
    model = load_checkpoint(out / "model.safetensors")
    assert model.config.uses_landmarks and model.config.generator == "geowarp"
    # a longer run picks up where this one stopped
    more = Trainer(_train_cfg(out, optim__steps=3), resume=False, progress=False)
    assert more.step == 0
    with pytest.raises(ConfigError, match="different config"):
        Trainer(_train_cfg(out, optim__steps=3), resume=True, progress=False)
    again = Trainer(_train_cfg(out), resume=True, progress=False)
    assert again.step == 4


def test_a_landmark_model_refuses_folder_data(tmp_path: Path) -> None:
    from dtgan_plugin.training.trainer import Trainer

    cfg = _train_cfg(tmp_path / "run", data__source="folder", data__folder=str(tmp_path))
    with pytest.raises(ConfigError, match="procedural faces"):
        Trainer(cfg, progress=False)


def test_a_folder_named_like_a_builtin_config_is_not_read(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dtgan_plugin.training.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "faces128").mkdir()  # e.g. a run's out_dir
    assert load_config("faces128").model["generator"] == "geowarp"
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config("mine")


def test_autocrop_hands_out_the_crops_landmarks() -> None:
    from dtgan_plugin.faces.autocrop import AutoCropper
    from dtgan_plugin.faces.synth_landmarker import SynthLandmarker
    from dtgan_plugin.synthfaces import identities_for
    from dtgan_plugin.synthfaces.dynamics import sample_dynamics
    from dtgan_plugin.synthfaces.landmarks import landmarks68
    from dtgan_plugin.synthfaces.renderer import render

    params, _ = sample_dynamics(1, 20, torch.Generator().manual_seed(5))
    idn = identities_for(0, [5])
    frames = render(idn, params, 96)[0]
    exact = landmarks68(idn, params, 96)[0].numpy() + 0.5  # pixel centres at i + 0.5
    # stride 1: the synth landmarker replays its clip in order, so it must see every frame
    cropper = AutoCropper(SynthLandmarker(identity=idn, params=params, size=96), size=48,
                          radius=3, stride=1)
    cropper.keep_boxes = True
    pts = []
    for a in range(0, 20, 7):
        if cropper.push(frames[a:a + 7]) is not None:
            pts.append(cropper.last_points)
    if cropper.flush() is not None:
        pts.append(cropper.last_points)
    got = np.concatenate(pts)
    boxes = np.asarray(cropper.boxes)
    assert got.shape == (20, 68, 2)
    back = got * (boxes[:, None, 2:3] / 48) + boxes[:, None, :2] - boxes[:, None, 2:3] / 2
    np.testing.assert_allclose(back, exact, atol=1e-3)


def test_without_the_correction_the_skip_retargets_exactly() -> None:
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    cfg = {**SMALL_LMK, "generator_cfg": {**SMALL_LMK["generator_cfg"],
                                          "motion_correction": False}}
    model = build_model(ModelConfig.from_dict(cfg)).eval()
    _, pts = _clip(frames=8)
    with torch.no_grad():
        d = model.encoder.extract(pts[None])
        # a self pair: the target is frame 0, so the moved points are the clip's own
        moved = model.generator.points_for(pts[None, 0], d)[0]
        # another face, 1.5x bigger and shifted: the same motion, scaled
        big = pts[0] * 1.5 + 7.0
        moved_big = model.generator.points_for(big[None], d)[0]
    torch.testing.assert_close(moved, pts, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved_big - big, (pts - pts[:1]) * 1.5, atol=1e-4, rtol=0)
    with_corr = _model()  # the head's correction moves the points off the pure retarget
    with torch.no_grad():
        d2 = with_corr.encoder.extract(pts[None])
        moved2 = with_corr.generator.points_for(pts[None, 0], d2)[0]
    assert float((moved2 - pts).abs().max()) > 1e-3


def test_the_demo_clip_replays_from_its_seed() -> None:
    from dtgan_plugin import synthfaces as sf
    from dtgan_plugin.demo import DEMO_SEED, DEMO_SOURCE, demo_landmarks
    from dtgan_plugin.media import open_video

    src_pts, tgt_pts = demo_landmarks()
    assert src_pts.shape == (64, 68, 2) and tgt_pts.shape == (68, 2)
    g = torch.Generator().manual_seed(DEMO_SEED)
    ids = sf.identities_for(DEMO_SEED, [3, 11])
    params, _ = sf.sample_dynamics(1, 64, g, classes=["happy"], concat=True)
    rendered = sf.render(ids[0:1], params, 128)[0]
    with open_video(DEMO_SOURCE) as reader:
        shipped = torch.cat([c.frames for c in reader.chunks(16)])
    # the shipped clip (h264, crf 16) is these frames: so its landmarks are these points
    assert float((shipped - rendered).abs().mean()) < 0.02
    assert float((shipped.flip(0) - rendered).abs().mean()) > 0.02  # it tells clips apart


def test_demo_without_the_extras_runs_the_procedural_clip(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    import dtgan_plugin.demo as demo

    why = "pip install 'dtgan-plugin[demo,faces]' for the real-face demo"
    monkeypatch.setattr(demo, "real_demo_media", lambda out: why)
    paths = demo.run_demo(tmp_path, progress=False)
    assert paths["frames"] == 64 and paths["video"].is_file() and paths["gif"].is_file()
    err = capsys.readouterr().err
    assert why in err and "procedural" in err and len(err.strip().splitlines()) == 1
