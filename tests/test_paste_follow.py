"""Paste-back whose mask follows the animated face: ``PasteBack.paste(crops, points)``, the
landmarks a landmark model's ``dtgan.transfer`` attaches to its chunks, and
``dtgan.pasteback=follow``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dtgan_plugin.faces.crop import clamp_box, face_box
from dtgan_plugin.faces.paste import PasteBack, convex_hull, hull_distance, hull_distance_torch

from test_faces import ellipse_face

H = W = 240
CROP = 128


def _to_crop(pts: np.ndarray, box: np.ndarray) -> torch.Tensor:
    """Photo pixels → crop pixels of a CROP-side crop of ``box``."""
    cx, cy, side = box
    return torch.as_tensor((pts - [cx, cy]) / side * CROP + CROP / 2, dtype=torch.float32)


def _setup(colour_match: bool = False) -> tuple[torch.Tensor, np.ndarray, np.ndarray, PasteBack]:
    photo = torch.full((3, H, W), 0.3)
    pts = ellipse_face(120, 110, 40, 50)
    box = clamp_box(face_box(pts), H, W)
    return photo, pts, box, PasteBack(photo, pts, box, colour_match=colour_match)


def test_hull_distance_in_torch_matches_numpy() -> None:
    hull = convex_hull(ellipse_face())
    ys, xs = np.mgrid[0:50, 0:60].astype(np.float64) * 4 + 0.5
    ref = hull_distance(hull, xs, ys)
    got = hull_distance_torch(torch.as_tensor(hull), torch.as_tensor(xs), torch.as_tensor(ys))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9)


def _random_scene(seed: int) -> tuple[np.ndarray, np.ndarray, PasteBack, torch.Tensor]:
    """A noise photo with a face's points, its paster, and three noise crops."""
    gen = torch.Generator().manual_seed(seed)
    photo = torch.rand(3, H, W, generator=gen)
    pts = ellipse_face(120, 110, 40, 50)
    box = clamp_box(face_box(pts), H, W)
    return pts, box, PasteBack(photo, pts, box), torch.rand(3, 3, CROP, CROP, generator=gen)


def test_resting_points_paste_as_the_static_mask() -> None:
    pts, box, paster, crops = _random_scene(0)
    still = _to_crop(pts, box)[None].expand(3, -1, -1)
    assert float((paster.paste(crops, still) - paster.paste(crops)).abs().max()) < 1e-4


def test_the_mask_follows_a_dropped_chin_and_nothing_else_changes() -> None:
    photo, pts, box, paster = _setup()
    moved = pts.copy()
    moved[4:13, 1] += 30.0                      # the jaw drops 30 px below its rest
    crops = torch.full((1, 3, CROP, CROP), 0.9)
    points = _to_crop(moved, box)[None]
    static, follow = paster.paste(crops)[0], paster.paste(crops, points)[0]
    chin = moved[8]
    x, y = int(chin[0]), int(chin[1] - 3)       # just inside the moved chin
    assert float(static[0, y, x]) == pytest.approx(0.3)   # the static mask ends at the rest chin
    assert float(follow[0, y, x]) == pytest.approx(0.9, abs=1e-3)
    # nowhere does the following mask paste less than the resting one
    assert bool((follow >= static - 1e-6).all())
    # outside both masks every pixel is the photo's, bit for bit
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    far = hull_distance(convex_hull(np.concatenate([pts, moved])), xs, ys) > 0.2 * box[2]
    assert far.mean() > 0.3
    assert torch.equal(follow[:, torch.as_tensor(far)], photo[:, torch.as_tensor(far)])


def test_frames_get_their_own_masks() -> None:
    _, pts, box, paster = _setup()
    left, right = pts - [25.0, 0.0], pts + [25.0, 0.0]
    crops = torch.full((2, 3, CROP, CROP), 0.9)
    out = paster.paste(crops, torch.stack([_to_crop(left, box), _to_crop(right, box)]))
    x_left, x_right = int(pts[:, 0].min() - 20), int(pts[:, 0].max() + 20)
    y = int(pts[:, 1].mean())
    assert float(out[0, 0, y, x_left]) > 0.85 and float(out[0, 0, y, x_right]) < 0.35
    assert float(out[1, 0, y, x_right]) > 0.85 and float(out[1, 0, y, x_left]) < 0.35


def test_a_frame_pastes_the_same_whatever_frames_share_its_call() -> None:
    # batch (cached dynamics) and transfer chunk the same frames differently: each frame's
    # pixels must not depend on its neighbours in a call
    pts, box, paster, crops = _random_scene(2)
    points = torch.stack([_to_crop(pts + shift, box) for shift in
                          ([0.0, 0.0], [-23.0, 7.0], [31.0, 19.0])])
    together = paster.paste(crops, points)
    for i in range(3):
        assert torch.equal(together[i], paster.paste(crops[i:i + 1], points[i:i + 1])[0])


def test_colour_match_reads_only_the_ring_the_moved_face_leaves_free() -> None:
    photo, pts, box, paster = _setup(colour_match=True)
    moved = pts + [0.0, 30.0]                    # the face moves down over the ring below it
    crops = torch.full((1, 3, CROP, CROP), 0.3)  # the crop's background is the photo's
    cp = _to_crop(moved, box)
    ys, xs = torch.meshgrid(torch.arange(CROP) + 0.5, torch.arange(CROP) + 0.5, indexing="ij")
    hull = torch.as_tensor(convex_hull(cp.numpy().astype(np.float64)), dtype=torch.float32)
    face = hull_distance_torch(hull, xs, ys) < 0
    crops[0, :, face] = 1.0                      # a bright face on it
    out = paster.paste(crops, cp[None])[0]
    # the background pasted near the face keeps the photo's colour: no shift from the face
    # pixels that now cover part of the ring
    x, y = int(moved[:, 0].min() - 6), int(moved[:, 1].mean())
    assert float(out[0, y, x]) == pytest.approx(0.3, abs=0.01)
    # without following, the static ring is read whole and the bright face shifts everything
    static = paster.paste(crops)[0]
    assert float(static[0, int(pts[:, 1].mean()), int(pts[:, 0].mean())]) < 0.95


