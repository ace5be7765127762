"""The model: config validation, shapes, gradients, ASD properties, streaming, identity init."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dtgan_plugin.errors import ConfigError, DtganError
from dtgan_plugin.models import (DTGAN, ClipDiscriminator, DynamicsEncoder, FrameDiscriminator,
                                 InputShapeError, ModelConfig, build_discriminators,
                                 build_generator, build_model)
from dtgan_plugin.models.config import DiscriminatorConfig, EncoderConfig, GeneratorConfig

#: a small model for properties that do not depend on size (keeps the suite fast on 2 cores)
TINY = ModelConfig(
    resolution=32,
    encoder=EncoderConfig(widths=(8, 16, 16, 16), feature_dim=32, hidden=32, n_classes=3,
                          n_params=4),
    generator_cfg=GeneratorConfig(base_width=8, max_width=32, dyn_channels=8),
    discriminator=DiscriminatorConfig(frame_base_width=8, clip_base_width=8, clip_hidden=16,
                                      clip_dyn_channels=4),
)
R = TINY.resolution
D = TINY.dyn_dim


def _clip(b: int, t: int, res: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, res, res, generator=g) * 2 - 1


def _smooth_image(b: int, res: int) -> torch.Tensor:
    """A face-like smooth image (gradients and a blob) in [-1, 1]."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    blob = torch.exp(-(x ** 2 + y ** 2) * 4)
    img = torch.stack([0.8 * x, 0.6 * y, blob * 1.6 - 0.8])
    return img.unsqueeze(0).repeat(b, 1, 1, 1).clamp(-1, 1)


# ---------------------------------------------------------------- config


def test_config_round_trip_and_json():
    cfg = ModelConfig(resolution=128, generator="synth", asd_mode="raw",
                      encoder=EncoderConfig(widths=(16, 32, 64, 64), hidden=64),
                      discriminator=DiscriminatorConfig(clip_kind="conv3d"))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.dyn_dim == 64 and cfg.levels == 5
    assert ModelConfig.from_dict({}) == ModelConfig()


@pytest.mark.parametrize("data, key", [
    ({"resolutoin": 64}, "resolutoin"),
    ({"generator_cfg": {"base_widht": 8}}, "generator_cfg.base_widht"),
    ({"encoder": {"lstm": 3}}, "encoder.lstm"),
    ({"resolution": 100}, "resolution"),
    ({"resolution": 16}, "resolution"),
    ({"resolution": "64"}, "resolution"),
    ({"generator": "gan"}, "generator"),
    ({"asd_mode": "diff"}, "asd_mode"),
    ({"encoder": {"widths": [8, 16]}}, "encoder.widths"),
    ({"encoder": {"hidden": 0}}, "encoder.hidden"),
    ({"encoder": {"norm": "layer"}}, "encoder.norm"),
    ({"generator_cfg": {"base_width": 64, "max_width": 32}}, "generator_cfg.max_width"),
    ({"generator_cfg": {"film": 1}}, "generator_cfg.film"),
    ({"generator_cfg": {"max_flow": float("nan")}}, "generator_cfg.max_flow"),
    ({"discriminator": {"clip_kind": "gru"}}, "discriminator.clip_kind"),
    ({"discriminator": []}, "discriminator"),
    ({"resolution": 32, "discriminator": {"frame_layers": 4}}, "discriminator.frame_layers"),
])
def test_config_refuses_bad_keys_and_values(data, key):
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict(data)
    msg = str(info.value)
    assert f"'{key}'" in msg and "\n" not in msg


def test_config_suggests_close_key():
    with pytest.raises(ConfigError, match="did you mean 'base_width'"):
        ModelConfig.from_dict({"generator_cfg": {"base_widht": 8}})


def test_config_bad_json():
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.from_json("{nope")


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("res", [64, 128, 256])
@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_generator_shapes(res, kind):
    cfg = ModelConfig(resolution=res, generator=kind)
    gen = build_generator(cfg).eval()
    target = _clip(2, 1, res)[:, 0]
    d = torch.randn(2, 3, cfg.dyn_dim)
    with torch.inference_mode():
        out = gen(target, d)
    assert out.shape == (2, 3, 3, res, res)
    assert out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("res", [64, 128, 256])
