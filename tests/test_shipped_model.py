"""The shipped models still transfer motion: quality smoke tests on held-out clips.

They fail (never skip) when an asset is missing or corrupt: the package ships both.

* ``default``: the real-face model (landmark dynamics, ``geowarp`` at 128 px);
* ``cartoon64``: the previous default (pixel dynamics, 64 px warp), kept for ONNX users.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import dtgan_plugin
from dtgan_plugin.models.checkpoint import load_checkpoint, resolve_checkpoint

from conftest import run_cli

ASSETS = Path(dtgan_plugin.__file__).parent / "assets"
DEFAULT = ASSETS / "default.safetensors"
CARTOON = ASSETS / "cartoon64.safetensors"


def test_the_assets_are_shipped_and_load() -> None:
    for path, name in ((DEFAULT, "default"), (CARTOON, "cartoon64")):
        assert path.is_file() and path.stat().st_size > 1_000_000, f"assets/{path.name} missing"
        assert resolve_checkpoint(name) == path
        model = load_checkpoint(path)  # verifies the fingerprint and finite weights
        assert model.config.generator_cfg.identity_at_rest
    assert DEFAULT.stat().st_size <= 25 * 2 ** 20  # the size budget
    default = load_checkpoint(DEFAULT)
    assert default.config.uses_landmarks and default.config.generator == "geowarp"
    assert default.resolution == 128
    assert not load_checkpoint(CARTOON).config.uses_landmarks


def _p2_ratio(tmp_path: Path, name: str) -> float:
    out = tmp_path / f"eval_{name}"
    res = run_cli("eval", "-c", f"dtgan={name}", "--synth", "identities=200:clips=8:frames=16",
                  "--clips", "16", "--protocols", "P2", "--baselines", "static", "-o", str(out),
                  "--no-progress", timeout=600)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["methods"]["dtgan"]["P2"]["l1"]["n"] == 16
    return float(report["methods"]["dtgan"]["P2"]["l1_vs_static"])


def test_default_beats_static_on_held_out_procedural_clips(tmp_path: Path) -> None:
    # 16 test-split clips, P2 (cross-identity transfer with exact truth, the renderer's exact
    # landmarks for the landmark model); a model whose dynamics stopped moving the target
    # scores ~1.0x static. The shipped config (learned corrections off, for real faces; the
    # hair moving with the head) measured 0.664x on 48 clips (README; 0.676x hair still)
    ratio = _p2_ratio(tmp_path, "default")
    assert ratio < 0.8, f"default model P2 L1 is {ratio:.3f}x static"


def test_cartoon64_beats_static_on_held_out_procedural_clips(tmp_path: Path) -> None:
    # the README measures 0.495x static on 96 clips
    ratio = _p2_ratio(tmp_path, "cartoon64")
    assert ratio < 0.8, f"cartoon64 P2 L1 is {ratio:.3f}x static"


def _clips(res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A held-out source clip and another face (frames in [-1, 1]) and their exact points."""
    from dtgan_plugin.synthfaces import clip_dynamics, identities_for, render
    from dtgan_plugin.synthfaces.landmarks import landmarks68

    idn = identities_for(0, [0, 10])
    params, _ = clip_dynamics(1000, [0, 10], [0, 0], 16)
    source = render(idn[:1], params[:1], res) * 2 - 1
    target = render(idn[1:], params[1:, :1], res)[:, 0] * 2 - 1
    src_pts = landmarks68(idn[:1], params[:1], res) + 0.5
    tgt_pts = landmarks68(idn[1:], params[1:, :1], res)[:, 0] + 0.5
    return source, target, src_pts, tgt_pts


def test_zero_and_real_dynamics_render_different_videos() -> None:
    # the same target driven by a still source and by a moving one must differ clearly
    for path in (DEFAULT, CARTOON):
        model = load_checkpoint(path).eval()
        source, target, src_pts, tgt_pts = _clips(model.resolution)
        landmarks = model.config.uses_landmarks
        moving_in = src_pts if landmarks else source
        still_in = moving_in[:, :1].expand_as(moving_in)
        kwargs = {"target_landmarks": tgt_pts} if landmarks else {}
        with torch.inference_mode():
            moving = model(target, moving_in, **kwargs)
            resting = model(target, still_in, **kwargs)
        # frame 0 is the reference in both; later frames must move
        assert (moving[:, 0] - resting[:, 0]).abs().max() < 2e-3, path.name
        assert (moving[:, 8:] - resting[:, 8:]).abs().mean() > 0.01, path.name
        assert (resting - target.unsqueeze(1)).abs().max() < 2e-3, path.name  # rest = target
