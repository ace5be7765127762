"""The mouth's interior (``generator_cfg.mouth_cavity``): a mouth that opens wider than at
rest keeps its lips' content rigid and shows a dark cavity between them."""

from __future__ import annotations

import pytest
import torch

from dtgan_plugin.models.mouth import (CORNER, THROAT, TONGUE_BACK, TONGUE_TIP, cavity_colour,
                                       cavity_shade, lips_colour, mouth_interior, paint_cavity)

SIZE = 64


def _face(gap: float, drop: float = 0.0, corners: tuple[float, float] = (22.0, 42.0)
          ) -> torch.Tensor:
    """(1, 68, 2) points: only the mouth matters here. Inner corners at x 22 and 42 on
    y = 40, the mouth's (outer) corners at ``corners``; the inner lips ``gap`` px apart at the
    middle; ``drop`` lowers the lower lip."""
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
    pts[0, 48, 0], pts[0, 54, 0] = corners
    return pts


def _shade(u: float, depth: float, height: float) -> float:
    """:func:`cavity_shade` at one point."""
    return float(cavity_shade(torch.tensor(u), torch.tensor(depth), torch.tensor(height)))


def _sample(flow: torch.Tensor, x: float, y: float) -> tuple[float, float]:
    """Where the output pixel centred at (x, y) samples the target, in pixels."""
    fx, fy = flow[0, :, int(y), int(x)].tolist()
    return x + fx * SIZE / 2, y + fy * SIZE / 2


def test_a_mouth_no_wider_than_at_rest_is_left_alone() -> None:
    flow = torch.randn(1, 2, SIZE, SIZE) * 0.01
    rest = _face(gap=4.0)
    out, paint = mouth_interior(flow, rest, rest.clone())
    assert torch.equal(out, flow) and paint.box is None and float(paint.full()[:, 0].max()) == 0.0
    closing = _face(gap=2.0)  # narrower than at rest: the spline's warp stays
    out, paint = mouth_interior(flow, rest, closing)
    assert torch.equal(out, flow) and paint.box is None
    # a parting of 2 % of the mouth's length (a landmarker's jitter) does not flicker a line
    jitter = _face(gap=4.0, drop=0.4)
    out, paint = mouth_interior(flow, rest, jitter)
    assert torch.equal(out, flow) and float(paint.full()[:, 0].abs().max()) == 0.0
    assert out is not flow  # a new tensor: the caller's flow is never written


def test_an_opening_mouth_moves_its_lips_content_rigidly_and_shows_a_cavity() -> None:
    flow = torch.zeros(1, 2, SIZE, SIZE)
    rest, opened = _face(gap=4.0), _face(gap=4.0, drop=8.0)  # the lower lip drops 8 px
    out, paint = mouth_interior(flow, rest, opened)
    cavity = paint.full()
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
    # the shade is the one 3.5 px deep into the 8 px cavity (y 40 to 48), at u 0.525
    assert abs(float(cavity[0, 1, 43, 32]) - _shade(0.525, 3.5 / 8, 8.0)) < 0.02


def test_the_cavity_reaches_the_mouths_corners() -> None:
    """A mouth opened wide is dark right to its outer corners (48, 54), not only between the
    inner ones (60, 64): a cavity that stopped there read as a narrower mouth (module doc)."""
    flow = torch.zeros(1, 2, SIZE, SIZE)
    rest = _face(gap=4.0, corners=(16.0, 48.0))
    _, paint = mouth_interior(flow, rest, _face(gap=4.0, drop=10.0, corners=(16.0, 48.0)))
    cover = paint.full()[0, 0]
    # beyond the inner corners (x 22 and 42), still inside the mouth's corners
    assert float(cover[41:44, 19:21].max()) > 0.5 and float(cover[41:44, 43:45].max()) > 0.5
    assert float(cover[:, :15].abs().max()) == 0.0 and float(cover[:, 49:].abs().max()) == 0.0


def test_the_cavity_is_darkest_at_the_top() -> None:
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 0] = 0.6   # a reddish face: [-1, 1] units
    image[:, 1:] = -0.2
    lips = lips_colour(image, _face(gap=4.0))
    assert torch.allclose(lips[0], torch.tensor([0.8, 0.4, 0.4]), atol=1e-4)
    _, paint = mouth_interior(torch.zeros(1, 2, SIZE, SIZE), _face(gap=4.0),
                              _face(gap=4.0, drop=8.0))
    frames = torch.ones(1, 3, SIZE, SIZE)
    out = paint_cavity(frames.clone(), paint, lips)
    top, bottom = out[0, :, 41, 32], out[0, :, 47, 32]   # the cavity spans y 40..48 there
    assert torch.all(top < -0.4) and torch.all(top < bottom)  # a dark throat, a lit tongue
    assert bottom[0] > bottom[1] + 0.5                          # and a red one
    # pixel centre 41.5: 1.5 px into the 8 px cavity, at u 0.525 along the mouth
    expected = cavity_colour(lips)[0] * _shade(0.525, 1.5 / 8, 8.0) * 2 - 1
    assert torch.allclose(top, expected, atol=0.02)
    assert torch.equal(out[..., :30, :], frames[..., :30, :])  # nothing outside the mouth