def test_encoder_and_discriminator_shapes(res):
    cfg = ModelConfig(resolution=res)
    enc = DynamicsEncoder(cfg).eval()
    clip = _clip(1, 3, res)
    with torch.inference_mode():
        d = enc.extract(clip)
        h, (hn, cn) = enc.encode(clip)
        assert d.shape == h.shape == (1, 3, cfg.dyn_dim)
        assert hn.shape == cn.shape == (1, 1, cfg.dyn_dim)
        assert enc.classify(h).shape == (1, 3, cfg.encoder.n_classes)
        assert enc.regress(h).shape == (1, 3, cfg.encoder.n_params)
        frame_d = FrameDiscriminator(cfg)
        patches = frame_d(clip[:, 0], clip)
        assert patches.shape[:3] == (1, 3, 1) and patches.shape[-1] == res // 8 - 2
        assert frame_d(clip[:, 0], clip[:, 1]).shape == (1, 1, res // 8 - 2, res // 8 - 2)
        for kind in ("lstm", "conv3d"):
            ccfg = cfg.replace(discriminator=DiscriminatorConfig(clip_kind=kind))
            assert ClipDiscriminator(ccfg)(clip, d).shape == (1,)


def test_dtgan_forward_and_reference_index():
    model = build_model(TINY).eval()
    src, tgt = _clip(2, 5, R), _clip(2, 1, R, seed=1)[:, 0]
    with torch.inference_mode():
        out = model(tgt, src)
        d0 = model.dynamics(src)
        d2 = model.dynamics(src, reference_index=2)
        d_last = model.dynamics(src, reference_index=-1)
    assert out.shape == (2, 5, 3, R, R)
    assert torch.count_nonzero(d0[:, 0]) == 0
    # another reference frame defines another static sequence: different dynamics
    assert not torch.allclose(d0, d2) and not torch.allclose(d2, d_last)
    with pytest.raises(InputShapeError, match="reference_index 5"):
        model.dynamics(src, reference_index=5)


def test_bad_inputs_raise_one_line_dtgan_errors():
    model = build_model(TINY).eval()
    with pytest.raises(DtganError, match="32x32") as info:
        model(_clip(1, 1, 64)[:, 0], _clip(1, 2, R))
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    with pytest.raises(InputShapeError, match=r"\(B, T, 3, H, W\)"):
        model.encoder.extract(torch.zeros(1, 3, R, R))
    with pytest.raises(InputShapeError, match="dynamics must be"):
        model.generator(torch.zeros(1, 3, R, R), torch.zeros(1, 2, 5))
    state = model.encoder.init_state(torch.zeros(2, 3, R, R))
    with pytest.raises(InputShapeError, match="batch 1"):
        model.encoder.step(torch.zeros(1, 2, 3, R, R), state)


# ---------------------------------------------------------------- gradients


def _assert_all_grads(module: torch.nn.Module, what: str) -> None:
    dead = [n for n, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]
    assert not dead, f"{what}: no gradient reached {dead}"


@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_joint_training_reaches_every_parameter(kind):
    torch.manual_seed(0)
    model = build_model(TINY.replace(generator=kind)).train()
    src, tgt = _clip(2, 4, R), _clip(2, 1, R, seed=3)[:, 0]
    d = model.dynamics(src)            # encoder not frozen: the loss flows back into it
    out = model.generator(tgt, d)
    h, _ = model.encoder.encode(src)   # pre-training heads
    loss = (out - src).abs().mean() + model.encoder.classify(h).logsumexp(-1).mean() \
        + model.encoder.regress(h).pow(2).mean()
    loss.backward()
    _assert_all_grads(model.generator, f"{kind} generator")
    _assert_all_grads(model.encoder, "encoder")


@pytest.mark.parametrize("clip_kind", ["lstm", "conv3d"])
def test_discriminators_reach_every_parameter(clip_kind):
    torch.manual_seed(0)
    cfg = TINY.replace(discriminator=DiscriminatorConfig(
        frame_base_width=8, clip_base_width=8, clip_hidden=16, clip_kind=clip_kind))
    discs = build_discriminators(cfg).train()
    clip, d = _clip(2, 4, R), torch.randn(2, 4, cfg.dyn_dim)
    loss = discs.frame(clip[:, 0], clip).mean() + discs.clip(clip, d).mean()
    loss.backward()
    _assert_all_grads(discs, f"discriminators ({clip_kind})")


def test_generator_gradient_reaches_dynamics_input():
    gen = build_generator(TINY).train()
    d = torch.randn(1, 3, D, requires_grad=True)
    gen(_smooth_image(1, R), d).sum().backward()
    assert d.grad is not None and d.grad.abs().sum() > 0


# ---------------------------------------------------------------- ASD


@pytest.mark.parametrize("mode", ["asd", "cnn_diff"])
def test_asd_of_static_clip_is_exactly_zero(mode):
    enc = DynamicsEncoder(TINY.replace(asd_mode=mode)).eval()
    ref = _clip(3, 1, R)[:, 0]
    clip = ref.unsqueeze(1).repeat(1, 20, 1, 1, 1)
    with torch.inference_mode():
        whole = enc.extract(clip)
        state = enc.init_state(ref)
        parts = []
        for chunk in clip.split(7, dim=1):
            d, state = enc.step(chunk, state)
            parts.append(d)
    assert torch.count_nonzero(whole) == 0
    assert torch.count_nonzero(torch.cat(parts, 1)) == 0


def test_asd_nonzero_once_clip_moves_and_first_frame_zero():
    enc = DynamicsEncoder(TINY).eval()
    clip = _clip(2, 6, R)
    with torch.inference_mode():
        d = enc.extract(clip)
    assert torch.count_nonzero(d[:, 0]) == 0     # frame 0 is the reference
    assert (d[:, 1:].abs().amax(-1) > 0).all()
    # a clip that returns to the reference after moving keeps a (memory) dynamics signal
    back = torch.cat([clip[:, :3], clip[:, :1]], 1)
    with torch.inference_mode():
        assert enc.extract(back)[:, 3].abs().sum() > 0


@pytest.mark.parametrize("mode", ["asd", "raw", "cnn_diff"])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_streaming_equals_whole_clip(mode, chunk):
    enc = DynamicsEncoder(TINY.replace(asd_mode=mode)).eval()
    clip = _clip(2, 70, R, seed=5)
    # hold the first 3 frames on the reference, so the static-prefix handling crosses chunks
    clip[:, 1:3] = clip[:, :1]
    with torch.inference_mode():
        whole = enc.extract(clip)
        state = enc.init_state(clip[:, 0])
        parts = []
        for piece in clip.split(chunk, dim=1):
            d, state = enc.step(piece, state)
            parts.append(d)
    streamed = torch.cat(parts, 1)
    assert state.frames_seen == 70
    assert streamed.shape == whole.shape == (2, 70, D)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)


