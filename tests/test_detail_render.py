"""Detail rendering: a geometry model warps a larger copy of the target by its upsampled flow,
so outputs above the model's 128 px keep the photo's sharpness (``Renderer(out_size=...)``,
``transfer(detail=...)``, ``--detail``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dtgan_plugin.errors import OptionError

from test_landmark_inference import _clip, _model


def _sharpness(frames: torch.Tensor) -> float:
    """Mean absolute Laplacian: how much fine detail the frames hold."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    grey = frames.mean(1, keepdim=True)
    return float(F.conv2d(grey, k).abs().mean())


@torch.no_grad()
def test_detail_at_the_working_size_is_the_plain_render() -> None:
    model = _model()
    frames, pts = _clip(frames=5)
    target = frames[0][None] * 2 - 1
    feats = model.generator.encode_target(target, pts[:1])
    d = model.encoder.extract(pts[None])
    plain = model.generator.render(feats, d)
    same = model.generator.render(feats, d, detail=target)
    assert torch.allclose(plain, same, atol=1e-5)


@torch.no_grad()
def test_detail_output_has_its_size_rests_on_it_and_moves_like_the_small_one() -> None:
    model = _model()
    frames, pts = _clip(frames=6)
    big_frames, big_pts = _clip(frames=6, size=96)  # the same faces rendered at 3x
    target = frames[0][None] * 2 - 1
    detail = big_frames[0][None] * 2 - 1
    feats = model.generator.encode_target(target, pts[:1])
    d = model.encoder.extract(pts[None])
    small = model.generator.render(feats, d)
    big = model.generator.render(feats, d, detail=detail)
    assert big.shape == (1, 6, 3, 96, 96)
    # at rest (frame 0, d = 0) the output is the large target itself, not an upscale
    assert float((big[0, 0] - detail[0]).abs().max()) < 3e-3
    assert float((big[0, 1:] - big[0, :1]).abs().mean()) > 1e-3
    # the motion is the working size's: with the small target upsampled as the detail, the
    # output is the small render upsampled, up to the order of the two interpolations
    up = F.interpolate(target, size=(96, 96), mode="bilinear", align_corners=False)
    via_detail = model.generator.render(feats, d, detail=up)[0]
    upscaled = F.interpolate(small[0], size=(96, 96), mode="bilinear", align_corners=False)
    # (this random model's flows are wild, so the order shows; other dynamics are far off)
    other = model.generator.render(feats, d.flip(1), detail=up)[0]
    assert float((via_detail - upscaled).abs().mean()) < 0.25 * float(
        (other - upscaled).abs().mean())
    # no frames: an empty result at the detail size
    empty = model.generator.render(feats, d[:, :0], detail=detail)
    assert empty.shape == (1, 0, 3, 96, 96)


def test_renderer_warps_the_target_at_the_output_size() -> None:
    from dtgan_plugin.inference import Renderer

    model = _model()
    frames, pts = _clip(frames=6)
    big_frames, big_pts = _clip(frames=6, size=128)
    d = model.encoder.extract(pts[None])[0]
    sharp = Renderer(model, big_frames[0], target_landmarks=big_pts[0], out_size=128).render(d)
    assert sharp.shape == (6, 3, 128, 128)
    assert float((sharp[0] - big_frames[0]).abs().max()) < 3e-3  # the photo itself at rest
    # a 32 px render upscaled (what a model without detail rendering gets) is much softer
    soft = F.interpolate(Renderer(model, big_frames[0], target_landmarks=big_pts[0]).render(d),
                         size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    assert _sharpness(sharp) > 1.5 * _sharpness(soft)


def test_models_without_detail_rendering_upscale() -> None:
    from conftest import SMALL_MODEL

    from dtgan_plugin.inference import Renderer
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig

    model = build_model(ModelConfig.from_dict(SMALL_MODEL)).eval()
    assert not getattr(model.generator, "renders_detail", False)
    res = int(model.config.resolution)
    target = torch.rand(3, 4 * res, 4 * res)
    out = Renderer(model, target, out_size=2 * res).render(torch.zeros(2, model.config.dyn_dim))
    assert out.shape == (2, 3, 2 * res, 2 * res)


@pytest.mark.parametrize("value, message", [
    ("sharp", "detail must be 'auto' or a size"), (-4, "detail must be"), (True, "detail must"),
    (1.5, "detail must be 'auto'"), (10 ** 6, "detail must be"),
])
def test_bad_detail_values_are_refused(value: object, message: str) -> None:
    from dtgan_plugin.api import _detail_arg

    with pytest.raises(OptionError, match=message):
        _detail_arg(value)


def test_detail_values_and_the_transfer_graph() -> None:
    from dtgan_plugin.api import _detail_arg, transfer_spec
    from dtgan_plugin.faces.decide import CropSettings

    assert _detail_arg("auto") is None and _detail_arg(0) == 0 and _detail_arg("300") == 300
    crop = CropSettings(size=128, detail=300)
    spec, _ = transfer_spec(target="t.png", source="s.mp4", dynamics=None, checkpoint="default",
                            reference_frame=0, amplify=1.0, smooth=False, size=None, fit="crop",
                            alpha="refuse", face_crop=crop)
    nodes = {n.name: n for chain in spec.chains for n in chain}
    crops = [n for chain in spec.chains for n in chain if n.name == "dtgan.facecrop"]
    sizes = sorted(int(n.named["size"]) for n in crops)
    assert sizes == [128, 300]  # the source at the model's size, the target at the detail's
    assert int(nodes["dtgan.transfer"].named["size"]) == 300
    # detail below the model's size changes nothing
    assert CropSettings(size=128, detail=64).target_size == 128
    # without paste-back the transfer's own size is the output's, and the target is cut at it
    spec, _ = transfer_spec(target="t.png", source="s.mp4", dynamics=None, checkpoint="default",
                            reference_frame=0, amplify=1.0, smooth=False, size=256, fit="crop",
                            alpha="refuse",
                            face_crop=CropSettings(size=128, paste_back=False, detail=256))
    crops = [n for chain in spec.chains for n in chain if n.name == "dtgan.facecrop"]
    assert sorted(int(n.named["size"]) for n in crops) == [128, 256]
    transfer = [n for chain in spec.chains for n in chain if n.name == "dtgan.transfer"][0]
    assert int(transfer.named["size"]) == 256
    assert not [n for chain in spec.chains for n in chain if n.name == "dtgan.pasteback"]


def test_cli_detail_flag_parses_and_refuses() -> None:
    from conftest import run_cli

    res = run_cli("transfer", "-s", "x.mp4", "-t", "y.png", "-o", "z.mp4", "--detail", "big")
    err = res.stderr.decode().strip()
    assert res.returncode == 2 and "--detail" in err and "auto" in err, err