def test_the_cavity_has_a_dark_throat_and_a_lit_tongue() -> None:
    """Under the upper teeth the throat's shade; from the lower lip up, a tongue whose top edge
    is a dome (highest mid-mouth), darkest at its back and lit at its tip; darker towards the
    corners. A linear ramp (the first version) read as a flat grey disc."""
    assert abs(_shade(0.5, 0.05, 20.0) - THROAT) < 1e-6
    assert abs(_shade(0.5, 1.0, 20.0) - TONGUE_TIP) < 1e-6
    # the tongue's back is in shadow: just under its top edge it is dark, lighter towards the lip
    column = [_shade(0.5, d / 40, 20.0) for d in range(40)]
    edge = next(i for i, v in enumerate(column) if v > (THROAT + TONGUE_BACK) / 2)
    assert 0.45 < edge / 40 < 0.65                       # the tongue fills the lower ~45 %
    assert all(b >= a - 1e-6 for a, b in zip(column[edge:], column[edge + 1:]))
    assert column[edge + 2] < (TONGUE_BACK + TONGUE_TIP) / 2 < column[-1]
    # the dome: at a quarter of the mouth the tongue starts lower than in the middle
    assert _shade(0.1, 0.6, 20.0) < _shade(0.5, 0.6, 20.0) - 0.1
    # the corners are shaded: the same depth darker near a corner
    assert _shade(0.02, 0.05, 20.0) < THROAT * (CORNER + 0.4)
    # the tongue's edge is about a pixel wide whatever the cavity's height
    small = [_shade(0.5, (d + 0.5) / 4, 4.0) for d in range(4)]
    assert small[0] == pytest.approx(THROAT) and small[-1] > TONGUE_BACK


def test_the_cavity_is_red_in_a_colour_photo_and_grey_in_a_grey_one() -> None:
    """Its colour keeps the lips' grey level and colourfulness, in a tongue's red hue (the
    lips' mean takes in skin: a shade of it looked grey-brown); grey lips give grey."""
    grey = cavity_colour(torch.tensor([[0.5, 0.5, 0.5]]))
    assert torch.allclose(grey, torch.full((1, 3), 0.5))
    skin = torch.tensor([[0.80, 0.63, 0.57]])               # pale lips, orange like skin
    red = cavity_colour(skin)[0]
    assert abs(float(red.mean()) - float(skin.mean())) < 1e-5   # as bright
    assert red[0] > red[1] and red[2] > red[1] - 0.03            # red, blue at least green's
    assert float(red.max() - red.min()) > float(skin.max() - skin.min())  # more saturated


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
    shade = _shade(0.525, 5.5 / 8, 8.0)  # a grey face: a grey cavity, 0.8 at full shade
    assert torch.allclose(gap_pixel, torch.full((3,), 0.8 * shade * 2 - 1), atol=0.03)
    assert float((outs["plain"][1, :, 45, 32] - target[0, :, 45, 32]).abs().max()) < 0.05
    # away from the mouth the two renders agree
    assert torch.allclose(outs["cavity"][1, :, :30], outs["plain"][1, :, :30], atol=1e-4)


def _turned(points: torch.Tensor, angle: float, shift: tuple[float, float]) -> torch.Tensor:
    """``points`` rotated by ``angle`` about the frame's centre and shifted."""
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    rot = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    centre = torch.tensor([SIZE / 2, SIZE / 2])
    return (points - centre) @ rot.T + centre + torch.tensor(shift)


def _whole_frame(monkeypatch, fn):
    """Run ``fn`` with the mouth's window forced to the whole frame (the old computation)."""
    from dtgan_plugin.models import mouth

    with monkeypatch.context() as m:
        m.setattr(mouth, "_mouth_box", lambda *a: (0, a[-2], 0, a[-1]))
        return fn()


def test_the_mouths_window_holds_every_change(monkeypatch) -> None:
    """Only the window around the opened mouths is computed: the flow and the coverage are
    what the whole frame gives, for tilted, shifted and half-open mouths in one batch."""
    rest = torch.cat([_turned(_face(gap=4.0), a, sh) for a, sh in
                      ((0.0, (0, 0)), (0.4, (3, -2)), (-0.6, (-4, 5)), (0.2, (0, 0)))])
    moved = torch.cat([_turned(_face(gap=4.0, drop=d), a, sh) for d, a, sh in
                       ((8.0, 0.0, (0, 0)), (5.0, 0.4, (3, -2)), (12.0, -0.6, (-4, 5)),
                        (0.4, 0.2, (0, 0)))])  # the last one does not open: no paint there
    flow = torch.randn(4, 2, SIZE, SIZE) * 0.02
    # each face alone (its own window) and the four together (one window for the batch)
    for idx in ([0], [1], [2], [0, 1, 2, 3]):
        out, paint = mouth_interior(flow[idx], rest[idx], moved[idx])
        ref_out, ref_paint = _whole_frame(
            monkeypatch, lambda: mouth_interior(flow[idx], rest[idx], moved[idx]))
        assert paint.box is not None and paint.box != (0, SIZE, 0, SIZE)  # a window
        assert torch.equal(out, ref_out)
        cover, ref_cover = paint.full()[:, 0], ref_paint.full()[:, 0]
        assert float(ref_cover.max()) > 0.9 and torch.equal(cover, ref_cover)
        inside = ref_cover > 0
        assert torch.equal(paint.full()[:, 1][inside], ref_paint.full()[:, 1][inside])


