"""The mouth's interior (``generator_cfg.mouth_cavity``): a mouth that opens wider than at
rest keeps its lips' content rigid and shows a dark cavity between them."""

from __future__ import annotations

import torch

from dtgan_plugin.models.mouth import (SHADE_BOTTOM, SHADE_TOP, lips_colour, mouth_interior,
                                       paint_cavity)

SIZE = 64


def _face(gap: float, drop: float = 0.0) -> torch.Tensor:
    """(1, 68, 2) points: only the mouth matters here. Inner corners at x 22 and 42 on
    y = 40; the inner lips ``gap`` px apart at the middle; ``drop`` lowers the lower lip."""
    pts = torch.zeros(1, 68, 2)
    pts[0, :, 0] = torch.linspace(5, 59, 68)
    pts[0, :, 1] = 20.0
    pts[0, 60] = torch.tensor([22.0, 40.0])
    pts[0, 64] = torch.tensor([42.0, 40.0])
    for i, x in zip((61, 62, 63), (27.0, 32.0, 37.0)):
        bump = 4 * ((x - 22) / 20) * (1 - (x - 22) / 20)
        pts[0, i] = torch.tensor([x, 40.0 - gap / 2 * bump])
    for i, x in zip((67, 66, 65), (27.0, 32.0, 37.0)):
        bump = 4 * ((x - 22) / 20) * (1 - (x - 22) / 20)
        pts[0, i] = torch.tensor([x, 40.0 + (gap / 2 + drop) * bump])
    pts[0, 48:60, 1] = 40.0  # the outer lips on the mouth line: where the colour is read
    pts[0, 48:60, 0] = torch.linspace(20, 44, 12)
    return pts


def _sample(flow: torch.Tensor, x: float, y: float) -> tuple[float, float]:
    """Where the output pixel centred at (x, y) samples the target, in pixels."""
    fx, fy = flow[0, :, int(y), int(x)].tolist()
    return x + fx * SIZE / 2, y + fy * SIZE / 2


def test_a_mouth_no_wider_than_at_rest_is_left_alone() -> None:
    flow = torch.randn(1, 2, SIZE, SIZE) * 0.01
    rest = _face(gap=4.0)
    out, paint = mouth_interior(flow, rest, rest.clone())
    assert torch.equal(out, flow) and float(paint[:, 0].abs().max()) == 0.0
    closing = _face(gap=2.0)  # narrower than at rest: the spline's warp stays
    out, paint = mouth_interior(flow, rest, closing)
    assert torch.equal(out, flow) and float(paint[:, 0].abs().max()) == 0.0
    # a parting of 2 % of the mouth's length (a landmarker's jitter) does not flicker a line
    jitter = _face(gap=4.0, drop=0.4)
    out, paint = mouth_interior(flow, rest, jitter)
    assert torch.equal(out, flow) and float(paint[:, 0].abs().max()) == 0.0


def test_an_opening_mouth_moves_its_lips_content_rigidly_and_shows_a_cavity() -> None:
    flow = torch.zeros(1, 2, SIZE, SIZE)
    rest, opened = _face(gap=4.0), _face(gap=4.0, drop=8.0)  # the lower lip drops 8 px
    out, cavity = mouth_interior(flow, rest, opened)
    # the middle column: upper lip at y 38, lower lip at y 50 (rest: 42); teeth bands of 2 px
    cover = cavity[:, 0]
    assert float(cover[0, 44, 32]) > 0.95 and float(cover[0, 46, 32]) > 0.95
    assert float(cover[0, 38, 32]) < 0.05 and float(cover[0, 49, 32]) < 0.05
    # just above the lower lip, the output samples just above the lower lip at rest (42)
    sx, sy = _sample(out, 32.5, 49.5)
    assert abs(sx - 32.5) < 0.3 and abs(sy - 41.5) < 0.3
    # just below the upper lip (which did not move) the content is the rest one
    sx, sy = _sample(out, 32.5, 38.5)
    assert abs(sx - 32.5) < 0.3 and abs(sy - 38.5) < 0.3
    # outside the mouth the flow is the spline's
    assert float(out[..., :30, :].abs().max()) == 0.0 and float(out[..., 55:, :].abs().max()) == 0.0
    assert float(cover[..., :, :20].abs().max()) == 0.0
    # the depth runs from the cavity's top (y 40) to its bottom (y 48)
    assert abs(float(cavity[0, 1, 43, 32]) - 3.5 / 8) < 0.02


