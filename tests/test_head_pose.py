"""``head``: how much of the source's head motion a landmark-driven transfer keeps, apart from
the expression (``models.head_pose``, ``render(head=...)``, ``Renderer``, ``--head``, the
``dtgan.transfer`` option and the batch column)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import OptionError, UsageError
from dtgan_plugin.models.head_pose import (MAX_HEAD, RIGID_POINTS, head_similarity,
                                           scale_head_pose)

from test_landmark_inference import _clip, _model


def _similarity(points: torch.Tensor, scale: float, angle: float, shift: tuple[float, float],
                centre: torch.Tensor) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=points.dtype)
    return scale * (points - centre) @ rot.T + centre + torch.tensor(shift, dtype=points.dtype)


def _face(seed: int = 0) -> torch.Tensor:
    """A face's resting 68 points (1, 68, 2): the procedural renderer's, at 128 px."""
    return _clip(frames=1, size=128, seed=seed)[1][:1].double()


def _expression(rest: torch.Tensor) -> torch.Tensor:
    """``rest`` with the mouth opened and the brows raised (no skull point moves)."""
    out = rest.clone()
    out[:, 56:59, 1] += 6.0   # lower lip down
    out[:, 65:68, 1] += 5.0   # lower inner lip down
    out[:, 17:27, 1] -= 3.0   # brows up
    return out


def test_head_similarity_recovers_a_known_similarity() -> None:
    rest = _face()
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(rest, 1.15, 0.2, (7.0, -4.0), centre)
    c, scale, angle, shift = head_similarity(rest, moved)
    assert torch.allclose(c, centre)
    assert float(scale) == pytest.approx(1.15, abs=1e-9)
    assert float(angle) == pytest.approx(0.2, abs=1e-9)
    assert shift[0].tolist() == pytest.approx([7.0, -4.0], abs=1e-9)
    # an expression alone moves no skull point: the head did not move
    _, scale, angle, shift = head_similarity(rest, _expression(rest))
    assert float(scale) == pytest.approx(1.0) and float(angle) == pytest.approx(0.0)
    assert float(shift.abs().max()) == pytest.approx(0.0, abs=1e-12)


def test_head_zero_keeps_the_expression_in_the_resting_head() -> None:
    rest = _face()
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    expr = _expression(rest)
    moved = _similarity(expr, 0.9, -0.3, (-10.0, 6.0), centre)
    assert scale_head_pose(rest, moved, 1.0) is moved  # the default costs nothing
    still = scale_head_pose(rest, moved, 0.0)
    assert torch.allclose(still, expr, atol=1e-9)
    # the measured signals: the expression's are kept, the head's are gone
    from dtgan_plugin.evaluation.realvideo_metrics import landmark_signals

    track = torch.cat([rest, moved, still]).numpy()
    sig = landmark_signals(track)
    for name in ("mouth_open", "brow_raise"):
        assert sig[name][2] == pytest.approx(sig[name][1], rel=1e-6)
        assert abs(sig[name][2]) > 0.02
    for name in ("head_x", "head_y", "head_roll"):
        assert abs(sig[name][1]) > 0.02 and abs(sig[name][2]) < 1e-9


def test_head_between_scales_travel_tilt_and_zoom() -> None:
    rest = _face(seed=5)
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(_expression(rest), 1.21, 0.4, (8.0, -6.0), centre)
    for head in (0.5, 1.5, MAX_HEAD):
        _, scale, angle, shift = head_similarity(rest, scale_head_pose(rest, moved, head))
        assert float(scale) == pytest.approx(1.21 ** head, rel=1e-6)
        assert float(angle) == pytest.approx(0.4 * head, abs=1e-6)
        # the shift is the resting skull centre's travel; the expression moves no skull point
        assert shift[0].tolist() == pytest.approx([8.0 * head, -6.0 * head], abs=1e-6)
    # frames are independent: a batch is its frames one by one
    batch = torch.cat([moved, _similarity(rest, 1.0, -0.1, (2.0, 0.0), centre)])
    both = scale_head_pose(torch.cat([rest, rest]), batch, 0.25)
    assert torch.allclose(both[:1], scale_head_pose(rest, moved, 0.25))
    assert both.dtype == batch.dtype


def _head_turning_clip() -> tuple[torch.Tensor, torch.Tensor]:
    """A target and a source track whose head travels and tilts, with a mouth opening."""
    frames, pts = _clip(frames=1, size=32)
    rest = pts[:1]
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    track = [rest]
    for k in range(1, 6):
        moved = rest.clone()
        moved[:, 56:59, 1] += 0.3 * k
        moved[:, 65:68, 1] += 0.25 * k
        track.append(_similarity(moved.double(), 1.0, 0.05 * k, (0.6 * k, -0.3 * k),
                                 centre.double()).float())
    return frames[0], torch.cat(track)


@torch.no_grad()
def test_geowarp_render_head_moves_the_points_and_the_pixels() -> None:
    model = _model(nudge=0.0)
    target, track = _head_turning_clip()
    feats = model.generator.encode_target(target[None] * 2 - 1, track[:1])
    d = model.encoder.extract(track[None])
    full, aux = model.generator.render(feats, d, return_aux=True)
    same = model.generator.render(feats, d, head=1.0)
    assert torch.equal(full, same)
    still, aux0 = model.generator.render(feats, d, head=0.0, return_aux=True)
    rest = track[:1].expand(6, -1, -1)
    _, _, angle1, shift1 = head_similarity(rest, aux["points"][0])
    _, _, angle0, shift0 = head_similarity(rest, aux0["points"][0])
    assert float(angle1[-1].abs()) > 0.1 and float(shift1[-1].norm()) > 1.0
    assert float(angle0.abs().max()) < 1e-5 and float(shift0.norm(dim=-1).max()) < 1e-4
    # the mouth still opens without the head's motion
    gap = (aux0["points"][0, :, 66, 1] - aux0["points"][0, :, 62, 1])
    assert float(gap[-1] - gap[0]) > 0.8
    # the pixels: without the head's motion the frames stay much closer to the target
    tgt = (target * 2 - 1)[None]
    assert float((still[0, -1] - tgt).abs().mean()) < 0.5 * float((full[0, -1] - tgt).abs().mean())


def test_renderer_takes_head_only_where_it_means_something() -> None:
    from conftest import SMALL_MODEL

    from dtgan_plugin.inference import Renderer
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    model = _model(nudge=0.0)
    target, track = _head_turning_clip()
    d = model.encoder.extract(track[None])[0]
    r0 = Renderer(model, target, target_landmarks=track[0], head=0.0).render(d)
    r1 = Renderer(model, target, target_landmarks=track[0]).render(d)
    assert float((r0[-1] - target).abs().mean()) < float((r1[-1] - target).abs().mean())
    for bad in (-0.5, 2.5, float("nan"), "0", True):
        with pytest.raises(OptionError, match="head must be a number from 0 to 2"):
            Renderer(model, target, target_landmarks=track[0], head=bad)
    pixels = build_model(ModelConfig.from_dict(SMALL_MODEL)).eval()
    res = int(pixels.config.resolution)
    with pytest.raises(OptionError, match="needs a model that moves faces by their landmarks"):
        Renderer(pixels, torch.rand(3, res, res), head=0.5)
    Renderer(pixels, torch.rand(3, res, res), head=1.0)  # the default is fine on any model


def test_transfer_graph_carries_head_only_when_set() -> None:
    from dtgan_plugin.api import transfer_spec
    from dtgan_plugin.faces.decide import CropSettings

    kw = dict(target="t.png", source="s.mp4", dynamics=None, checkpoint="default",
              reference_frame=0, amplify=1.0, smooth=False, size=None, fit="crop",
              alpha="refuse", face_crop=CropSettings(size=128, detail=256))
    node = [n for c in transfer_spec(**kw)[0].chains for n in c if n.name == "dtgan.transfer"]
    assert "head" not in node[0].named  # graphs read as before
    node = [n for c in transfer_spec(**kw, head=0.25)[0].chains for n in c
            if n.name == "dtgan.transfer"]
    assert float(node[0].named["head"]) == 0.25


@pytest.mark.parametrize("value", [-1, 3, "x", float("inf")])
def test_api_transfer_refuses_bad_head_before_reading_anything(value: object) -> None:
    from dtgan_plugin.api import transfer

    with pytest.raises(OptionError, match="head must be a number from 0 to 2"):
        transfer("missing.mp4", "missing.png", "out.mp4", crop="none", head=value)


def test_the_transfer_stage_refuses_head_on_a_pixel_model(tmp_path) -> None:
    from conftest import SMALL_MODEL, make_clip, small_checkpoint

    from dtgan_plugin.graph import Graph
    from dtgan_plugin.media.image import write_image

    ckpt = small_checkpoint(tmp_path / "pix.safetensors")
    res = int(SMALL_MODEL["resolution"])
    write_image(tmp_path / "t.png", torch.rand(3, res, res))
    graph = Graph.parse(f"[1]dtgan.dynamics=checkpoint={ckpt}[d];"
                        f"[0][d]dtgan.transfer=checkpoint={ckpt}:head=0.5[out]")
    make_clip(tmp_path / "s.mp4", frames=4, size=res)
    with pytest.raises(UsageError, match="dtgan.transfer: head=0.5 needs a model"):
        graph.run({"0": str(tmp_path / "t.png"), "1": str(tmp_path / "s.mp4")},
                  {"out": str(tmp_path / "o.mp4")}, progress=False)
    assert not (tmp_path / "o.mp4").exists()


def test_cli_head_flag() -> None:
    from conftest import run_cli

    res = run_cli("transfer", "-s", "x.mp4", "-t", "y.png", "-o", "z.mp4", "--head", "3")
    err = res.stderr.decode().strip()
    assert res.returncode == 2 and "--head" in err and "between 0 and 2" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_head_on_a_pixel_model_names_the_flag(tmp_path) -> None:
    from conftest import make_clip, run_cli

    from dtgan_plugin.media.image import write_image

    make_clip(tmp_path / "s.mp4", frames=4, size=64)
    write_image(tmp_path / "t.png", torch.rand(3, 64, 64))
    res = run_cli("transfer", "-s", str(tmp_path / "s.mp4"), "-t", str(tmp_path / "t.png"),
                  "-o", str(tmp_path / "o.mp4"), "--checkpoint", "cartoon64", "--crop", "none",
                  "--head", "0")
    err = res.stderr.decode().strip()
    assert res.returncode == 2, err
    assert err.startswith("dtgan: error: --head 0 needs a model") and "--head at 1" in err, err
    assert not (tmp_path / "o.mp4").exists()


def test_batch_head_option_and_job_ids() -> None:
    from dtgan_plugin.batch.jobs import JobOptions, apply_options

    base = JobOptions()
    assert "head" not in base.to_dict()  # batches started before the option keep their ids
    opts = apply_options(base, {"head": "0.5"}, "row 2")
    assert opts.head == 0.5 and opts.to_dict()["head"] == 0.5
    assert apply_options(base, {"head": ""}, "row 2").head == 1.0
    for bad in ("3", "-0.1", "nan", "half"):
        with pytest.raises(UsageError, match="row 2: 'head'"):
            apply_options(base, {"head": bad}, "row 2")


def test_head_values_are_documented_consistently() -> None:
    from dtgan_plugin.filters import model_stages

    assert model_stages._MAX_HEAD == MAX_HEAD
    assert np.isclose(MAX_HEAD, 2.0)
