"""Closing eyelids: ``models.eyelids`` and ``generator_cfg.eyelids`` (skin painted over an eye
the warp squeezed shut)."""

from __future__ import annotations

import pytest
import torch

from dtgan_plugin.models.eyelids import EYES, FULL, START, closure, lid_colours, paint_eyelids

from test_head_outline import _geo_model
from test_head_pose import _face


def _shut(rest: torch.Tensor, share: float, eye: int = 0) -> torch.Tensor:
    """``rest`` with one eye's lids moved towards each other by ``share`` of its opening."""
    moved = rest.clone()
    _, upper, lower, _ = EYES[eye]
    for u, lo in zip(upper, lower):
        gap = moved[:, lo] - moved[:, u]
        moved[:, u] += 0.5 * share * gap
        moved[:, lo] -= 0.5 * share * gap
    return moved


def test_closure_rises_from_start_to_full_and_ignores_a_wider_eye() -> None:
    rest = _face().double()
    assert torch.equal(closure(rest, rest), torch.zeros(1, 2, dtype=torch.float64))
    assert float(closure(rest, _shut(rest, START * 0.9))[0, 0]) == 0.0
    half = float(closure(rest, _shut(rest, (START + FULL) / 2))[0, 0])
    assert half == pytest.approx(0.5, abs=1e-6)
    shut = closure(rest, _shut(rest, 0.95))
    assert float(shut[0, 0]) == 1.0 and float(shut[0, 1]) == 0.0      # the other eye stays
    assert float(closure(rest, _shut(rest, -0.5))[0, 0]) == 0.0        # opened wider


