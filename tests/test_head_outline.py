"""The hair moving with the head: ``models.head_outline``, ``generator_cfg.head_outline`` (the
outline as spline anchors), the person as a layer over a still background
(``models.head_layer``, ``faces.segment``), ``Renderer.render_with_geometry``, the chunks'
``outline`` and the paste-back mask over it."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from dtgan_plugin.faces.crop import clamp_box, face_box
from dtgan_plugin.faces.paste import PasteBack
from dtgan_plugin.models.head_outline import (BORDER_FADE, ENDS_BELOW_EYES, HALF_HEIGHT,
                                              OUTLINE_POINTS, head_outline, moved_outline)
from dtgan_plugin.models.geowarp import flow_folds
from dtgan_plugin.models.head_pose import RIGID_POINTS

from test_head_pose import _expression, _face, _similarity
from test_landmark_inference import SMALL_LMK, _clip


def _canonical(points: torch.Tensor, outline: torch.Tensor) -> torch.Tensor:
    """The outline in its face's frame (eye centre at 0, eye line level, interocular 1)."""
    from dtgan_plugin.models.face_geometry import face_frame

    centre, lin = face_frame(points.double())
    return (outline - centre[:, None]) @ lin.transpose(1, 2)


def test_the_outline_rings_the_head_above_the_ears() -> None:
    rest = _face()
    outline = head_outline(rest)
    assert outline.shape == (1, OUTLINE_POINTS, 2) and outline.dtype == torch.float64
    canon = _canonical(rest, outline)[0]
    # from beside one ear over the top of the head to the other, beyond the face's points
    assert float(canon[0, 1]) == pytest.approx(ENDS_BELOW_EYES, abs=1e-9)
    assert float(canon[-1, 1]) == pytest.approx(ENDS_BELOW_EYES, abs=1e-9)
    assert float(canon[:, 1].min()) == pytest.approx(-HALF_HEIGHT, abs=1e-9)
    assert float(canon[0, 0]) < 0 < float(canon[-1, 0])
    face = _canonical(rest, rest.double())[0]
    assert float(canon[:, 1].min()) < float(face[17:27, 1].min()) - 1.0   # well above the brows
    assert float(canon[:, 0].max()) > float(face[:17, 0].max())            # beyond the jaw


def test_the_outline_scales_tilts_and_travels_with_the_face() -> None:
    rest = _face()
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(rest, 1.3, 0.4, (9.0, -5.0), centre)
    expected = _similarity(head_outline(rest), 1.3, 0.4, (9.0, -5.0), centre)
    assert torch.allclose(head_outline(moved), expected, atol=1e-9)


def test_the_moved_outline_follows_the_head_not_the_expression() -> None:
    rest = _face()
    outline = head_outline(rest)
    big = (-1000.0, -1000.0, 3000.0)                   # a frame far from every point: no fade
    assert torch.allclose(moved_outline(outline, rest, rest, big), outline, atol=1e-9)
    assert torch.allclose(moved_outline(outline, rest, _expression(rest), big), outline,
                          atol=1e-9)
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(_expression(rest), 0.9, -0.2, (-6.0, 4.0), centre)
    assert torch.allclose(moved_outline(outline, rest, moved, big),
                          _similarity(outline, 0.9, -0.2, (-6.0, 4.0), centre), atol=1e-6)


def test_the_moved_outline_fades_out_at_the_frame_border() -> None:
    rest = _face()
    outline = head_outline(rest)
    shifted = rest + torch.tensor([5.0, 0.0], dtype=rest.dtype)
    canon_top = int(outline[0, :, 1].argmin())
    top_y = float(outline[0, canon_top, 1])
    moves = []
    # frames whose top edge lies further and further above the outline's top point
    for gap in (0.0, 0.5 * BORDER_FADE, BORDER_FADE, 2 * BORDER_FADE):
        side = 400.0
        frame = (-100.0, top_y - gap * side, side)
        moves.append(float((moved_outline(outline, rest, shifted, frame)
                            - outline)[0, canon_top, 0]))
    assert moves[0] == pytest.approx(0.0, abs=1e-9)           # on the border: still
    assert 0.0 < moves[1] < 5.0                               # part of the way
    assert moves[2] == pytest.approx(5.0) and moves[3] == pytest.approx(5.0)


