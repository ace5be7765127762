"""Anchors below the jaw that keep the neck, collar and shoulders nearly still:
``models.body_anchors`` and ``generator_cfg.body_anchors`` (the spline's extra points)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dtgan_plugin.models.body_anchors import (EDGE, FOLLOW, GAP, JAW, KEEP, NEAREST, RISE,
                                              body_points, collar_gaps)
from dtgan_plugin.models.geowarp import flow_folds
from dtgan_plugin.models.head_pose import RIGID_POINTS

from test_head_outline import _geo_model, _turning_track
from test_head_pose import _face, _similarity
from test_landmark_inference import SMALL_LMK

CHIN = JAW.index(8)


def _unit_below(rest: torch.Tensor) -> torch.Tensor:
    """The unit vector from the nose's centre out through the chin ``(N, 2)``."""
    out = rest[:, 8] - rest[:, 27:36].mean(1)
    return out / out.norm(dim=-1, keepdim=True)


def test_the_anchors_rest_below_the_jaw_and_stay_at_rest() -> None:
    rest = _face().double()
    anchor, moved = body_points(rest, rest)
    assert anchor.shape == (1, len(JAW), 2) and anchor.dtype == torch.float64
    assert torch.equal(moved, anchor)
    # each one GAP of its jaw point's distance from the nose beyond it, below the chin line
    nose = rest[:, 27:36].mean(1, keepdim=True)
    jaw = rest[:, list(JAW)]
    assert torch.allclose((anchor - jaw).norm(dim=-1), GAP * (jaw - nose).norm(dim=-1))
    assert bool((anchor[0, :, 1] > jaw[0, :, 1]).all())           # y points down


def test_an_opening_jaw_leaves_the_collar_until_the_gap_is_half_gone() -> None:
    rest = _face().double()
    unit = _unit_below(rest)
    gap = float(GAP * (rest[:, 8] - rest[:, 27:36].mean(1)).norm())
    anchor, _ = body_points(rest, rest)
    for share, expect in ((0.3, 0.0), (KEEP, 0.0), (0.8, 0.8 - KEEP)):
        moved = rest.clone()
        moved[:, 8] += share * gap * unit                          # the chin drops
        _, got = body_points(rest, moved)
        shift = got[:, CHIN] - anchor[:, CHIN]
        assert torch.allclose(shift, expect * gap * unit, atol=1e-9), share
        # the neck between them keeps at least KEEP of its length: it never folds
        left = float(((got[:, CHIN] - moved[:, 8]) * unit).sum())
        assert left >= KEEP * gap - 1e-9
    # a chin rising away from the collar leaves it where it is
    moved = rest.clone()
    moved[:, 8] -= 0.5 * gap * unit
    assert torch.allclose(body_points(rest, moved)[1][:, CHIN], anchor[:, CHIN])


def test_the_anchors_follow_a_share_of_the_jaws_motion_along_it() -> None:
    rest = _face().double()
    unit = _unit_below(rest)
    along = torch.stack([-unit[:, 1], unit[:, 0]], -1)           # perpendicular to the gap
    moved = rest.clone()
    moved[:, 8] += 5.0 * along
    anchor, got = body_points(rest, moved)
    assert torch.allclose(got[:, CHIN] - anchor[:, CHIN], FOLLOW * 5.0 * along, atol=1e-9)


def _collar_photo(rest: torch.Tensor, below_chin: float, cloth: float = -0.9,
                  size: int = 128) -> torch.Tensor:
    """A skin-coloured photo ``(1, 3, size, size)`` in [-1, 1] whose collar (colour ``cloth``)
    begins ``below_chin`` pixels below the chin (``rest`` point 8), a dark shadow band under
    the jaw."""
    ys = torch.arange(size, dtype=torch.float64)[:, None].expand(size, size)
    skin = torch.tensor([0.6, 0.26, 0.14], dtype=torch.float64)[:, None, None]
    image = skin.expand(3, size, size).clone()
    chin_y = float(rest[0, 8, 1])
    image = torch.where(((ys > chin_y) & (ys < chin_y + 2)), image - 0.3, image)  # a shadow
    image = torch.where(ys >= chin_y + below_chin, torch.full_like(image, cloth), image)
    return image[None].float()