def test_raw_and_cnn_diff_modes():
    clip = _clip(1, 5, R)
    cfg = TINY
    base = DynamicsEncoder(cfg).eval()
    raw = DynamicsEncoder(cfg.replace(asd_mode="raw")).eval()
    raw.load_state_dict(base.state_dict())
    diff = DynamicsEncoder(cfg.replace(asd_mode="cnn_diff")).eval()
    assert diff.diff_proj is not None and base.diff_proj is None
    with torch.inference_mode():
        h, _ = base.encode(clip)
        r = raw.extract(clip)
        c = diff.extract(clip)
        a = base.extract(clip)
    torch.testing.assert_close(r, h)                  # raw mode = plain LSTM outputs
    assert torch.count_nonzero(r[:, 0]) > 0            # no suppression: frame 0 is not zero
    assert torch.count_nonzero(c[:, 0]) == 0 and torch.count_nonzero(c[:, 1:]) > 0
    assert not torch.allclose(a, r)


def test_state_detach_and_to():
    enc = DynamicsEncoder(TINY)
    clip = _clip(1, 3, R)
    state = enc.init_state(clip[:, 0])
    _, state = enc.step(clip, state)
    cut = state.detach()
    assert cut.hidden is not None and not cut.hidden.requires_grad
    assert not cut.phi_ref.requires_grad
    moved = cut.to("cpu")
    assert moved.frames_seen == 3 and moved.batch == 1


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("kind", ["warp", "synth"])
@pytest.mark.parametrize("res", [64, 128])
def test_generators_start_near_identity(kind, res):
    torch.manual_seed(0)
    gen = build_generator(ModelConfig(resolution=res, generator=kind)).eval()
    target = _smooth_image(2, res)
    with torch.inference_mode():
        still = gen(target, torch.zeros(2, 4, 256))
        moved = gen(target, torch.randn(2, 4, 256))
    for out in (still, moved):
        err = (out - target.unsqueeze(1)).abs()
        assert err.mean() < 0.02 and err.max() < 0.15, (err.mean(), err.max())