def test_the_cavity_is_a_dark_shade_of_the_lips_darkest_at_the_top() -> None:
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 0] = 0.6   # a reddish face: [-1, 1] units
    image[:, 1:] = -0.2
    lips = lips_colour(image, _face(gap=4.0))
    assert torch.allclose(lips[0], torch.tensor([0.8, 0.4, 0.4]), atol=1e-4)
    _, paint = mouth_interior(torch.zeros(1, 2, SIZE, SIZE), _face(gap=4.0),
                              _face(gap=4.0, drop=8.0))
    frames = torch.ones(1, 3, SIZE, SIZE)
    out = paint_cavity(frames, paint, lips)
    top, bottom = out[0, :, 43, 32], out[0, :, 47, 32]   # the cavity spans y 40..48 there
    assert torch.all(top < bottom) and torch.all(bottom < 0.0)  # dark, lighter lower down
    depth = 3.5 / 8  # pixel centre 43.5: 3.5 px into the 8 px cavity
    expected = lips[0] * (SHADE_TOP + (SHADE_BOTTOM - SHADE_TOP) * depth) * 2 - 1
    assert torch.allclose(top, expected, atol=0.02)
    assert torch.equal(out[..., :30, :], frames[..., :30, :])  # nothing outside the mouth


def test_geowarp_paints_the_cavity_only_when_asked() -> None:
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig
    from dtgan_plugin.models.face_geometry import face_frame

    from test_landmark_inference import SMALL_LMK

    cfgs = {flag: ModelConfig.from_dict({**SMALL_LMK, "resolution": SIZE, "generator_cfg": {
        **SMALL_LMK["generator_cfg"], "mouth_cavity": flag, "motion_correction": False}})
        for flag in (False, True)}
    assert "mouth_cavity" not in cfgs[False].to_json()  # older fingerprints unchanged
    assert "mouth_cavity" in cfgs[True].to_json()
    torch.manual_seed(0)
    plain = build_model(cfgs[False]).eval()
    with_cavity = build_model(cfgs[True]).eval()
    with_cavity.load_state_dict(plain.state_dict())
    # a lit face with a bright mouth region, so a dark cavity shows
    target = torch.full((1, 3, SIZE, SIZE), 0.6)
    rest, opened = _face(gap=4.0), _face(gap=4.0, drop=8.0)
    # dynamics whose geometry skip carries exactly that motion (canonical units of the face)
    _, lin = face_frame(rest)
    offsets = ((opened - rest).unsqueeze(-2) * lin[:, None]).sum(-1)
    d = torch.zeros(1, 2, cfgs[True].dyn_dim)
    d[0, 1, cfgs[True].encoder.hidden:] = offsets.flatten()
    with torch.no_grad():
        outs = {name: m.generator.render(m.generator.encode_target(target, rest), d)[0]
                for name, m in (("plain", plain), ("cavity", with_cavity))}
    for out in outs.values():  # frame 0 is at rest: the target, with or without the cavity
        assert float((out[0] - target[0]).abs().max()) < 3e-3
    gap_pixel = outs["cavity"][1, :, 45, 32]  # 5.5 px into the 8 px cavity
    shade = SHADE_TOP + (SHADE_BOTTOM - SHADE_TOP) * 5.5 / 8
    assert torch.allclose(gap_pixel, torch.full((3,), 0.8 * shade * 2 - 1), atol=0.03)
    assert float((outs["plain"][1, :, 45, 32] - target[0, :, 45, 32]).abs().max()) < 0.05
    # away from the mouth the two renders agree
    assert torch.allclose(outs["cavity"][1, :, :30], outs["plain"][1, :, :30], atol=1e-4)
