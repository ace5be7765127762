"""``dtgan demo``: the default model on a shipped demo clip and target, with pictures.

The demo source clip and target image are rendered by our own procedural renderer
(:mod:`dtgan_plugin.synthfaces`), so they carry no licence questions; they were made
by :func:`build_demo_assets` and are shipped in ``dtgan_plugin/assets``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_SOURCE = ASSETS / "demo_source.mp4"
DEMO_TARGET = ASSETS / "demo_target.png"
DEMO_SEED = 7


def build_demo_assets(out_dir: Path = ASSETS, *, size: int = 128, frames: int = 64) -> None:
    """Render the demo source (two expressions, head motion) and a different target face."""
    from .media import VideoWriter, write_image
    from . import synthfaces as sf

    g = torch.Generator().manual_seed(DEMO_SEED)
    ids = sf.identities_for(DEMO_SEED, [3, 11])
    params, _ = sf.sample_dynamics(1, frames, g, classes=["happy"], concat=True)
    src = sf.render(ids[0:1] if hasattr(ids, "__getitem__") else ids, params, size)[0]
    tgt = sf.render_neutral(ids[1:2] if hasattr(ids, "__getitem__") else ids, size)
    tgt = tgt.reshape(-1, 3, size, size)[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out_dir / DEMO_SOURCE.name, fps=25, width=size, height=size,
                     codec="h264", crf=16) as w:
        w.write(src)
    write_image(out_dir / DEMO_TARGET.name, tgt)


def _side_by_side_gif(source: Path, target: Path, output: Path, gif: Path, size: int) -> None:
    """Stream source | target | output into a GIF, chunk by chunk."""
    from .inference import fit_image
    from .media import VideoWriter, open_video, read_image

    tgt = fit_image(read_image(target), size)
    with open_video(source) as src_r, open_video(output) as out_r:
        fps = src_r.info.fps
        with VideoWriter(gif, fps=fps, width=size * 3, height=size, codec="gif") as w:
            for a, b in zip(src_r.chunks(16), out_r.chunks(16)):
                sa = fit_image(a.frames, size)
                sb = fit_image(b.frames, size)
                n = min(len(sa), len(sb))
                row = torch.cat([sa[:n], tgt.expand(n, -1, -1, -1), sb[:n]], dim=-1)
                w.write(row)


def run_demo(out_dir: Path, *, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Run the default model on the demo inputs; returns the paths written."""
    from .api import transfer
    from .errors import CheckpointError, MediaError

    out_dir.mkdir(parents=True, exist_ok=True)
    if not DEMO_SOURCE.exists() or not DEMO_TARGET.exists():
        raise MediaError("the demo clip or target image is missing from the installed package",
                         hint="reinstall dtgan-plugin")
    video = out_dir / "out.mp4"
    gif = out_dir / "side_by_side.gif"
    try:
        from .models.checkpoint import resolve_checkpoint

        resolve_checkpoint("default")
        have_default = True
    except CheckpointError as err:
        have_default = False
        print(f"dtgan demo: {err}; running a plain graph demo instead", file=sys.stderr)
    if have_default:
        stats = transfer(DEMO_SOURCE, DEMO_TARGET, video, checkpoint="default", device=device,
                         size=128, progress=progress, crop="none")  # whole procedural frames
        _side_by_side_gif(DEMO_SOURCE, DEMO_TARGET, video, gif, 128)
        return {"video": video, "gif": gif, "frames": stats.frames}
    from .graph import Graph

    graph = Graph.parse("[0]split[a][b];[a]hflip[c];[b][c]dtgan.stack[out]",
                        inputs=["0"], outputs=["out"])
    stats = graph.run(["%s" % DEMO_SOURCE], {"out": str(video)}, progress=progress)
    return {"video": video, "frames": stats.frames}