def test_warp_aux_maps_at_init():
    gen = build_generator(ModelConfig()).eval()
    target = _smooth_image(1, 64)
    with torch.inference_mode():
        out, aux = gen.render(gen.encode_target(target), torch.randn(1, 3, 256),
                              return_aux=True)
    assert set(aux) == {"flow", "mask", "residual", "warped"}
    assert aux["flow"].shape == (1, 3, 2, 64, 64) and torch.count_nonzero(aux["flow"]) == 0
    # zero flow: the warp is the identity up to float rounding
    torch.testing.assert_close(aux["warped"][0, 0], target[0], atol=1e-5, rtol=0)
    assert ((aux["mask"] > 0) & (aux["mask"] < 1)).all()


def _at_rest(cfg: ModelConfig, on: bool = True) -> ModelConfig:
    return cfg.replace(generator_cfg=dataclasses.replace(cfg.generator_cfg, identity_at_rest=on))


@pytest.mark.parametrize("at_rest", [False, True], ids=["free", "at-rest"])
@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_render_reuses_target_features_and_chunks(kind, at_rest):
    torch.manual_seed(0)
    gen = build_generator(_at_rest(TINY.replace(generator=kind), at_rest)).eval()
    # make the heads non-trivial so the comparison is meaningful
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    target = _clip(1, 1, R)[:, 0]
    d = torch.randn(1, 10, D)
    with torch.inference_mode():
        whole = gen(target, d)
        feats = gen.encode_target(target)
        chunked = torch.cat([gen.render(feats, part) for part in d.split(3, dim=1)], 1)
        # one target broadcast over several clips
        many = gen.render(feats, d.expand(3, -1, -1))
        empty = gen.render(feats, d[:, :0])
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(many[2], whole[0], atol=1e-5, rtol=0)
    assert empty.shape == (1, 0, 3, R, R)
    with pytest.raises(InputShapeError, match="one target or one per clip"):
        gen.render(gen.encode_target(target.repeat(2, 1, 1, 1)), d.expand(3, -1, -1))


@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_channels_last_matches_default_layout(kind):
    torch.manual_seed(0)
    model = build_model(TINY.replace(generator=kind)).eval()
    src, tgt = _clip(1, 4, R), _clip(1, 1, R, seed=2)[:, 0]
    with torch.inference_mode():
        ref = model(tgt, src)
        fast = model.to_channels_last()(tgt, src)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_identity_at_rest_renders_the_target_at_zero_dynamics(kind):
    torch.manual_seed(0)
    free = build_generator(TINY.replace(generator=kind)).eval()
    anchored = build_generator(_at_rest(TINY.replace(generator=kind))).eval()
    with torch.no_grad():
        # trained-looking heads: far from the identity at init
        for p in free.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    anchored.load_state_dict(free.state_dict())
    target = _smooth_image(2, R)
    d = torch.randn(2, 3, D)
    rest = torch.cat([torch.zeros(2, 1, D), d, torch.zeros(2, 1, D)], 1)
    with torch.inference_mode():
        drift = (free(target, torch.zeros(2, 1, D)) - target.unsqueeze(1)).abs().mean()
        out = anchored(target, rest)
    assert drift > 0.01, "the perturbed free generator should not sit on the target at rest"
    # at rest the output is the target up to the logit clamp (|x| <= 1 - 1e-3)
    for t in (0, 4):
        torch.testing.assert_close(out[:, t], target, atol=1.1e-3, rtol=0)
    assert (out[:, 1:4] - target.unsqueeze(1)).abs().mean() > 0.01, "dynamics must still move it"


