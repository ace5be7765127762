"""``--backend torch|onnxruntime`` (issue 16): the CLI commands, the graph stages, batch and the
API run the shipped model through onnxruntime with the same frames as torch, and refuse what the
backend cannot do in one line.

Every export made on demand goes into a temporary ``DTGAN_CACHE_DIR``, never ``~/.cache``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'dtgan-plugin[onnx]')")
pytest.importorskip("onnxruntime",
                    reason="onnxruntime is not installed (pip install 'dtgan-plugin[onnx]')")

from dtgan_plugin.api import Transferer, extract_dynamics, transfer  # noqa: E402
from dtgan_plugin.errors import MissingExtraError, OptionError  # noqa: E402
from dtgan_plugin.export.ort_backend import OrtModel  # noqa: E402

from conftest import make_clip, run_cli  # noqa: E402

TOL = 1e-4
ONE_STEP = 1  # uint8 levels: one step of 1/255


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary DTGAN_CACHE_DIR for this module (in-process and for the subprocesses)."""
    root = tmp_path_factory.mktemp("dtgan_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTGAN_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames, 64x64 (the shipped model's size), lossless."""
    return make_clip(tmp_path_factory.mktemp("src") / "src.mkv", frames=24, codec="ffv1")


def _env(cache: Path) -> dict[str, str]:
    return {"DTGAN_CACHE_DIR": str(cache)}


def _frames(path: Path) -> np.ndarray:
    """Every decoded frame as uint8 (T, 3, H, W)."""
    from dtgan_plugin.media import open_video

    with open_video(path) as reader:
        chunks = [c.frames for c in reader.chunks(64)]
    return torch.cat(chunks).mul(255).round().to(torch.uint8).numpy()


def _one_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode().strip().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_cli_transfer_onnxruntime_matches_torch(tmp_path: Path, cache: Path, clip: Path,
                                                rgb_image: Path) -> None:
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / f"{backend}.mkv"
        res = run_cli("transfer", "-s", str(clip), "-t", str(rgb_image), "-o",
                      str(outs[backend]), "--crop", "none", "--codec", "ffv1", "--no-progress",
                      "--backend", backend, "--checkpoint", "cartoon64", env=_env(cache))
        assert res.returncode == 0, res.stderr.decode()
    a, b = _frames(outs["torch"]), _frames(outs["onnxruntime"])
    assert a.shape == b.shape == (24, 3, 64, 64)
    diff = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
    print(f"\n[backend parity] dtgan transfer ffv1 frames: max {diff} uint8 step(s)")
    assert diff <= ONE_STEP
    # the shipped model was exported once, into the cache named by its fingerprint
    exports = [p.parent.name for p in (cache / "onnx").glob("*/manifest.json")]
    assert len(exports) == 1


def test_cli_dynamics_onnxruntime_matches_torch(tmp_path: Path, cache: Path,
                                                clip: Path) -> None:
    from dtgan_plugin.dynfile import DynamicsFile

    files = {}
    for backend in ("torch", "onnxruntime"):
        files[backend] = tmp_path / f"{backend}.dyn.safetensors"
        res = run_cli("dynamics", "-s", str(clip), "-o", str(files[backend]), "--crop", "none",
                      "--no-progress", "--backend", backend, "--checkpoint", "cartoon64", env=_env(cache))
        assert res.returncode == 0, res.stderr.decode()
    a, b = DynamicsFile(files["torch"]), DynamicsFile(files["onnxruntime"])
    assert a.meta["checkpoint"] == b.meta["checkpoint"]
    va = torch.cat([c.vectors for c in a.chunks(64)])
    vb = torch.cat([c.vectors for c in b.chunks(64)])
    assert va.shape == vb.shape == (24, a.dim)
    assert (va - vb).abs().max().item() <= TOL


def test_transferer_onnxruntime_matches_torch_on_64_frames(cache: Path) -> None:
    gen = torch.Generator().manual_seed(11)
    base = torch.rand(3, 64, 64, generator=gen)
    drift = torch.linspace(0, 1, 64).view(-1, 1, 1, 1)
    src = (base + 0.3 * drift * torch.rand(64, 3, 64, 64, generator=gen)).clamp(0, 1)
    target = torch.rand(3, 64, 64, generator=gen)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        tr = Transferer(target, "cartoon64", device="cpu", backend=backend)
        outs[backend] = torch.cat([*(tr.push(part) for part in src.split(16)), tr.flush()])
        if backend == "onnxruntime":
            assert isinstance(tr.model, OrtModel)
    assert outs["torch"].shape == outs["onnxruntime"].shape == (64, 3, 64, 64)
    diff = (outs["torch"] - outs["onnxruntime"]).abs().max().item()
    print(f"\n[backend parity] Transferer 64 frames: max abs {diff:.3g}")
    assert diff <= TOL


def test_graph_stages_take_the_backend_option(tmp_path: Path, cache: Path, clip: Path,
                                              rgb_image: Path) -> None:
    out = tmp_path / "graph.mkv"
    text = ("[0]dtgan.dynamics=backend=onnxruntime:checkpoint=cartoon64[d];"
            "[1][d]dtgan.transfer=backend=onnxruntime:checkpoint=cartoon64[out]")
    res = run_cli("graph", text, "-i", str(clip), "-i", str(rgb_image), "-o", str(out),
                  "--codec", "ffv1", "--no-progress", env=_env(cache))
    assert res.returncode == 0, res.stderr.decode()
    assert _frames(out).shape == (24, 3, 64, 64)
    bad = run_cli("graph", "[0]dtgan.dynamics=backend=tensorrt[d];[1][d]dtgan.transfer[out]",
                  "-i", str(clip), "-i", str(rgb_image), "-o", str(tmp_path / "x.mkv"),
                  env=_env(cache))
    assert bad.returncode == 2
    assert "tensorrt" in bad.stderr.decode() and "onnxruntime" in bad.stderr.decode()


def test_graph_stage_refuses_a_cuda_run() -> None:
    from dtgan_plugin.filters.base import RunContext
    from dtgan_plugin.filters.model_stages import DynamicsStage

    stage = DynamicsStage(backend="onnxruntime")
    stage.setup(RunContext(device="cuda:0"))
    with pytest.raises(OptionError, match="--device cpu"):
        stage.configure([])


def test_batch_runs_on_onnxruntime(tmp_path: Path, cache: Path, clip: Path,
                                   rgb_image: Path) -> None:
    sources, targets = tmp_path / "src", tmp_path / "tgt"
    sources.mkdir()
    targets.mkdir()
    shutil.copy(clip, sources / "a.mkv")
    shutil.copy(rgb_image, targets / "t.png")
    res = run_cli("batch", "--sources", str(sources), "--targets", str(targets), "--out-dir",
                  str(tmp_path / "out"), "--backend", "onnxruntime", "--crop", "none",
                  "--checkpoint", "cartoon64", "--no-progress", "--json", env=_env(cache))
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads(res.stdout)
    assert (summary["done"], summary["failed"], summary["frames"]) == (1, 0, 24)
    assert _frames(tmp_path / "out" / "a__t.mp4").shape[0] == 24


@pytest.mark.parametrize("command", ["transfer", "dynamics", "batch"])
def test_cli_refuses_cuda_and_unknown_backends(tmp_path: Path, cache: Path, clip: Path,
                                               rgb_image: Path, command: str) -> None:
    args = {"transfer": ["transfer", "-s", str(clip), "-t", str(rgb_image), "-o",
                         str(tmp_path / "o.mkv")],
            "dynamics": ["dynamics", "-s", str(clip), "-o", str(tmp_path / "o.dyn.safetensors")],
            "batch": ["batch", "--sources", str(clip.parent), "--targets",
                      str(rgb_image.parent), "--out-dir", str(tmp_path / "out")]}[command]
    res = run_cli(*args, "--backend", "tensorrt", env=_env(cache))
    assert res.returncode == 2
    line = _one_line(res.stderr)
    assert "--backend" in line and "tensorrt" in line and "onnxruntime" in line
    res = run_cli(*args, "--backend", "onnxruntime", "--device", "cuda", "--no-progress",
                  env=_env(cache))
    assert res.returncode == 2, res.stderr.decode()
    assert "runs on the CPU" in _one_line(res.stderr)
    assert not any(tmp_path.glob("o.*"))


def test_api_refuses_cuda_and_unknown_backends(tmp_path: Path, clip: Path,
                                               rgb_image: Path) -> None:
    with pytest.raises(OptionError, match="runs on the CPU"):
        Transferer(rgb_image, device="cuda", backend="onnxruntime")
    with pytest.raises(OptionError, match="unknown backend 'tensorrt'"):
        Transferer(rgb_image, backend="tensorrt")
    with pytest.raises(OptionError, match="unknown backend"):
        transfer(clip, rgb_image, tmp_path / "o.mkv", backend="ONNX", crop="none")
    with pytest.raises(OptionError, match="runs on the CPU"):
        extract_dynamics(clip, tmp_path / "o.dyn.safetensors", device="cuda:1",
                         backend="onnxruntime", crop="none")
    assert list(tmp_path.iterdir()) == []


def test_the_landmark_default_on_onnxruntime_is_one_clear_error(tmp_path: Path, cache: Path,
                                                                clip: Path,
                                                                rgb_image: Path) -> None:
    # the real-face default solves a spline per frame, which stock ONNX cannot express
    res = run_cli("transfer", "-s", str(clip), "-t", str(rgb_image), "-o",
                  str(tmp_path / "o.mkv"), "--crop", "none", "--backend", "onnxruntime",
                  "--no-progress", env=_env(cache))
    assert res.returncode != 0
    line = _one_line(res.stderr)
    assert "landmark model" in line and "cartoon64" in line
    assert not any(tmp_path.glob("o.*"))


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                             rgb_image: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError) as err:
        Transferer(rgb_image, backend="onnxruntime")
    text = str(err.value)
    assert "pip install 'dtgan-plugin[onnx]'" in text and "\n" not in text
