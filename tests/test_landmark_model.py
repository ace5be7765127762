"""The landmark-based model pieces (DESIGN.md §12): face geometry, the landmark dynamics
encoder, the ``geowarp`` generator, their config keys, landmark clips and their augmentation.

Everything runs at 64 px (32 px for data) with narrow widths, so the file takes seconds.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from dtgan_plugin.errors import ConfigError
from dtgan_plugin.models import face_geometry as fg
from dtgan_plugin.models.config import EncoderConfig, GeneratorConfig, ModelConfig
from dtgan_plugin.models.encoder import DynamicsEncoder
from dtgan_plugin.models.geowarp import GeoWarpGenerator
from dtgan_plugin.models.landmark_encoder import HEAT_EXTENT, HEAT_SIGMA, HEAT_SIZE
from dtgan_plugin.models.layers import InputShapeError
from dtgan_plugin.models.model import build_model
from dtgan_plugin.synthfaces.dataset import SynthFaceClips
from dtgan_plugin.synthfaces.dynamics import neutral_params, sample_dynamics
from dtgan_plugin.synthfaces.identity import identities_for
from dtgan_plugin.synthfaces.landmarks import landmarks68
from dtgan_plugin.synthfaces.renderer import render
from dtgan_plugin.training.config import AugmentConfig
from dtgan_plugin.training.landmark_augment import LandmarkClipAugment, jitter_landmarks

RES = 64
FLIP = torch.tensor(fg.FLIP_68)


# -- helpers ----------------------------------------------------------------------------------

def _clip_points(batch: int, frames: int, size: int = RES, seed: int = 1) -> torch.Tensor:
    """Exact 68 points (B, T, 68, 2) of procedural faces making random expressions."""
    params, _ = sample_dynamics(batch, frames, torch.Generator().manual_seed(seed))
    return landmarks68(identities_for(0, list(range(batch))), params, size)


def _neutral(batch: int, size: int = RES) -> tuple[torch.Tensor, torch.Tensor]:
    """Neutral faces: images (B, 3, H, W) in [0, 1] and their points (B, 68, 2)."""
    idn = identities_for(0, list(range(batch)))
    p = neutral_params(batch, 1)
    return render(idn, p, size)[:, 0], landmarks68(idn, p, size)[:, 0]


def _similarity(points: torch.Tensor, degrees: float, scale: float,
                shift: tuple[float, float]) -> torch.Tensor:
    """Rotate by ``degrees`` and scale about the origin, then shift (pixels)."""
    a = math.radians(degrees)
    m = scale * torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ m.T + torch.tensor(shift)


def _model_config(encoding: str = "coords", **gen: object) -> ModelConfig:
    """A narrow 64 px landmark + geowarp config."""
    enc = EncoderConfig(widths=(8, 8, 8, 8), feature_dim=32, hidden=32, n_classes=0,
                        n_params=0, landmark_encoding=encoding)
    g = GeneratorConfig(base_width=8, max_width=16, motion_hidden=32,
                        **gen)  # type: ignore[arg-type]
    return ModelConfig(resolution=RES, generator="geowarp", dynamics_input="landmarks",
                       encoder=enc, generator_cfg=g)


def _encoder(encoding: str) -> DynamicsEncoder:
    torch.manual_seed(0)
    return DynamicsEncoder(_model_config(encoding)).eval()


def _geowarp() -> GeoWarpGenerator:
    torch.manual_seed(0)
    return GeoWarpGenerator(_model_config(identity_at_rest=True)).eval()


def _canonical(points: torch.Tensor) -> torch.Tensor:
    """Each face's points (B, 68, 2) in its own face frame."""
    centre, lin = fg.face_frame(points)
    return fg.to_canonical(points, centre, lin)


# -- face geometry ----------------------------------------------------------------------------

@pytest.mark.parametrize("degrees,scale,shift", [(0.0, 1.0, (0.0, 0.0)), (37.0, 1.8, (20.0, -9.0)),
                                                 (-120.0, 0.45, (-3.5, 41.0)),
                                                 (180.0, 3.0, (100.0, 100.0))])
