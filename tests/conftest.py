"""Shared fixtures: small clips and images made on the fly (nothing is downloaded)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# keep the 2-core CI machine responsive when tests run torch
os.environ.setdefault("OMP_NUM_THREADS", "2")

from dtgan_plugin.media.ffmpeg_bin import find_ffmpeg  # noqa: E402

# the suite writes nothing into the checkout: no hypothesis example database ...
try:
    from hypothesis import settings as _hyp_settings

    from hypothesis.configuration import set_hypothesis_home_dir

    _hyp_settings.register_profile("dtgan", database=None)
    _hyp_settings.load_profile("dtgan")
    # ... nor its cache of constants, which goes to .hypothesis/ even without a database
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "dtgan-hypothesis")
except ImportError:  # hypothesis is a test extra; tests that need it import it themselves
    pass


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """... and no pytest-benchmark storage folder (it makes one at start-up, even unused)."""
    if getattr(config.option, "benchmark_storage", None) == "file://./.benchmarks":
        config.option.benchmark_storage = f"file://{tempfile.gettempdir()}/dtgan-benchmarks"


#: a small model configuration (32 px) that loads and runs in milliseconds
SMALL_MODEL = {"resolution": 32,
               "encoder": {"widths": [8, 16, 16, 32], "feature_dim": 32, "hidden": 32},
               "generator_cfg": {"base_width": 8, "max_width": 32, "dyn_channels": 8}}


def small_checkpoint(path: Path, *, nudge: float = 0.0, at_rest: bool = False,
                     seed: int = 0) -> Path:
    """Save a fresh :data:`SMALL_MODEL`; ``nudge`` moves the generator off the identity (so the
    output depends on the dynamics), ``at_rest`` makes zero dynamics render the target."""
    import torch

    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.checkpoint import save_checkpoint
    from dtgan_plugin.models.config import ModelConfig

    gen = {**SMALL_MODEL["generator_cfg"], **({"identity_at_rest": True} if at_rest else {})}
    torch.manual_seed(seed)
    model = build_model(ModelConfig.from_dict({**SMALL_MODEL, "generator_cfg": gen}))
    if nudge:
        with torch.no_grad():
            for p in model.generator.parameters():
                p.add_(torch.randn_like(p) * nudge)
    save_checkpoint(path, model)
    return path


def make_clip(path: Path, *, frames: int = 30, size: int = 64, fps: int = 25,
              audio: bool = False, codec: str = "libx264", pattern: str = "testsrc2") -> Path:
    """Write a synthetic clip with ffmpeg's lavfi sources (optionally with a sine audio track)."""
    ffmpeg = find_ffmpeg()
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi",
           "-i", f"{pattern}=size={size}x{size}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    cmd += ["-frames:v", str(frames)]
    if codec == "ffv1":
        cmd += ["-c:v", "ffv1", "-pix_fmt", "bgr0"]
    else:
        cmd += ["-c:v", codec, "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-shortest"]
    cmd += [str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder for generated media."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def small_clip(clip_dir: Path) -> Path:
    """30 frames, 64x64, 25 fps, h264, no audio."""
    return make_clip(clip_dir / "small.mp4")


@pytest.fixture(scope="session")
def audio_clip(clip_dir: Path) -> Path:
    """50 frames, 64x64, 25 fps, h264 with an AAC sine track."""
    return make_clip(clip_dir / "audio.mp4", frames=50, audio=True)


@pytest.fixture(scope="session")
def late_tone_clip(clip_dir: Path) -> Path:
    """2 s, 64x64, 25 fps: silent for the first second, then a 440 Hz tone (audio sync tests)."""
    path = clip_dir / "late_tone.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x64:rate=25:duration=2", "-f", "lavfi", "-i",
                    "aevalsrc=if(gte(t\\,1)\\,0.5*sin(2*PI*440*t)\\,0):s=44100:d=2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(path)], check=True)
    return path


_AUDIO_RATE = 8000


def _decode_audio(path: Path, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """A file's audio from ``start`` (for ``seconds``, or to the end) as mono float32."""
    span = [] if seconds is None else ["-t", str(seconds)]
    raw = subprocess.run([find_ffmpeg(), "-v", "error", "-ss", str(start), "-i", str(path),
                          *span, "-vn", "-ac", "1", "-ar", str(_AUDIO_RATE), "-f", "f32le",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def audio_rms(path: Path, seconds: float, start: float = 0.0) -> float:
    """RMS of ``seconds`` of a file's audio from ``start``, decoded to mono float by ffmpeg."""
    x = _decode_audio(path, start, seconds)
    assert x.size > 0.9 * _AUDIO_RATE * seconds
    return float(np.sqrt(np.mean(x ** 2)))


def audio_seconds(path: Path) -> float:
    """Duration of a file's audio track, by decoding it."""
    return _decode_audio(path).size / _AUDIO_RATE


@pytest.fixture(scope="session")
def rgb_image(clip_dir: Path) -> Path:
    """A 80x48 RGB PNG with a gradient."""
    from PIL import Image

    y, x = np.mgrid[0:48, 0:80]
    arr = np.stack([x * 3 % 256, y * 5 % 256, (x + y) % 256], -1).astype(np.uint8)
    path = clip_dir / "target.png"
    Image.fromarray(arr).save(path)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m dtgan_plugin ARGS`` in a subprocess and capture its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "dtgan_plugin", *args], input=stdin,
                          capture_output=True, env=full_env, timeout=timeout)