def _scene(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A face's points scaled into a ``size`` frame and an image: skin 0.4 everywhere, the
    eyes' outlines dark (-0.8)."""
    from dtgan_plugin.faces.paste import convex_hull, hull_distance

    import numpy as np

    pts = _face() * (size / 128)
    image = torch.full((1, 3, size, size), 0.4)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    for outline, _, _, _ in EYES:
        hull = convex_hull(pts[0, list(outline)].double().numpy())
        inside = torch.as_tensor(hull_distance(hull, xs, ys) < 0)
        image[..., inside] = -0.8
    return image, pts


def test_the_lid_colour_is_the_skin_between_brow_and_lid() -> None:
    image, pts = _scene()
    colours = lid_colours(image, pts)
    assert colours.shape == (1, 2, 3)
    assert torch.allclose(colours, torch.full((1, 2, 3), 0.4), atol=1e-5)


def test_a_shut_eye_is_painted_over_and_nothing_else_changes() -> None:
    image, pts = _scene(256)                      # an eye about 10 px open
    colours = lid_colours(image, pts)
    # at rest nothing is painted: the same tensor comes back
    assert paint_eyelids(image, pts, pts, colours) is image
    # the left eye shut past FULL, its outline still a pixel or two high (a thinner one is
    # painted over its soft edge alone: the lashes' line stays)
    moved = _shut(pts, 0.85)
    frames = image.clone()
    painted = paint_eyelids(frames, pts, moved, colours)
    centre = moved[0, list(EYES[0][0])].mean(0)
    x, y = int(centre[0]), int(centre[1])
    assert float(image[0, 0, y, x]) == pytest.approx(-0.8)
    assert float(painted[0, 0, y, x]) == pytest.approx(0.4, abs=1e-4)  # the lid's skin
    changed = (painted - image).abs().amax(1)[0] > 1e-6
    ys, xs = changed.nonzero().unbind(1)
    # only around the shut eye's outline (its box grown by two soft edges)
    box = moved[0, list(EYES[0][0])]
    assert int(xs.min()) >= int(box[:, 0].min()) - 2 and int(xs.max()) <= int(box[:, 0].max()) + 2
    assert int(ys.min()) >= int(box[:, 1].min()) - 2 and int(ys.max()) <= int(box[:, 1].max()) + 2
    # the right eye, still open, keeps its pixels
    right = pts[0, list(EYES[1][0])].mean(0)
    assert float(painted[0, 0, int(right[1]), int(right[0])]) == pytest.approx(-0.8)
    # at twice the size the same eye is painted at twice the coordinates
    big = torch.nn.functional.interpolate(image, scale_factor=2, mode="nearest")
    painted2 = paint_eyelids(big.clone(), pts, moved, colours, scale=2.0)
    assert float(painted2[0, 0, 2 * y + 1, 2 * x + 1]) == pytest.approx(0.4, abs=1e-4)


def test_a_frames_paint_does_not_depend_on_the_frames_beside_it() -> None:
    """batch and transfer chunk frames differently: a frame's pixels must not change with
    them, bit for bit, even where a shut eye's lid points cross."""
    image, pts = _scene(128)
    moved = torch.cat([_shut(pts, s) for s in (0.0, 0.5, 0.7, 0.9, 0.95, 1.2)])
    moved[2:] += torch.tensor([3.0, 1.0])                  # the later frames elsewhere
    rest = pts.expand(6, -1, -1)
    frames = image.expand(6, -1, -1, -1) + 0.01 * torch.randn(
        6, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    colours = lid_colours(image, pts).expand(6, -1, -1)
    together = paint_eyelids(frames.clone(), rest, moved, colours)
    alone = torch.cat([paint_eyelids(frames[i:i + 1].clone(), rest[i:i + 1], moved[i:i + 1],
                                     colours[i:i + 1]) for i in range(6)])
    assert torch.equal(together, alone)
    assert not torch.equal(together, frames)


def test_painting_keeps_the_gradient_when_training_needs_it() -> None:
    image, pts = _scene()
    frames = image.clone().requires_grad_(True)
    painted = paint_eyelids(frames, pts, _shut(pts, 0.9), lid_colours(image, pts))
    painted.sum().backward()
    assert frames.grad is not None
    assert float(frames.grad.min()) < 1.0 - 1e-3          # the painted pixels pass less on


@torch.no_grad()
def test_the_render_paints_a_blink_and_keeps_identity_at_rest() -> None:
    from test_head_outline import _turning_track

    target, track = _turning_track()
    blink = torch.cat([track[:1], _shut(track[:1], 0.95)])   # rest, then the left eye shut
    outs = {}
    for on in (False, True):
        model = _geo_model(eyelids=on)
        feats = model.generator.encode_target(target[None] * 2 - 1, blink[:1])
        assert ("lids" in feats.rest) == on
        d = model.encoder.extract(blink[None])
        outs[on] = model.generator.render(feats, d)[0]
    assert torch.equal(outs[True][0], outs[False][0])            # at rest: no paint
    diff = (outs[True][1] - outs[False][1]).abs().amax(0)
    ys, xs = (diff > 1e-4).nonzero().unbind(1)
    assert len(ys) > 0
    # the change lies around the left eye's moved outline only (the model's own landmarks
    # carry the blink approximately: allow a few pixels)
    eye = blink[0, list(EYES[0][0])]
    assert int(xs.min()) >= int(eye[:, 0].min()) - 4 and int(xs.max()) <= int(eye[:, 0].max()) + 4


def test_the_switch_is_checked_and_old_checkpoints_keep_it_off() -> None:
    from dtgan_plugin.errors import ConfigError
    from dtgan_plugin.inference import load_model
    from dtgan_plugin.models.config import ModelConfig

    from test_landmark_inference import SMALL_LMK

    data = ModelConfig.from_dict({**SMALL_LMK, "resolution": 64}).to_dict()
    del data["generator_cfg"]["eyelids"]
    assert ModelConfig.from_dict(data).generator_cfg.eyelids is False
    data["generator_cfg"]["eyelids"] = 1
    with pytest.raises(ConfigError, match="eyelids"):
        ModelConfig.from_dict(data)
    assert load_model("default").config.generator_cfg.eyelids is True