def test_canonical_points_ignore_any_similarity(degrees: float, scale: float,
                                                shift: tuple[float, float]) -> None:
    pts = _clip_points(3, 2).flatten(0, 1)
    canon = _canonical(pts)
    moved = _canonical(_similarity(pts, degrees, scale, shift))
    assert (moved - canon).abs().max() < 1e-4
    # the face frame's definition: eye centres at (∓0.5, -0.9) (shifted so the nose is near 0)
    assert torch.allclose(canon[:, 36:42].mean(1), torch.tensor([-0.5, -0.9]).expand(6, 2),
                          atol=1e-5)
    assert torch.allclose(canon[:, 42:48].mean(1), torch.tensor([0.5, -0.9]).expand(6, 2),
                          atol=1e-5)
    # nose tip below the eyes, chin below the nose, both near the middle: upright, not mirrored
    assert float(canon[:, 30, 1].min()) > -0.7 and float(canon[:, 30, 0].abs().max()) < 0.3
    assert bool((canon[:, 8, 1] > canon[:, 30, 1] + 0.5).all())


def test_to_canonical_reads_a_clip_in_one_frame() -> None:
    clip = _clip_points(2, 4)
    centre, lin = fg.face_frame(clip[:, 0])
    whole = fg.to_canonical(clip, centre, lin)  # (B, T, 68, 2) with one frame per clip
    for t in range(clip.shape[1]):
        assert torch.allclose(whole[:, t], fg.to_canonical(clip[:, t], centre, lin), atol=1e-6)
    assert not torch.allclose(whole[:, 1], whole[:, 0], atol=1e-3)  # the clip moves


def test_canonical_offsets_to_pixels_inverts_the_frame_map() -> None:
    clip = _similarity(_clip_points(3, 3), 25.0, 1.3, (4.0, -2.0))
    centre, lin = fg.face_frame(clip[:, 0])
    px = torch.randn(3, 3, 68, 2) * 4.0
    # the frame's linear part, as to_canonical applies it (minus its constant shift)
    canon = fg.to_canonical(centre[:, None, None] + px, centre, lin) + torch.tensor([0.0, 0.9])
    assert torch.allclose(canon, torch.einsum("bij,btkj->btki", lin, px), atol=1e-5)
    back = fg.canonical_offsets_to_pixels(canon, lin)
    assert (back - px).abs().max() < 1e-4
    # the ONNX export path (closed-form inverse) gives the same pixels
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        assert (fg.canonical_offsets_to_pixels(canon, lin) - px).abs().max() < 1e-4


def test_inv2_equals_linalg_inv() -> None:
    g = torch.Generator().manual_seed(3)
    m = torch.randn(50, 2, 2, generator=g, dtype=torch.float64)
    m = m[torch.linalg.det(m).abs() > 0.05]
    assert torch.allclose(fg._inv2(m), torch.linalg.inv(m), rtol=1e-9, atol=1e-9)
    extra = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)
    extra = extra + 3 * torch.eye(2, dtype=torch.float64)
    assert torch.allclose(fg._inv2(extra), torch.linalg.inv(extra), rtol=1e-9, atol=1e-9)


def test_flip_68_is_an_involutive_permutation() -> None:
    assert sorted(fg.FLIP_68) == list(range(68))
    assert [fg.FLIP_68[i] for i in fg.FLIP_68] == list(range(68))
    # the axis points map to themselves, every paired point to the other side
    fixed = {i for i in range(68) if fg.FLIP_68[i] == i}
    assert fixed == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def test_flip_68_maps_each_point_to_its_mirror_partner() -> None:
    _, pts = _neutral(4)
    # a neutral procedural face is symmetric about its nose bridge (x = 31.5 at 64 px)
    axis = pts[:, 27:31, 0].mean(1, keepdim=True)
    mirrored = pts.clone()
    mirrored[..., 0] = 2 * axis - pts[..., 0]
    err = (mirrored[:, FLIP] - pts).norm(dim=-1)
    assert err.max() < 1e-3
    # and the permutation matters: without it the mirror lands far off (eyes are ~16 px apart)
    assert (mirrored - pts).norm(dim=-1).max() > 10