def test_colour_match_compares_the_same_ring_pixels_on_a_two_tone_photo() -> None:
    from dtgan_plugin.faces.crop import crop_frames

    photo = torch.full((3, H, W), 0.2)
    photo[:, 150:] = 0.8                         # dark above (hair), bright below (collar)
    pts = ellipse_face(120, 110, 40, 50)
    box = clamp_box(face_box(pts), H, W)
    paster = PasteBack(photo, pts, box)
    crops = crop_frames(photo[None], box[None], CROP)  # the photo's own crop: no shift is due
    moved = pts + [0.0, 30.0]                    # the face moves down over the ring's bright part
    out = paster.paste(crops, _to_crop(moved, box)[None])[0]
    err = (out - photo).abs()
    err[:, 140:160] = 0                          # the resampled step between the two tones
    assert float(err.amax()) < 0.02, float(err.amax())


def test_frames_without_finite_points_and_empty_chunks() -> None:
    photo, pts, box, paster = _setup()
    crops = torch.full((3, 3, CROP, CROP), 0.9)
    points = _to_crop(pts + [0.0, 20.0], box)[None].repeat(3, 1, 1)
    points[1, 5] = float("nan")                  # a landmark lost in frame 1
    out = paster.paste(crops, points)
    static = paster.paste(crops)
    assert torch.allclose(out[1], static[1], atol=1e-5)   # it keeps the resting mask
    assert not torch.allclose(out[0], static[0], atol=1e-3)
    lost = torch.full((3, 68, 2), float("nan"))
    assert torch.allclose(paster.paste(crops, lost), static)
    empty = paster.paste(crops[:0], points[:0])
    assert empty.shape == (0, 3, H, W)


def test_bad_points_are_refused() -> None:
    _, _, _, paster = _setup()
    with pytest.raises(ValueError, match="points must be"):
        paster.paste(torch.zeros(2, 3, CROP, CROP), torch.zeros(1, 68, 2))


@torch.no_grad()
def test_renderer_reports_the_moved_points_at_the_output_size() -> None:
    from conftest import SMALL_MODEL

    from dtgan_plugin.inference import Renderer
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    from test_landmark_inference import _clip, _model

    model = _model()
    frames, pts = _clip(frames=5)
    d = model.encoder.extract(pts[None])[0]
    feats = model.generator.encode_target(frames[:1] * 2 - 1, pts[:1])
    _, aux = model.generator.render(feats, d[None], return_aux=True)
    small = Renderer(model, frames[0], target_landmarks=pts[0])
    out, points = small.render_with_points(d)
    assert out.shape == (5, 3, 32, 32) and torch.allclose(points, aux["points"][0])
    big_frames, big_pts = _clip(frames=1, size=96)
    big = Renderer(model, big_frames[0], target_landmarks=big_pts[0], out_size=96)
    out, points = big.render_with_points(d)
    assert out.shape == (5, 3, 96, 96) and points.shape == (5, 68, 2)
    # the rest frame's points are the target's own, in the output's pixels
    assert torch.allclose(points[0], big_pts[0], atol=0.05)
    empty = big.render_with_points(d[:0])
    assert empty[0].shape == (0, 3, 96, 96) and empty[1].shape == (0, 68, 2)
    pixels = build_model(ModelConfig.from_dict(SMALL_MODEL)).eval()
    res = int(pixels.config.resolution)
    frames_only = Renderer(pixels, torch.rand(3, res, res)).render_with_points(
        torch.zeros(2, pixels.config.dyn_dim))
    assert frames_only[1] is None and frames_only[0].shape == (2, 3, res, res)


def test_the_pasteback_stage_follows_the_chunks_landmarks_unless_told_not_to() -> None:
    from test_faces import astronaut

    pytest.importorskip("mediapipe")
    from dtgan_plugin.faces.autocrop import photo_box, photo_landmarks
    from dtgan_plugin.faces.stages import PasteBackStage
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.stream import ImagePacket, VideoChunk

    photo = astronaut()
    pts = photo_landmarks(photo)
    box = photo_box(pts, 512, 512)
    moved = pts.copy()
    moved[4:13, 1] += 0.1 * box[2]
    crops = torch.rand(2, 3, CROP, CROP, generator=torch.Generator().manual_seed(1))
    points = _to_crop(moved, box)[None].expand(2, -1, -1).contiguous()
    paster = PasteBack(photo, pts, box)
    points = points.clone()
    points[1] += 3.0                             # the frames differ: slicing must keep them apart
    outs = {}
    for follow in (True, False):
        stage = PasteBackStage(follow=follow)
        # a chunk budget of one full-size frame: the stage splits the chunk, and each part
        # must get its own frames' landmarks
        stage.setup(RunContext(chunk_size=1))
        chunks = list(stage.run([iter([ImagePacket(photo)]),
                                 iter([VideoChunk(crops, 0, 25.0, landmarks=points)])]))
        assert len(chunks) == 2
        outs[follow] = torch.cat([c.frames for c in chunks])
    assert torch.equal(outs[False], paster.paste(crops))
    assert torch.allclose(outs[True][:1], paster.paste(crops[:1], points[:1]))
    assert torch.allclose(outs[True][1:], paster.paste(crops[1:], points[1:]))
    assert not torch.allclose(outs[True], outs[False])