def test_identity_at_rest_keeps_older_fingerprints():
    # a key added later is left out of the hashed JSON while it has its old behaviour, so
    # checkpoints saved before it existed still verify
    assert "identity_at_rest" not in ModelConfig().to_json()
    assert '"identity_at_rest":true' in _at_rest(ModelConfig()).to_json()
    assert ModelConfig.from_json(_at_rest(ModelConfig()).to_json()) == _at_rest(ModelConfig())
    torch.manual_seed(0)
    a = build_model()
    b = build_model(_at_rest(ModelConfig()))
    b.load_state_dict(a.state_dict())
    assert a.fingerprint() != b.fingerprint()
    with pytest.raises(ConfigError, match="identity_at_rest.*synth_residual"):
        ModelConfig(generator="synth",
                    generator_cfg=GeneratorConfig(synth_residual=False, identity_at_rest=True))


def test_synth_plain_tanh_variant():
    cfg = TINY.replace(generator="synth",
                       generator_cfg=GeneratorConfig(base_width=8, synth_residual=False))
    gen = build_generator(cfg).eval()
    with torch.inference_mode():
        out = gen(_smooth_image(1, R), torch.zeros(1, 2, D))
    # the paper's plain synthesis starts from a blank (≈ 0) image, not from the target
    assert out.abs().max() < 0.2


@pytest.mark.parametrize("gcfg", [
    GeneratorConfig(base_width=8, norm="group", upsample="nearest", film=False),
    GeneratorConfig(base_width=8, norm="batch", kernel_size=3),
    GeneratorConfig(base_width=8, max_width=16, norm="instance", kernel_size=4),
], ids=["group-nearest-nofilm", "batch-k3", "instance-k4"])
@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_generator_options_build_and_run(gcfg, kind):
    gen = build_generator(TINY.replace(generator=kind, generator_cfg=gcfg)).eval()
    target = _smooth_image(2, R)
    with torch.inference_mode():
        out = gen(target, torch.randn(2, 2, D))
    assert out.shape == (2, 2, 3, R, R)
    assert (out - target.unsqueeze(1)).abs().mean() < 0.05


def test_encoder_options_build_and_run():
    cfg = ModelConfig(resolution=32, encoder=EncoderConfig(norm="group", kernel_size=3,
                                                          n_classes=0, n_params=0, hidden=32))
    enc = DynamicsEncoder(cfg).eval()
    assert enc.classifier is None and enc.regressor is None
    with torch.inference_mode():
        h, _ = enc.encode(_clip(1, 2, 32))
        assert enc.extract(_clip(1, 2, 32)).shape == (1, 2, 32)
    with pytest.raises(InputShapeError, match="no classification head"):
        enc.classify(h)


# ---------------------------------------------------------------- DTGAN


def test_fingerprint_tracks_weights():
    torch.manual_seed(0)
    a = build_model()
    torch.manual_seed(0)
    b = build_model()
    fp = a.fingerprint()
    assert len(fp) == 16 and fp == b.fingerprint() == a.fingerprint()
    with torch.no_grad():
        next(b.generator.parameters()).add_(1e-3)
    assert b.fingerprint() != fp
    c = build_model(ModelConfig(generator="synth"))
    assert c.fingerprint() != fp
    assert isinstance(a, DTGAN) and a.resolution == 64 and a.dyn_dim == 256


def test_build_model_accepts_dicts_and_refuses_junk():
    assert build_model({"generator": "synth"}).config.generator == "synth"
    with pytest.raises(ConfigError):
        build_model({"generator": "nope"})
    with pytest.raises(ConfigError):
        build_model(42)  # type: ignore[arg-type]


def test_parameter_counts_are_moderate():
    # guards against accidental blow-ups of the defaults (the CPU speed budget depends on them)
    model = build_model()
    gen = sum(p.numel() for p in model.generator.parameters())
    enc = sum(p.numel() for p in model.encoder.parameters())
    assert 1e6 < gen < 5e6 and 1e5 < enc < 4e6, (gen, enc)
    assert math.isclose(model.config.levels, 4)