def test_a_collar_below_the_chin_stops_its_anchors_short() -> None:
    rest = _face().double()
    nose = rest[:, 27:36].mean(1, keepdim=True)
    length = (rest[:, list(JAW)] - nose).norm(dim=-1, keepdim=True)
    # no collar within reach (and a shadow under the jaw, which is not one): GAP, as without
    plain = collar_gaps(_collar_photo(rest, 100.0), rest)
    assert plain.shape == (1, len(JAW), 1) and plain.dtype == torch.float64
    assert torch.allclose(plain, GAP * length)
    assert torch.equal(body_points(rest, rest, plain)[0], body_points(rest, rest)[0])
    # a dark turtleneck 4 px below the chin: the chin's anchor lies on the last skin before it
    gaps = collar_gaps(_collar_photo(rest, 4.0), rest)
    chin_gap = float(gaps[0, CHIN, 0])
    unit = _unit_below(rest)
    to_collar = 4.0 / float(unit[0, 1])                  # along the anchor's line
    step = float((GAP - NEAREST) * length[0, CHIN, 0]) / 15
    # (the collar's first row has its centre half a pixel beyond; bilinear samples blend)
    assert to_collar - 2 * step <= chin_gap <= to_collar + 1.0, (chin_gap, to_collar)
    assert chin_gap < 0.7 * GAP * float(length[0, CHIN, 0])
    # a white collar counts as well; never nearer the jaw than NEAREST
    white = collar_gaps(_collar_photo(rest, 4.0, cloth=0.9), rest)
    assert float(white[0, CHIN, 0]) < 0.7 * GAP * float(length[0, CHIN, 0])
    at_jaw = collar_gaps(_collar_photo(rest, 0.0), rest)
    assert float(at_jaw[0, CHIN, 0]) == pytest.approx(NEAREST * float(length[0, CHIN, 0]))
    assert bool((at_jaw >= NEAREST * length - 1e-9).all()) and bool((at_jaw < plain).all())
    # a colour barely off the skin is no collar
    faint = collar_gaps(_collar_photo(rest, 4.0, cloth=0.6 - 1.9 * EDGE), rest)
    assert float(faint[0, CHIN, 0]) == pytest.approx(GAP * float(length[0, CHIN, 0]))


def test_a_raised_chin_stretches_the_neck_not_the_collar() -> None:
    """The collar's gap as the chin rises (wholly once it has risen RISE of that gap): the
    anchors then rest at the collar's edge and hold it. A chin at rest, turning or dropping
    keeps the full gap (anchors that close bent the lower face)."""
    rest = _face().double()
    gaps = collar_gaps(_collar_photo(rest, 4.0), rest)
    near = float(gaps[0, CHIN, 0])
    unit = _unit_below(rest)
    full, _ = body_points(rest, rest)
    assert torch.equal(body_points(rest, rest, gaps)[0], full)          # at rest: the full gap
    jaw = rest[:, 8]
    for rise, share in ((RISE * near, 1.0), (3 * near, 1.0), (0.5 * RISE * near, 0.5)):
        moved = rest.clone()
        moved[:, 8] -= rise * unit
        anchor, got = body_points(rest, moved, gaps)
        gap = float(((anchor[:, CHIN] - jaw) * unit).sum())
        full_gap = float(((full[:, CHIN] - jaw) * unit).sum())
        assert gap == pytest.approx(full_gap + (near - full_gap) * share), rise
        assert torch.allclose(got[:, CHIN], anchor[:, CHIN])            # held where it rests
    moved = rest.clone()
    moved[:, 8] += 0.8 * near * unit                                     # the chin drops
    assert torch.equal(body_points(rest, moved, gaps)[0], full)