def test_the_cavity_painted_at_another_size_is_the_frames_paint_resampled(monkeypatch) -> None:
    """At a detail size (or a smaller one) the window's paint, resampled, paints what the whole
    frame's paint bilinearly resized (``F.interpolate``) painted."""
    import torch.nn.functional as F

    rest = torch.cat([_face(gap=4.0), _turned(_face(gap=3.0), 0.3, (2, 1))])
    moved = torch.cat([_face(gap=4.0, drop=8.0), _turned(_face(gap=3.0, drop=6.0), 0.3, (2, 1))])
    flow = torch.zeros(2, 2, SIZE, SIZE)
    _, paint = mouth_interior(flow, rest, moved)
    _, ref = _whole_frame(monkeypatch, lambda: mouth_interior(flow, rest, moved))
    lips = torch.tensor([[0.8, 0.3, 0.3], [0.6, 0.4, 0.2]])
    for size in ((210, 210), (420, 420), (100, 75), (37, 37), (SIZE + 1, SIZE - 1)):
        frames = torch.rand(2, 3, *size) * 2 - 1
        big = F.interpolate(ref.full(), size=size, mode="bilinear", align_corners=False)
        want = frames + big[:, :1] * (cavity_colour(lips)[:, :, None, None] * big[:, 1:]
                                      * 2 - 1 - frames)
        got = paint_cavity(frames.clone(), paint.resized(size), lips)
        assert float((got - want).abs().max()) < 1e-5, size
    with pytest.raises(ValueError, match="cavity paint"):
        paint_cavity(torch.zeros(2, 3, 50, 50), paint, lips)


def test_painting_a_frame_that_needs_a_gradient_leaves_it_alone() -> None:
    """In training the frames carry a gradient: the paint goes on a copy, and flows back."""
    _, paint = mouth_interior(torch.zeros(1, 2, SIZE, SIZE), _face(gap=4.0),
                              _face(gap=4.0, drop=8.0))
    frames = torch.zeros(1, 3, SIZE, SIZE, requires_grad=True)
    out = paint_cavity(frames, paint, torch.tensor([[0.8, 0.4, 0.4]]))
    assert float(frames.detach().abs().max()) == 0.0 and float(out.detach().abs().max()) > 0.5
    out.sum().backward()
    assert frames.grad is not None and float(frames.grad.min()) < 0.5  # covered: less gradient


def test_the_detail_render_is_the_same_with_and_without_autograd() -> None:
    """The detail size is rendered a frame at a time into one output without autograd, and
    gathered with it: the frames, the aux maps and the gradient agree."""
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.config import ModelConfig
    from dtgan_plugin.models.face_geometry import face_frame

    from test_landmark_inference import SMALL_LMK

    cfg = ModelConfig.from_dict({**SMALL_LMK, "resolution": SIZE, "generator_cfg": {
        **SMALL_LMK["generator_cfg"], "mouth_cavity": True, "motion_correction": False}})
    torch.manual_seed(0)
    gen = build_model(cfg).eval().generator
    rest = _face(gap=4.0)
    _, lin = face_frame(rest)
    d = torch.zeros(1, 3, cfg.dyn_dim)
    for i, drop in enumerate((0.0, 8.0, 5.0)):
        offsets = ((_face(gap=4.0, drop=drop) - rest).unsqueeze(-2) * lin[:, None]).sum(-1)
        d[0, i, cfg.encoder.hidden:] = offsets.flatten()
    target = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    detail = torch.nn.functional.interpolate(target, size=(150, 150), mode="bilinear")
    feats = gen.encode_target(target, rest)
    with torch.no_grad():
        plain, aux = gen.render(feats, d, detail=detail, return_aux=True)
        lean, geo = gen.render(feats, d, detail=detail, return_aux=True, geometry_only=True)
    big = detail.clone().requires_grad_(True)
    graded, gaux = gen.render(gen.encode_target(target, rest), d, detail=big, return_aux=True)
    assert plain.shape == (1, 3, 3, 150, 150) and aux["warped"].shape[-2:] == (150, 150)
    assert torch.allclose(plain, graded.detach(), atol=1e-6) and torch.equal(plain, lean)
    assert torch.allclose(aux["warped"], gaux["warped"].detach(), atol=1e-6)
    assert set(geo) == {"points"} and torch.equal(geo["points"], aux["points"])
    assert float((plain[0, 1] - plain[0, 0]).abs().max()) > 0.1  # the mouth opened: painted
    graded.sum().backward()
    assert big.grad is not None and float(big.grad.abs().sum()) > 0