def _geo_model(**switches: bool):
    """A small 64 px landmark model, learned corrections off, ``generator_cfg`` switches set."""
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    cfg = {**SMALL_LMK, "resolution": 64,
           "generator_cfg": {**SMALL_LMK["generator_cfg"], **switches,
                             "motion_correction": False, "flow_correction": False}}
    torch.manual_seed(0)
    return build_model(ModelConfig.from_dict(cfg)).eval()


def _hair_model(outline: bool):
    return _geo_model(head_outline=outline)


def _turning_track(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A procedural target and a track whose head travels right by a tenth of the frame; the
    face is shrunk about the frame's centre to leave its hair room inside the frame."""
    frames, pts = _clip(frames=1, size=size)
    rest = (pts[:1] - size / 2) * 0.5 + size / 2
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    track = [rest] + [_similarity(rest.double(), 1.0, 0.0, (0.02 * k * size, 0.0),
                                  centre.double()).float() for k in range(1, 6)]
    return frames[0], torch.cat(track)


@torch.no_grad()
def test_the_spline_carries_the_hair_with_the_head() -> None:
    target, track = _turning_track()
    flows = {}
    for outline in (False, True):
        model = _hair_model(outline)
        feats = model.generator.encode_target(target[None] * 2 - 1, track[:1])
        d = model.encoder.extract(track[None])
        frames, aux = model.generator.render(feats, d, return_aux=True)
        # identity at rest holds with the outline too
        assert float((frames[0, 0] - (target * 2 - 1)).abs().max()) < 1e-3
        assert ("outline" in aux) == outline
        flows[outline] = aux["flow"][0, -1]
        if outline:
            assert aux["outline"].shape == (1, 6, OUTLINE_POINTS, 2)
    # a point above the brows, in the hair: the backward flow's x (grid units; the head moved
    # right, so it samples from the left) is much closer to the head's own travel with it
    rest = track[0]
    size = 64
    brow = float(rest[17:27, 1].min())
    top = float(head_outline(track[:1])[0, :, 1].min())
    assert top > 0.2 * size                                 # the outline is inside the frame
    x, y = int(rest[:, 0].mean()), int((brow + top) / 2)    # halfway up the hair
    travel = -0.02 * 5 * size * 2 / size                   # pixels → grid units
    without = float(flows[False][0, y, x])
    with_hair = float(flows[True][0, y, x])
    assert abs(with_hair - travel) < 0.5 * abs(without - travel)


def _folded_pixels(flow: torch.Tensor) -> int:
    return int(flow_folds(flow)[0].sum())


def test_flow_folds_counts_the_folded_pixels() -> None:
    ident = torch.zeros(2, 2, 16, 20)
    count, low = flow_folds(ident)
    assert count.tolist() == [0, 0] and torch.allclose(low, torch.ones(2))
    # the second frame samples its left half mirrored: those columns fold
    xs = (torch.arange(20) + 0.5) / 10 - 1                  # pixel centres in grid units
    mirrored = ident.clone()
    mirrored[1, 0, :, :10] = -2 * xs[:10]                   # x -> -x on the left half
    count, low = flow_folds(mirrored)
    assert count[0] == 0 and 9 * 15 <= int(count[1]) <= 10 * 15 and float(low[1]) < 0


@torch.no_grad()
@pytest.mark.parametrize("shift, angle", [((0.2, 0.05), 0.3), ((-0.2, 0.05), -0.3),
                                          ((0.25, -0.1), 0.3), ((0.3, 0.0), 0.0),
                                          ((0.0, -0.25), 0.0)])
def test_the_outline_adds_no_fold_to_the_spline(shift: tuple[float, float], angle: float
                                                ) -> None:
    """Large head moves towards the frame's border: the spline through the landmarks and the
    moved outline folds no more than the landmarks' own; fading the outline to its resting
    place instead (as the previous release did) folds it (a bubble in the cheek)."""
    gen = _hair_model(True).generator
    res = gen.resolution
    rest = (_face() * (res / 128) - res / 2) * 0.6 + res / 2
    centre = rest[:, list(RIGID_POINTS)].mean(1)
    moved = _similarity(rest, 1.0, angle, (shift[0] * res, shift[1] * res), centre)
    outline, frame = head_outline(rest), (0.0, 0.0, float(res))
    base = gen.landmark_spline_at(gen.landmark_spline_weights(rest, outline), moved)
    ours = moved_outline(outline, rest, moved, frame, base=base)
    to_rest = moved_outline(outline, rest, moved, frame)

    def folds(hair: torch.Tensor | None) -> int:
        if hair is None:
            return _folded_pixels(gen.dense_flow(rest.float(), moved.float()))
        return _folded_pixels(gen.dense_flow(torch.cat([rest, outline], 1).float(),
                                             torch.cat([moved, hair], 1).float()))

    alone = folds(None)
    assert folds(ours) <= alone
    assert folds(to_rest) > alone + 20


@torch.no_grad()
def test_the_render_fades_the_outline_to_the_landmarks_spline() -> None:
    model = _hair_model(True)
    target, track = _turning_track()
    gen = model.generator
    feats = gen.encode_target(target[None] * 2 - 1, track[:1])
    d = model.encoder.extract(track[None])
    _, aux = gen.render(feats, d, return_aux=True)
    moved = aux["points"][0].double()
    rest = track[:1].double().expand(len(moved), -1, -1)
    outline = head_outline(rest)
    weights = gen.landmark_spline_weights(rest, outline)
    expected = moved_outline(outline, rest, moved, (0.0, 0.0, float(gen.resolution)),
                             base=gen.landmark_spline_at(weights, moved))
    assert torch.allclose(aux["outline"][0].double(), expected, atol=1e-3)
    # at rest the landmarks' spline is the identity: the outline rests where it is
    assert torch.allclose(gen.landmark_spline_at(weights[:1], rest[:1]), outline[:1], atol=1e-6)
    # the weights are the spline's own: solving it for the moved points lands the same place
    coef, ctrl = gen._spline(rest, moved)
    q = outline.double() / gen.resolution
    from dtgan_plugin.models.geowarp import tps_kernel
    k = ctrl.shape[1]
    direct = (tps_kernel(torch.cdist(q, ctrl).square()) @ coef[:, :k] + coef[:, k:k + 1]
              + q @ coef[:, k + 1:]) * gen.resolution
    assert torch.allclose(gen.landmark_spline_at(weights, moved), direct, atol=1e-6)


def _paste_scene() -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    photo = torch.full((3, 240, 240), 0.3)
    pts = _face()[0].numpy() * 0.6 + np.array([82.0, 95.0])   # a procedural face, 77 px
    box = clamp_box(face_box(pts), 240, 240)
    outline = head_outline(torch.as_tensor(pts, dtype=torch.float64)[None])[0].numpy()
    return photo, pts, box, outline


def _to_crop(pts: np.ndarray, box: np.ndarray, crop: int) -> torch.Tensor:
    cx, cy, side = box
    return torch.as_tensor((pts - [cx, cy]) / side * crop + crop / 2, dtype=torch.float32)


def test_the_paste_covers_the_hair_only_when_told() -> None:
    photo, pts, box, outline = _paste_scene()
    crops = torch.ones(1, 3, 128, 128)
    face_only = PasteBack(photo, pts, box, colour_match=False).paste(crops)
    with_hair = PasteBack(photo, pts, box, colour_match=False, outline=outline).paste(crops)
    top = outline[:, 1].argmin()
    # halfway from the brows up to the outline's top (whose own edge the crop box fades)
    x, y = int(outline[top, 0]), int((outline[top, 1] + pts[17:27, 1].min()) / 2)
    assert float(face_only[0, 0, y, x]) == pytest.approx(0.3)
    assert float(with_hair[0, 0, y, x]) == pytest.approx(1.0)
    # the face itself is pasted either way
    cx, cy = (int(v) for v in pts.mean(0))
    assert float(face_only[0, 0, cy, cx]) == pytest.approx(1.0)


def test_the_following_mask_covers_the_moved_hair() -> None:
    photo, pts, box, outline = _paste_scene()
    box = np.array([box[0], box[1], 160.0])                 # room beside the hair
    paster = PasteBack(photo, pts, box, colour_match=False, outline=outline)
    crops = torch.ones(2, 3, 128, 128)
    points = _to_crop(pts, box, 128)[None].expand(2, -1, -1).contiguous()
    rest_hair = _to_crop(outline, box, 128)[None]
    shift = torch.tensor([25.0, 0.0])                       # crop pixels to the right
    hair = torch.cat([rest_hair, rest_hair + shift])
    out = paster.paste(crops, points, hair)
    right = int(outline[:, 0].argmax())
    # beyond the resting outline's right end, where the moved hair now is
    x = int(outline[right, 0] + 0.6 * 25.0 * box[2] / 128)
    y = int(outline[right, 1]) - 5
    assert float(out[0, 0, y, x]) == pytest.approx(0.3)
    assert float(out[1, 0, y, x]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outline must be"):
        paster.paste(crops, points, hair[:1])


def _fringe_scene() -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """:func:`_paste_scene` with dark hair whose fringe reaches past the outline's hull (and
    the paste mask's ramp), and a person matte that covers hair, face and neck."""
    photo, pts, box, outline = _paste_scene()
    from dtgan_plugin.faces.paste import convex_hull, hull_distance

    hull = convex_hull(np.concatenate([pts, outline]))
    ys, xs = np.mgrid[0:240, 0:240].astype(np.float64) + 0.5
    dist = torch.as_tensor(hull_distance(hull, xs, ys), dtype=torch.float32)
    matte = (dist < 6.0).float()                        # the fringe: 6 px past the hull
    photo = torch.where(matte.bool(), torch.tensor(0.05), photo)
    return photo, pts, box, outline, matte


def _above_ears(outline: np.ndarray, x: float, y: float) -> bool:
    a, b = outline[0], outline[-1]
    return y < min(a[1], b[1]) - 10 and y < (a[1] + b[1]) / 2


def test_the_matte_keeps_the_resting_hair_from_showing_through_the_ramp() -> None:
    photo, pts, box, outline, matte = _fringe_scene()
    backdrop = torch.full((1, 3, 128, 128), 0.8)        # the hair moved away: backdrop only
    old = PasteBack(photo, pts, box, colour_match=False, outline=outline).paste(backdrop)
    new = PasteBack(photo, pts, box, colour_match=False, outline=outline,
                    matte=matte).paste(backdrop)
    cx, cy, side = box
    gy, gx = np.mgrid[0:240, 0:240] + 0.5
    # well inside the crop's box (whose own edge the mask fades: nothing is pasted beyond)
    inside = np.minimum(side / 2 - np.abs(gx - cx), side / 2 - np.abs(gy - cy)) > 0.04 * side
    fringe = (matte > 0).numpy() & ~np.isclose(old[0, 0].numpy(), 0.8) & inside
    ys, xs = np.nonzero(fringe)
    top = np.array([_above_ears(outline, x + 0.5, y + 0.5) for y, x in zip(ys, xs)])
    assert top.sum() > 50                     # the ramp crossed the fringe above the ears
    # there the old mask let the resting hair (0.05) through; the matte's mask does not
    assert float(old[0, 0, ys[top], xs[top]].min()) < 0.5
    assert torch.allclose(new[0, 0, ys[top], xs[top]], torch.tensor(0.8), atol=1e-6)
    # below the line through the outline's ends (the neck) the mask is the hull's alone
    low = ys > max(outline[0, 1], outline[-1, 1]) + 10
    assert torch.equal(new[0, :, ys[low], xs[low]], old[0, :, ys[low], xs[low]])
    # far from the head the photo stays, bit for bit
    assert torch.equal(new[0, :, :5, :5], photo[:, :5, :5])


def test_the_matte_mask_checks_its_inputs_and_keeps_the_ring_outside() -> None:
    photo, pts, box, outline, matte = _fringe_scene()
    with pytest.raises(ValueError, match="matte must be"):
        PasteBack(photo, pts, box, outline=outline, matte=matte[:100])
    with pytest.raises(ValueError, match="outline"):
        PasteBack(photo, pts, box, matte=matte)
    paster = PasteBack(photo, pts, box, outline=outline, matte=matte)
    # the colour match's ring lies where nothing is pasted
    assert bool(paster.ring.any()) and float(paster.mask[paster.ring].max()) == 0.0
    plain = PasteBack(photo, pts, box, outline=outline)
    assert int(paster.ring.sum()) < int(plain.ring.sum())
    assert float((paster.mask - plain.mask).min()) >= 0.0     # it only grows the mask


@torch.no_grad()
def test_renderer_reports_the_outline_at_the_output_size() -> None:
    from dtgan_plugin.inference import Renderer

    model = _hair_model(True)
    target, track = _turning_track(size=96)
    d = model.encoder.extract(track[None])[0]
    big = Renderer(model, target, target_landmarks=track[0], out_size=96)
    frames, points, hair = big.render_with_geometry(d)
    assert frames.shape == (6, 3, 96, 96) and points.shape == (6, 68, 2)
    assert hair.shape == (6, OUTLINE_POINTS, 2)
    # at rest the outline is the target's own, in the output's pixels
    assert torch.allclose(hair[0].double(), head_outline(track[:1])[0], atol=0.05)
    assert float((hair[-1] - hair[0])[:, 0].max()) > 1.0   # it moved right with the head
    empty = big.render_with_geometry(d[:0])
    assert empty[2].shape == (0, OUTLINE_POINTS, 2)
    plain = Renderer(_hair_model(False), target, target_landmarks=track[0])
    assert plain.render_with_geometry(d)[2] is None


def test_the_pasteback_stage_uses_the_chunks_outline() -> None:
    from test_faces import astronaut

    pytest.importorskip("mediapipe")
    from dtgan_plugin.faces.autocrop import photo_box, photo_landmarks
    from dtgan_plugin.faces.stages import PasteBackStage
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.stream import ImagePacket, VideoChunk

    photo = astronaut()
    pts = photo_landmarks(photo)
    box = photo_box(pts, 512, 512)
    crop = 128
    points = _to_crop(pts, box, crop)[None].expand(2, -1, -1).contiguous()
    outline = head_outline(torch.as_tensor(np.asarray(pts), dtype=torch.float64)[None])[0].numpy()
    hair = _to_crop(outline, box, crop)[None].repeat(2, 1, 1)
    hair[1] += torch.tensor([6.0, 0.0])
    crops = torch.rand(2, 3, crop, crop, generator=torch.Generator().manual_seed(2))
    stage = PasteBackStage()
    stage.setup(RunContext(chunk_size=1))
    chunks = list(stage.run([iter([ImagePacket(photo)]),
                             iter([VideoChunk(crops, 0, 25.0, landmarks=points, outline=hair)])]))
    got = torch.cat([c.frames for c in chunks])
    from dtgan_plugin.faces.segment import person_matte

    # the outline and the photo's person matte (the hair's fringe)
    paster = PasteBack(photo, pts, box, outline=outline, matte=person_matte(photo))
    assert torch.allclose(got, torch.cat([paster.paste(crops[i:i + 1], points[i:i + 1],
                                                       hair[i:i + 1]) for i in range(2)]))
    assert not torch.allclose(got, PasteBack(photo, pts, box).paste(crops, points))
    assert not torch.allclose(got, PasteBack(photo, pts, box, outline=outline).paste(
        crops, points, hair))


def test_old_checkpoints_keep_the_hair_still_and_the_switch_is_checked() -> None:
    from dtgan_plugin.errors import ConfigError
    from dtgan_plugin.models.config import ModelConfig

    assert ModelConfig.from_dict(SMALL_LMK).generator_cfg.head_outline is False
    bad = {**SMALL_LMK, "generator_cfg": {**SMALL_LMK["generator_cfg"], "head_outline": 1}}
    with pytest.raises(ConfigError, match="head_outline"):
        ModelConfig.from_dict(bad)


def test_the_default_moves_the_hair_and_a_copy_holds_it_still(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from dtgan_plugin.inference import load_model

    script = Path(__file__).resolve().parent.parent / "scripts" / "set_generator_options.py"
    default = load_model("default")
    assert default.config.generator_cfg.head_outline is True
    out = tmp_path / "still.safetensors"
    done = subprocess.run([sys.executable, str(script), "default", str(out),
                           "head_outline=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    still = load_model(out)
    assert still.config.generator_cfg.head_outline is False
    assert still.fingerprint() != default.fingerprint()
    mine, theirs = still.state_dict(), default.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    bad = subprocess.run([sys.executable, str(script), "default", str(tmp_path / "x.safetensors"),
                          "head_outline=maybe"], capture_output=True, text=True)
    assert bad.returncode != 0 and "head_outline" in bad.stderr
    assert not (tmp_path / "x.safetensors").exists()


# -- the person as a layer over a still background ---------------------------------------------

def test_background_plate_keeps_what_it_knows_and_fills_the_rest_smoothly() -> None:
    from dtgan_plugin.models.head_layer import background_plate

    ramp = torch.linspace(-1.0, 1.0, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    known = torch.ones(1, 1, 64, 64)
    known[..., 20:44, 20:44] = 0.0
    filled = background_plate(ramp, known)
    assert torch.equal(filled[..., known[0, 0] > 0], ramp[..., known[0, 0] > 0])
    hole = filled[0, 0, 20:44, 20:44]
    # inside the hole: between the colours at its left and right edges, rising left to right
    assert float(hole.min()) >= float(ramp[0, 0, 0, 19]) - 0.05
    assert float(hole.max()) <= float(ramp[0, 0, 0, 44]) + 0.05
    assert float(hole[:, -1].mean()) > float(hole[:, 0].mean())
    flat = background_plate(torch.full((1, 3, 32, 32), 0.25), known[..., :32, :32])
    assert torch.allclose(flat, torch.full_like(flat, 0.25))


def test_membrane_fills_a_hole_in_a_linear_ramp_exactly() -> None:
    from dtgan_plugin.models.head_layer import membrane

    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    ramp = (0.01 * xs - 0.005 * ys).expand(1, 3, 64, 64).contiguous()
    known = torch.ones(1, 1, 64, 64)
    known[..., 10:50, 14:40] = 0.0
    filled = membrane(ramp, known)
    assert torch.equal(filled[..., known[0, 0] > 0], ramp[..., known[0, 0] > 0])
    # a linear function solves Laplace's equation: the membrane is the ramp itself
    assert float((filled - ramp).abs().max()) < 0.01


def _seam_jump(still: torch.Tensor, hard: torch.Tensor) -> tuple[float, float]:
    """Mean step between neighbours across the matte's edge, and between neighbours of the
    background far from it."""
    import torch.nn.functional as F

    inside = hard > 0
    dx = (still[..., :, 1:] - still[..., :, :-1]).abs()
    dy = (still[..., 1:, :] - still[..., :-1, :]).abs()
    cx = (inside[..., :, 1:] != inside[..., :, :-1]).expand_as(dx)
    cy = (inside[..., 1:, :] != inside[..., :-1, :]).expand_as(dy)
    far = ~(F.max_pool2d(inside.float(), 9, 1, 4) > 0)
    fx = (far[..., :, 1:] & far[..., :, :-1]).expand_as(dx)
    fy = (far[..., 1:, :] & far[..., :-1, :]).expand_as(dy)
    return (float(torch.cat([dx[cx], dy[cy]]).mean()), float(torch.cat([dx[fx], dy[fy]]).mean()))


def test_the_still_background_meets_a_lit_ring_beside_the_hair_without_a_step() -> None:
    from dtgan_plugin.models.head_layer import harden_matte, still_background

    gen = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(160.0), torch.arange(160.0), indexing="ij")
    r = ((xs - 80) ** 2 + (ys - 70) ** 2).sqrt()
    backdrop = 0.5 + 0.1 * torch.sin(xs / 17.0) + 0.01 * torch.randn(160, 160, generator=gen)
    # a studio light's ring on the backdrop right beside the person (as the astronaut's)
    backdrop = backdrop + 0.15 * torch.exp(-((r - 44.0) / 5.0) ** 2)
    matte = (1.0 - (r - 38.0) / 2.0).clamp(0, 1)
    image = (backdrop * (1 - matte) + 0.1 * matte).expand(1, 3, 160, 160).contiguous()
    hard = harden_matte(matte[None, None])
    still = still_background(image, hard)
    jump, grain = _seam_jump(still, hard)
    assert jump < 2.0 * grain, (jump, grain)
    # the smooth fill alone, made beyond the grown person, left the ring standing as a step
    from dtgan_plugin.models import head_layer

    plain = head_layer.seamless
    try:
        head_layer.seamless = lambda fill, image, known: fill
        old_jump, _ = _seam_jump(head_layer.still_background(image, hard), hard)
    finally:
        head_layer.seamless = plain
    assert old_jump > 3.0 * grain, (old_jump, grain)
    assert torch.equal(still[..., hard[0, 0] == 0], image[..., hard[0, 0] == 0])


def test_the_fill_carries_the_backdrops_grain() -> None:
    """A photo's grain (sensor noise, paper, a cloth's weave) goes on in the fill, as strong as
    in the backdrop around the person; the same every time; none on a clean backdrop."""
    from dtgan_plugin.models import head_layer
    from dtgan_plugin.models.head_layer import _fine, harden_matte, still_background

    gen = torch.Generator().manual_seed(1)
    ys, xs = torch.meshgrid(torch.arange(160.0), torch.arange(160.0), indexing="ij")
    r = ((xs - 80) ** 2 + (ys - 70) ** 2).sqrt()
    matte = (1.0 - (r - 38.0) / 2.0).clamp(0, 1)[None, None]
    hard = harden_matte(matte)
    smooth = (0.4 + 0.002 * xs).expand(1, 3, 160, 160)
    noisy = smooth + 0.03 * torch.randn(1, 1, 160, 160, generator=gen)
    inner = (r < 30).expand(1, 3, 160, 160)               # well inside the fill
    outer = (r > 60).expand(1, 3, 160, 160)               # the backdrop
    for backdrop, grainy in ((noisy, True), (smooth, False)):
        image = (backdrop * (1 - matte) + 0.1 * matte).contiguous()
        still = still_background(image, hard)
        fine = _fine(still).abs()
        inside, around = float(fine[inner].median()), float(fine[outer].median())
        if grainy:
            assert 0.7 < inside / around < 1.3, (inside, around)
            assert torch.equal(still, still_background(image, hard))  # the same every time
            plain = head_layer.grain
            try:  # without the grain the fill is a smooth patch on a grainy backdrop
                head_layer.grain = lambda image, known, hole: torch.zeros_like(image)
                flat = float(_fine(head_layer.still_background(image, hard)).abs()[inner]
                             .median())
            finally:
                head_layer.grain = plain
            assert flat < 0.2 * around, (flat, around)
        else:
            assert inside < 1e-3, inside


def test_growing_a_mask_is_the_square_maximum() -> None:
    """``_grow`` takes the maximum along rows then columns: a square's maximum, cheaper."""
    import torch.nn.functional as F

    from dtgan_plugin.models.head_layer import _grow

    gen = torch.Generator().manual_seed(2)
    mask = (torch.rand(2, 1, 37, 53, generator=gen) > 0.95) * torch.rand(2, 1, 37, 53,
                                                                         generator=gen)
    for reach in (0, 1, 4, 9):
        square = F.max_pool2d(mask, 2 * reach + 1, stride=1, padding=reach) if reach else mask
        assert torch.equal(_grow(mask, reach), square), reach


def test_the_matte_hardens_and_grows() -> None:
    from dtgan_plugin.models.head_layer import HIGH, LOW, harden_matte

    soft = torch.zeros(1, 1, 100, 100)
    soft[..., 40:60, 40:60] = 1.0
    soft[..., 40:60, 30:40] = (LOW + HIGH) / 2
    hard = harden_matte(soft)
    assert float(hard[0, 0, 50, 50]) == 1.0 and float(hard[0, 0, 5, 5]) == 0.0
    assert float(hard[0, 0, 50, 60]) == 1.0           # grown past the soft matte's edge
    assert 0.0 < float(hard[0, 0, 50, 33]) < 1.0      # the soft band stays soft


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A striped background and a bright disc (the person) with a soft edge, 64 px."""
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    image = (torch.sin(xs / 3.0) * 0.5).expand(3, 64, 64).clone()[None]
    r = ((xs - 32) ** 2 + (ys - 28) ** 2).sqrt()
    matte = (1.0 - (r - 12.0) / 3.0).clamp(0, 1)[None, None]
    image = image * (1 - matte) + 0.9 * matte
    return image, matte


def test_the_layer_rests_as_the_image_and_moves_without_a_ghost() -> None:
    from dtgan_plugin.models.geowarp import GeoWarpGenerator
    from dtgan_plugin.models.head_layer import composite

    image, matte = _scene()
    layer, still = GeoWarpGenerator.layers(image, matte)
    assert layer.shape == (1, 4, 64, 64)
    assert torch.allclose(composite(layer.clone(), still), image, atol=1e-6)
    moved = composite(torch.roll(layer, 10, dims=-1), still)   # the person moves right
    # where the disc's left edge was, the background fill shows: no bright ghost of the disc
    assert float(moved[0, 0, 28, 21]) < 0.6
    # far from the person the background is the image's, bit for bit
    assert torch.equal(moved[..., 60:, :], image[..., 60:, :])
    assert float(moved[0, 0, 28, 42]) > 0.85                    # the disc arrived


@torch.no_grad()
def test_a_matte_keeps_the_background_still_while_the_hair_moves() -> None:
    model = _hair_model(True)
    target, track = _turning_track()
    x = target[None] * 2 - 1
    rest = track[0]
    # the person: the face's outline hull and everything below the eyes' line
    outline = head_outline(track[:1])[0]
    from dtgan_plugin.faces.paste import convex_hull, hull_distance

    hull = convex_hull(torch.cat([rest.double(), outline]).numpy())
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float64) + 0.5
    matte = torch.as_tensor(hull_distance(hull, xs, ys) < 0, dtype=torch.float32)[None, None]
    d = model.encoder.extract(track[None])
    plain = model.generator.render(model.generator.encode_target(x, track[:1]), d)
    layered = model.generator.render(model.generator.encode_target(x, track[:1], matte), d)
    assert float((layered[0, 0] - x[0]).abs().max()) < 1e-3      # identity at rest
    # background pixels (matte 0 and not reached by the moved person) stay the target's
    from dtgan_plugin.models.head_layer import _grow

    far = (_grow(matte, 9)[0, 0] == 0)
    bent = (plain[0, -1] - x[0]).abs().amax(0)[far]
    still = (layered[0, -1] - x[0]).abs().amax(0)[far]
    # (up to the output's logit clamp, 1e-3 of a saturated colour)
    assert float(bent.max()) > 0.02 and float(still.max()) < 2e-3
    with pytest.raises(Exception, match="matte"):
        model.generator.encode_target(x, track[:1], matte[..., :32])


@torch.no_grad()
def test_renderer_takes_a_matte_and_checks_its_shape() -> None:
    from dtgan_plugin.errors import UsageError
    from dtgan_plugin.inference import Renderer

    model = _hair_model(True)
    target, track = _turning_track(size=96)
    matte = torch.zeros(96, 96)
    matte[20:80, 20:80] = 1.0
    r = Renderer(model, target, target_landmarks=track[0], target_matte=matte)
    assert "layer" in r._feats.rest and r._detail_layers is None   # the model's size
    big = Renderer(model, target, target_landmarks=track[0], out_size=192, target_matte=matte)
    assert big._detail_layers is not None and big._detail_layers[0].shape == (1, 4, 192, 192)
    with pytest.raises(UsageError, match="target_matte"):
        Renderer(model, target, target_landmarks=track[0], target_matte=torch.zeros(10, 10))
    holes = matte.clone()
    holes[:10] = float("nan")                           # NaN reads as background
    d = model.encoder.extract(track[None])[0]
    frames = Renderer(model, target, target_landmarks=track[0], target_matte=holes).render(d)
    assert bool(torch.isfinite(frames).all())
    plain = Renderer(_hair_model(False), target, target_landmarks=track[0], target_matte=matte)
    assert "layer" not in plain._feats.rest


def test_the_person_matte_of_a_photo() -> None:
    from test_faces import astronaut

    pytest.importorskip("mediapipe")
    from dtgan_plugin.faces.segment import person_matte

    photo = astronaut()
    matte = person_matte(photo)
    assert matte.shape == (512, 512) and matte.dtype == torch.float32
    assert float(matte.min()) >= 0.0 and float(matte.max()) <= 1.0
    assert float(matte[120:160, 200:240].mean()) > 0.9     # her face
    assert float(matte[:60, :60].mean()) < 0.1             # the backdrop's corner
    assert torch.equal(person_matte(photo), matte)         # cached, a copy each time


def test_zoom_compare_draws_the_region_of_each_video_and_refuses_a_bad_box(tmp_path) -> None:
    """``scripts/zoom_compare.py``, which draws the README's before/after close-ups."""
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    from dtgan_plugin.media import VideoWriter

    videos = []
    for k, level in enumerate((0.2, 0.8)):
        frames = torch.full((6, 3, 48, 64), level)
        frames[:, :, 10:20, 30:40] = torch.linspace(0, 1, 6).view(6, 1, 1, 1)  # a patch, per frame
        path = tmp_path / f"v{k}.mkv"
        with VideoWriter(path, fps=25, width=64, height=48, codec="ffv1") as writer:
            writer.write(frames)
        videos.append(str(path))
    script = Path(__file__).resolve().parent.parent / "scripts" / "zoom_compare.py"
    out = tmp_path / "zoom.png"
    done = subprocess.run([sys.executable, str(script), "--frames", "1,5", "--box", "28,8,44,24",
                           "--scale", "2", "--labels", "a,b", "-o", str(out), *videos],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    grid = np.asarray(Image.open(out).convert("RGB")).astype(np.float64) / 255
    cell, head = 32, 14
    assert grid.shape == (head + 2 * cell, 2 * cell, 3)
    # row 1 (frame 5): the patch at full brightness; the second video's background is lighter
    patch = grid[head + cell + 2 * 4 + 8, 2 * 4 + 8]            # box pixel (x 30+, y 10+)
    assert patch.min() > 0.95
    assert grid[head + cell + 2, cell + 2].mean() > grid[head + cell + 2, 2].mean() + 0.4
    assert grid[head + 2 * 4 + 8, 2 * 4 + 8].max() < 0.35       # frame 1: the patch dark
    bad = subprocess.run([sys.executable, str(script), "--frames", "1", "--box", "50,8,70,24",
                          "-o", str(tmp_path / "x.png"), *videos], capture_output=True, text=True)
    assert bad.returncode != 0 and "reaches past" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