def test_part_heatmaps_peak_on_their_parts() -> None:
    canon = _canonical(_clip_points(2, 2).flatten(0, 1))
    maps = fg.part_heatmaps(canon, HEAT_SIZE, HEAT_EXTENT, HEAT_SIGMA)
    assert maps.shape == (4, len(fg.PARTS), HEAT_SIZE, HEAT_SIZE)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    ax = torch.linspace(-HEAT_EXTENT, HEAT_EXTENT, HEAT_SIZE)
    step = float(ax[1] - ax[0])
    for n in range(maps.shape[0]):
        for p, (a, b) in enumerate(fg.PARTS):
            flat = int(maps[n, p].argmax())
            node = torch.stack([ax[flat % HEAT_SIZE], ax[flat // HEAT_SIZE]])
            # a max of Gaussians peaks at the grid node nearest one of the part's points
            near = (canon[n, a:b] - node).norm(dim=-1).min()
            assert near <= step * math.sqrt(0.5) + 1e-5, (n, p)
            assert maps[n, p].max() > math.exp(-0.25 * step * step / HEAT_SIGMA ** 2) - 1e-6
    # far from its part a map is dark: the outer-lip map at the eye centres
    eyes = canon[:, 36:48].mean(1)
    j = ((eyes - ax[0]) / step).round().long()
    assert maps[torch.arange(4), 4, j[:, 1], j[:, 0]].max() < 1e-3


# -- the landmark dynamics encoder ------------------------------------------------------------

ENCODINGS = ("coords", "heatmap")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_landmark_encoder_shape_and_static_prefix(encoding: str) -> None:
    enc = _encoder(encoding)
    clip = _clip_points(2, 7)
    clip[:, 1:3] = clip[:, :1]  # the first three frames are the reference
    with torch.no_grad():
        d = enc.extract(clip)
        assert d.shape == (2, 7, enc.dyn_dim)
        assert bool((d[:, :3] == 0).all())  # exactly, not to rounding
        assert float(d[:, 3:].norm(dim=-1).min()) > 1e-5  # moving frames give dynamics
        still = enc.extract(clip[:, :1].expand(2, 5, 68, 2).clone())
        assert bool((still == 0).all())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_landmark_encoder_streams_like_whole_clip(encoding: str) -> None:
    enc = _encoder(encoding)
    clip = _clip_points(3, 9)
    with torch.no_grad():
        whole = enc.extract(clip)
        state = enc.init_state(clip[:, 0])
        parts = []
        for chunk in clip.split([1, 3, 2, 3], dim=1):
            d, state = enc.step(chunk, state)
            parts.append(d)
    assert state.frames_seen == 9
    assert (torch.cat(parts, 1) - whole).abs().max() < 1e-5
    assert float(whole.abs().max()) > 1e-4  # something non-trivial was compared


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_landmark_dynamics_ignore_the_crop_but_see_head_motion(encoding: str) -> None:
    enc = _encoder(encoding)
    clip = _clip_points(3, 6)
    with torch.no_grad():
        d = enc.extract(clip)
        scale = float(d.abs().max())
        for degrees, s, shift in ((20.0, 1.7, (13.0, -7.0)), (-65.0, 0.6, (-40.0, 25.0))):
            other = enc.extract(_similarity(clip, degrees, s, shift))
            # same motion in another crop: the same dynamics, to float rounding
            assert (other - d).abs().max() <= max(1e-3 * scale, 1e-6)
        # the head moving 3 px after the reference is motion, and must show
        shifted = clip.clone()
        shifted[:, 1:, :, 0] += 3.0
        assert (enc.extract(shifted) - d).abs().max() > 0.1 * scale


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_landmark_encoder_refuses_bad_shapes(encoding: str) -> None:
    enc = _encoder(encoding)
    clip = _clip_points(2, 3)
    bad = [lambda: enc.extract(clip[:, :, :67]),            # 67 points
           lambda: enc.extract(clip[:, 0]),                  # no time axis
           lambda: enc.extract(torch.zeros(2, 3, 3, RES, RES)),  # pixels to a landmark model
           lambda: enc.init_state(clip),                     # reference with a time axis
           lambda: enc.step(clip[:, :, :, :1], enc.init_state(clip[:, 0])),
           lambda: enc.step(clip[:1], enc.init_state(clip[:, 0])),  # batch mismatch
           lambda: enc.extract(clip, reference_index=5)]
    for call in bad:
        with pytest.raises(InputShapeError) as info:
            call()
        assert "\n" not in str(info.value)
    shaped = r"landmarks shaped \(B, T, 68, 2\), got \(2, 3, 67, 2\)"
    with pytest.raises(InputShapeError, match=shaped):
        enc.extract(clip[:, :, :67])


# -- the geowarp generator --------------------------------------------------------------------

def _target() -> tuple[torch.Tensor, torch.Tensor]:
    img, pts = _neutral(2)
    return img * 2 - 1, pts


def test_geowarp_renders_the_target_at_rest() -> None:
    gen = _geowarp()
    target, pts = _target()
    with torch.no_grad():
        feats = gen.encode_target(target, pts)
        out = gen.render(feats, torch.zeros(2, 3, gen.dyn_dim))
        assert out.shape == (2, 3, 3, RES, RES)
        assert (out - target[:, None]).abs().max() <= 2e-3
        rest = gen.points_for(pts, torch.zeros(2, 4, gen.dyn_dim))
        assert rest.shape == (2, 4, 68, 2)
        assert (rest - pts[:, None]).abs().max() <= 1e-4
        # and dynamics do move the face (so the checks above are not trivially true)
        d = torch.randn(2, 3, gen.dyn_dim, generator=torch.Generator().manual_seed(0))
        moved = gen.render(feats, d * 30.0)
        assert (moved - target[:, None]).abs().max() > 1e-2


def test_geowarp_aux_points_equal_points_for() -> None:
    gen = _geowarp()
    target, pts = _target()
    d = 20.0 * torch.randn(2, 4, gen.dyn_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, aux = gen.render(gen.encode_target(target, pts), d, return_aux=True)
        expect = gen.points_for(pts, d)
    assert set(aux) >= {"points", "flow", "mask", "residual", "warped"}
    assert aux["points"].shape == (2, 4, 68, 2)
    assert (aux["points"] - expect).abs().max() < 1e-4
    assert (expect - pts[:, None]).abs().max() > 1e-3  # the points did move


def test_geowarp_needs_target_landmarks() -> None:
    torch.manual_seed(0)
    model = build_model(_model_config(identity_at_rest=True))
    assert model.uses_landmarks and model.needs_target_landmarks
    target, pts = _target()
    src = _clip_points(2, 3)
    with torch.no_grad():
        with pytest.raises(InputShapeError, match="needs the target's landmarks"):
            model(target, src)
        with pytest.raises(InputShapeError, match="needs the target's landmarks"):
            model.generator.encode_target(target)
        with pytest.raises(InputShapeError, match="target landmarks must be landmarks"):
            model(target, src, target_landmarks=pts[:, :60])
        out = model(target, src, target_landmarks=pts)
    assert out.shape == (2, 3, 3, RES, RES)
    # frame 0 is the reference: zero dynamics, the target itself
    assert (out[:, 0] - target).abs().max() <= 2e-3


def test_geowarp_dense_flow_follows_landmarks_and_keeps_far_pixels_still() -> None:
    gen = _geowarp()
    _, pts = _neutral(4)
    flow = gen.dense_flow(pts, pts)
    assert flow.shape == (4, 2, RES, RES)
    assert flow.abs().max() * (RES / 2) < 1e-3  # nothing moves, nothing flows
    moved = pts.clone()
    # the mouth opens 5 px down with the lower jaw (the mouth alone would cross the chin)
    moved[:, 48:68, 1] += 5.0
    moved[:, 4:13, 1] += 5.0
    flow = gen.dense_flow(pts, moved) * (RES / 2)  # grid units → pixels
    for b in range(4):
        for x, y in moved[b, 48:68].round().long().tolist():
            fx, fy = flow[b, :, y, x].tolist()
            # output pixels at the moved mouth sample the target 5 px above them
            assert -5.5 < fy < -4.5 and abs(fx) < 0.05, (b, x, y, fx, fy)
        mag = flow[b].norm(dim=0)
        eyes = pts[b, 36:48].round().long()
        assert mag[eyes[:, 1], eyes[:, 0]].max() < 0.1  # the eyes stay where they were
        assert mag[:8].max() < 0.1  # so does the forehead band, top corners included
        assert mag[-1, 0] < 0.5 and mag[-1, -1] < 0.5  # bottom corners: the chin is near


def test_gradients_reach_motion_head_refine_net_and_encoder() -> None:
    torch.manual_seed(0)
    model = build_model(_model_config(identity_at_rest=True))
    target, pts = _target()
    src = _clip_points(2, 4)
    d = model.dynamics(src) * 50.0  # untrained dynamics are tiny; scale them into play
    frames = model.generator.render(model.generator.encode_target(target, pts), d)
    assert isinstance(frames, torch.Tensor)
    loss = (frames - target[:, None].roll(3, dims=-1)).abs().mean()
    loss.backward()
    gen = model.generator
    for name, p in [("motion.first", gen.motion.net[0].weight),
                    ("motion.last", gen.motion.net[-1].weight),
                    ("refine.first", gen.refine.first.weight),
                    ("refine.film", next(gen.refine.film.parameters())),
                    ("refine.residual", gen.refine.residual.conv.weight),
                    ("encoder.lstm", model.encoder.lstm.weight_ih_l0),
                    ("encoder.phi", next(model.encoder.cnn.parameters()))]:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and float(p.grad.abs().max()) > 0, name


def test_landmark_loss_reaches_motion_head() -> None:
    gen = _geowarp()
    _, pts = _target()
    d = torch.randn(2, 3, gen.dyn_dim, requires_grad=True)
    (gen.points_for(pts, d) - pts[:, None] - 1.0).abs().mean().backward()
    assert float(gen.motion.net[0].weight.grad.abs().max()) > 0
    assert d.grad is not None and float(d.grad.abs().max()) > 0


# -- config -----------------------------------------------------------------------------------

def test_landmark_config_round_trips() -> None:
    cfg = ModelConfig(generator="geowarp", dynamics_input="landmarks",
                      encoder=EncoderConfig(landmark_encoding="heatmap"),
                      generator_cfg=GeneratorConfig(motion_hidden=64))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    data = json.loads(cfg.to_json())
    assert data["dynamics_input"] == "landmarks"
    assert data["encoder"]["landmark_encoding"] == "heatmap"
    assert data["generator_cfg"]["motion_hidden"] == 64
    assert cfg.uses_landmarks and cfg.needs_landmarks


def test_default_config_json_has_no_new_keys() -> None:
    text = ModelConfig().to_json()
    for key in ("dynamics_input", "landmark_encoding", "motion_hidden"):
        assert f'"{key}"' not in text
    # the pixel model's JSON, as written before landmark models existed (fingerprints hinge on it)
    data = json.loads(text)
    assert set(data) == {"resolution", "generator", "asd_mode", "encoder", "generator_cfg",
                         "discriminator"}
    assert set(data["encoder"]) == {"widths", "kernel_size", "norm", "feature_dim", "hidden",
                                    "n_classes", "n_params"}
    # geowarp over pixel dynamics keeps every key that differs from the old behaviour
    geo = json.loads(ModelConfig(generator="geowarp").to_json())
    assert geo["generator"] == "geowarp" and "dynamics_input" not in geo


@pytest.mark.parametrize("data,key", [
    ({"dynamics_input": "depth"}, "dynamics_input"),
    ({"encoder": {"landmark_encoding": "x"}}, "encoder.landmark_encoding"),
    ({"generator_cfg": {"motion_hidden": 0}}, "generator_cfg.motion_hidden"),
])
def test_bad_landmark_config_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict(data)
    assert f"'{key}'" in str(info.value)
    assert "\n" not in str(info.value)


# -- landmark clips ---------------------------------------------------------------------------

def test_synth_clips_carry_exact_landmarks() -> None:
    ds = SynthFaceClips(10, clips_per_identity=2, T=3, size=32, seed=0, landmarks=True)
    batch = ds.get_batch(list(range(len(ds))))
    cross = batch["is_cross"]
    assert bool(cross.any()) and bool((~cross).any())
    n = len(ds)
    assert batch["source_lmk"].shape == (n, 3, 68, 2)
    assert batch["target_lmk"].shape == (n, 68, 2)
    assert batch["truth_lmk"].shape == (n, 3, 68, 2)
    src = batch["source_lmk"]
    own = ~cross
    # self pairs: the target is frame 0 of the clip, the truth the clip itself
    assert torch.equal(batch["target_lmk"][own], src[own, 0])
    assert torch.equal(batch["truth_lmk"][own], src[own])
    # cross pairs: the target identity, neutral, and moving with the source's params
    sel = cross.nonzero().reshape(-1)
    pos = torch.tensor([ds.ids.index(int(i)) for i in batch["target_id"][sel]])
    idn_t = ds.identities[pos]
    # + 0.5: the dataset speaks a landmarker's convention (pixel centres at i + 0.5)
    expect_truth = landmarks68(idn_t, batch["params"][sel], 32) + 0.5
    expect_target = landmarks68(idn_t, neutral_params(len(sel), 1), 32)[:, 0] + 0.5
    assert torch.allclose(batch["truth_lmk"][sel], expect_truth, atol=1e-5)
    assert torch.allclose(batch["target_lmk"][sel], expect_target, atol=1e-5)
    assert (batch["truth_lmk"][sel] - src[sel]).abs().max() > 0.5  # another face's shape
    # and the source points are the source identity's
    pos_s = torch.tensor([ds.ids.index(int(i)) for i in batch["source_id"]])
    assert torch.allclose(src, landmarks68(ds.identities[pos_s], batch["params"], 32) + 0.5,
                          atol=1e-5)


def test_sample_batch_without_images_gives_the_same_landmarks() -> None:
    ds = SynthFaceClips(10, T=3, size=32, seed=0, landmarks=True)
    full = ds.sample_batch(4, torch.Generator().manual_seed(5), cross_fraction=0.5)
    geo = ds.sample_batch(4, torch.Generator().manual_seed(5), cross_fraction=0.5, images=False)
    assert "source" in full and "truth" in full
    assert not {"source", "truth", "target"} & set(geo)
    for key in ("source_lmk", "target_lmk", "truth_lmk", "params", "label", "is_cross"):
        assert torch.equal(geo[key], full[key]), key
    # without landmarks=True, images=False cannot drop the pixels (there would be nothing)
    plain = SynthFaceClips(10, T=3, size=32, seed=0)
    assert "source" in plain.sample_batch(2, torch.Generator().manual_seed(5), images=False)


# -- landmark augmentation --------------------------------------------------------------------

def _dots(points: torch.Tensor, size: int) -> torch.Tensor:
    """Black images with a 3×3 white square at each (rounded) point:
    (..., 68, 2) → (..., 3, H, W)."""
    lead = points.shape[:-2]
    flat = points.reshape(-1, 68, 2).round().long()
    img = torch.zeros(flat.shape[0], 3, size, size)
    for n in range(flat.shape[0]):
        for x, y in flat[n].tolist():
            img[n, :, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = 1.0
    return img.reshape(*lead, 3, size, size)


def _sample(images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear values of images (N, 3, H, W) at pixel-index points (N, K, 2) → (N, K)."""
    size = images.shape[-1]
    grid = (points / (size - 1) * 2 - 1).unsqueeze(1)
    return F.grid_sample(images, grid, mode="bilinear", align_corners=True)[:, 0, 0]


def _lmk_batch(points: torch.Tensor) -> dict[str, torch.Tensor]:
    """target_lmk / source_lmk / truth_lmk from one clip's points (B, T, 68, 2)."""
    return {"target_lmk": points[:, 0].clone(), "source_lmk": points.clone(),
            "truth_lmk": points.flip(1).clone()}


def _augment(**cfg: float) -> LandmarkClipAugment:
    base = dict(hflip=1.0, degrees=12.0, scale=0.1, translate=0.06, color_jitter=0.0,
                reverse=0.0, speed=0.0)
    base.update(cfg)
    return LandmarkClipAugment(AugmentConfig(**base))  # type: ignore[arg-type]


def test_augmented_landmarks_follow_the_pixels() -> None:
    size = 64
    pts = _clip_points(2, 3, size)
    lmk = _lmk_batch(pts)
    target, source, truth = _dots(lmk["target_lmk"], size), _dots(pts, size), \
        _dots(lmk["truth_lmk"], size)
    torch.manual_seed(0)
    t_img, s_img, tr_img, out = _augment()(target, source, truth, lmk)
    assert t_img.shape == target.shape and s_img.shape == source.shape
    pairs = [(t_img, out["target_lmk"]), (s_img.flatten(0, 1), out["source_lmk"].flatten(0, 1)),
             (tr_img.flatten(0, 1), out["truth_lmk"].flatten(0, 1))]
    for img, p in pairs:
        assert p.shape[-2:] == (68, 2)
        assert float(img.mean()) < 0.2  # mostly black: being bright at the points means a hit
        assert float(_sample(img, p).mean()) > 0.5
    # the dots did move: at the old positions the augmented frames are much darker
    old = _sample(s_img.flatten(0, 1), pts.flatten(0, 1))
    assert float(old.mean()) < float(_sample(s_img.flatten(0, 1),
                                             out["source_lmk"].flatten(0, 1)).mean()) - 0.2


def test_flip_swaps_landmark_indices() -> None:
    pts = _clip_points(2, 3)
    assert bool((pts[..., 36, 0] < pts[..., 45, 0]).all())
    torch.manual_seed(0)
    out = _augment(degrees=5.0).points_only(_lmk_batch(pts), RES)
    for key in ("target_lmk", "source_lmk", "truth_lmk"):
        p = out[key]
        # after the flip the subject's right eye is still point 36, on the image's left
        assert bool((p[..., 36, 0] < p[..., 45, 0]).all()), key
        assert bool((p[..., 0, 0] < p[..., 16, 0]).all()), key
        assert bool((p[..., 48, 0] < p[..., 54, 0]).all()), key


def test_points_only_matches_the_image_path() -> None:
    pts = _clip_points(2, 4)
    lmk = _lmk_batch(pts)
    aug = _augment(reverse=0.5, speed=0.5)
    torch.manual_seed(7)
    alone = aug.points_only(lmk, RES)
    torch.manual_seed(7)
    img = torch.zeros(2, 3, RES, RES)
    _, _, _, with_images = aug(img, img[:, None].expand(2, 4, 3, RES, RES),
                               img[:, None].expand(2, 4, 3, RES, RES), lmk)
    for key in lmk:
        assert alone[key].shape == lmk[key].shape
        assert torch.allclose(alone[key], with_images[key], atol=1e-5), key
        assert (alone[key] - lmk[key]).abs().max() > 1.0, key  # they did move
    off = LandmarkClipAugment(AugmentConfig(enabled=False))
    assert off.points_only(lmk, RES) is lmk


def test_pure_flip_moves_points_exactly_with_the_pixels() -> None:
    _, pts = _neutral(2)
    pts = pts + 0.5  # training's landmarks are continuous: pixel i covers [i, i + 1)
    lmk = _lmk_batch(pts[:, None].expand(2, 2, 68, 2))
    out = _augment(degrees=0.0, scale=0.0, translate=0.0).points_only(lmk, RES)
    # the image flip sends pixel column i to (W - 1) - i, so the continuous x to W - x
    expect = lmk["source_lmk"][..., FLIP, :].clone()
    expect[..., 0] = RES - expect[..., 0]
    assert (out["source_lmk"] - expect).abs().max() < 1e-4


def test_jitter_landmarks_scales_with_the_interocular_distance() -> None:
    pts = torch.cat([_clip_points(4, 8), _similarity(_clip_points(4, 8), 10.0, 3.0, (5, 5))])
    assert jitter_landmarks(pts, 0.0) is pts
    torch.manual_seed(0)
    noisy = jitter_landmarks(pts, 0.05)
    ref = pts[:, 0]
    iod = (ref[:, 42:48].mean(1) - ref[:, 36:42].mean(1)).norm(dim=-1)
    rel = ((noisy - pts) / iod.view(-1, 1, 1, 1)).flatten(1).std(1)
    assert torch.allclose(rel, torch.full_like(rel, 0.05), rtol=0.1)