@pytest.mark.parametrize("at_rest", [False, True], ids=["free", "at-rest"])
@pytest.mark.parametrize("kind", ["warp", "synth"])
def test_generator_exports_with_4d_ops_only(kind, at_rest):
    # torch.export is the front end of the ONNX exporter: a clean export with 2-D sampling and
    # convolutions only is what keeps the generator exportable (no 5-D grid_sample)
    gen = build_generator(_at_rest(TINY.replace(generator=kind), at_rest)).eval()
    args = (_smooth_image(1, R), torch.randn(1, 3, D))
    program = torch.export.export(gen, args)
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("3d" in op for op in ops), ops
    assert any("grid_sampler" in op for op in ops) == (kind == "warp")
    torch.testing.assert_close(program.module()(*args), gen(*args), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "conv3d"])
def test_clip_discriminator_with_frame_differences(kind):
    """clip_input="frames+diff": D_T sees the motion; a still clip's diffs are exactly zero."""
    from dtgan_plugin.models.discriminators import ClipDiscriminator

    # no spectral norm: its power-iteration vectors would make "equal" only approximate
    cfg = ModelConfig(discriminator=dataclasses.replace(
        ModelConfig().discriminator, clip_kind=kind, clip_input="frames+diff",
        spectral_norm=False))
    torch.manual_seed(0)
    d_t = ClipDiscriminator(cfg).eval()
    first = next(m for m in d_t.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    assert first.in_channels == 6
    clip = torch.rand(2, 5, 3, 64, 64) * 2 - 1
    d = torch.randn(2, 5, cfg.dyn_dim)
    assert d_t(clip, d).shape == (2,)
    # with the diff channels' weights zeroed it is the frames-only D_T (what a widened
    # fine-tune starts from); with them, it responds to the motion
    plain = ClipDiscriminator(dataclasses.replace(cfg, discriminator=dataclasses.replace(
        cfg.discriminator, clip_input="frames"))).eval()
    state = d_t.state_dict()
    key = next(k for k, v in state.items() if v.dim() >= 4 and v.shape[1] == 6)
    state[key] = state[key].clone()
    state[key][:, 3:] = 0
    plain.load_state_dict({k: (v[:, :3] if k == key else v) for k, v in state.items()})
    with torch.no_grad():
        before = d_t(clip, d)
        d_t.load_state_dict(state)
        torch.testing.assert_close(d_t(clip, d), plain(clip, d), atol=1e-5, rtol=0)
        assert not torch.allclose(before, d_t(clip, d))
    # the option is left out of the fingerprint while it has its old value
    assert "clip_input" not in ModelConfig().to_json()
    assert '"clip_input":"frames+diff"' in cfg.to_json()
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="clip_input"):
        ModelConfig.from_dict({"discriminator": {"clip_input": "flow"}})


@pytest.mark.parametrize("kind", ["lstm", "conv3d"])
def test_discriminator_features_for_feature_matching(kind):
    """features() returns each hidden block's activations, on the same path as the logits."""
    cfg = ModelConfig(discriminator=dataclasses.replace(ModelConfig().discriminator,
                                                        clip_kind=kind))
    torch.manual_seed(0)
    discs = build_discriminators(cfg).eval()
    clip, target = torch.rand(2, 4, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    d = torch.randn(2, 4, cfg.dyn_dim)
    feats = discs.frame.features(target, clip)
    assert len(feats) == cfg.discriminator.frame_layers + 1
    assert all(f.shape[0] == 8 for f in feats)  # every (target, frame) pair
    # the last hidden block through the final conv is the forward pass
    logits = discs.frame.net[-1](feats[-1]).unflatten(0, (2, 4))
    torch.testing.assert_close(logits, discs.frame(target, clip))
    clip_feats = discs.clip.features(clip, d)
    assert len(clip_feats) >= 3
    # a clip's features do not depend on the other clips in the batch
    one = discs.clip.features(clip[:1], d[:1])
    for a, b in zip(one, clip_feats):
        torch.testing.assert_close(a, b[: a.shape[0]], atol=1e-5, rtol=0)