def _body_model(on: bool):
    return _geo_model(body_anchors=on)


@torch.no_grad()
def test_the_render_keeps_the_collar_still_under_a_moving_head() -> None:
    target, track = _turning_track()                     # the head travels right
    flows, frames = {}, {}
    for on in (False, True):
        model = _body_model(on)
        feats = model.generator.encode_target(target[None] * 2 - 1, track[:1])
        d = model.encoder.extract(track[None])
        out, aux = model.generator.render(feats, d, return_aux=True)
        flows[on], frames[on] = aux["flow"][0], out[0]
    # at rest the frame is the target either way
    assert float((frames[True][0] - (target * 2 - 1)).abs().max()) < 1e-3
    # where the chin's anchor rests, below the chin: it moves FOLLOW of the head's travel
    # with the anchors, most of it without
    anchor = body_points(track[:1], track[:1])[0][0, CHIN]
    x, y = int(anchor[0]), int(anchor[1])
    moved = {on: float(flows[on][-1, 0, y, x].abs()) for on in flows}
    assert moved[True] < 0.6 * moved[False], moved
    # the face itself moves alike (its landmarks are the spline's own points)
    fx, fy = (int(v) for v in track[-1, 30])
    assert float(flows[True][-1, 0, fy, fx]) == pytest.approx(float(flows[False][-1, 0, fy, fx]),
                                                             rel=0.05)


@torch.no_grad()
@pytest.mark.parametrize("shift, angle", [((0.2, 0.05), 0.3), ((-0.2, 0.05), -0.3),
                                          ((0.0, 0.2), 0.0), ((0.0, -0.2), 0.0),
                                          ((0.25, 0.15), 0.2)])
def test_the_anchors_add_no_fold_to_the_spline(shift: tuple[float, float], angle: float) -> None:
    """Large head moves, the head nodding down onto the collar among them: the spline with the
    body's anchors folds no more than the landmarks' own (a few pixels of slack)."""
    gen = _body_model(True).generator
    res = gen.resolution
    rest = (_face() * (res / 128) - res / 2) * 0.6 + res / 2
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(rest, 1.0, angle, (shift[0] * res, shift[1] * res), centre)
    body_rest, body_moved = body_points(rest, moved)
    alone = int(flow_folds(gen.dense_flow(rest.float(), moved.float()))[0].sum())
    both = int(flow_folds(gen.dense_flow(torch.cat([rest, body_rest], 1).float(),
                                         torch.cat([moved, body_moved], 1).float()))[0].sum())
    assert both <= alone + 2, (both, alone)


def test_the_switch_is_checked_and_old_checkpoints_keep_it_off(tmp_path: Path) -> None:
    from dtgan_plugin.errors import ConfigError
    from dtgan_plugin.inference import load_model
    from dtgan_plugin.models.config import ModelConfig

    cfg = ModelConfig.from_dict({**SMALL_LMK, "resolution": 64})
    assert cfg.generator_cfg.body_anchors is False
    data = cfg.to_dict()
    del data["generator_cfg"]["body_anchors"]                   # a checkpoint made before it
    assert ModelConfig.from_dict(data).generator_cfg.body_anchors is False
    data["generator_cfg"]["body_anchors"] = "yes"
    with pytest.raises(ConfigError, match="body_anchors"):
        ModelConfig.from_dict(data)
    # the shipped model keeps the collar still; a copy can switch it off
    assert load_model("default").config.generator_cfg.body_anchors is True
    script = Path(__file__).resolve().parent.parent / "scripts" / "set_generator_options.py"
    out = tmp_path / "off.safetensors"
    done = subprocess.run([sys.executable, str(script), "default", str(out),
                           "body_anchors=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_model(str(out)).config.generator_cfg.body_anchors is False
