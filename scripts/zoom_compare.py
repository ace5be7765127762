"""Close-ups of the same region of several videos at the same frames, side by side.

For looking at a small artefact across releases or options: each video a column, each frame a
row, the region (output pixels) enlarged without smoothing so single pixels show::

    python scripts/zoom_compare.py --frames 88,93 --box 280,20,360,150 \\
        --labels "previous release,this release" -o docs/hair_edge.jpg prev.mkv now.mkv

The videos must share a size (``dtgan transfer`` outputs of one photo do).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dtgan_plugin.errors import DtganError, UsageError
from dtgan_plugin.media import probe, write_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_pictures import _check_out, _frames, _grid  # noqa: E402  (the README pictures')


def _ints(text: str, what: str, count: int | None = None) -> list[int]:
    """Comma-separated whole numbers, ``count`` of them when given."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--{what} must be whole numbers separated by commas, got {text!r}",
                         hint=f"e.g. --{what} " + ("280,20,360,150" if count else "88,93"))
    if count is not None and len(values) != count:
        raise UsageError(f"--{what} needs {count} numbers (x0,y0,x1,y1), got {len(values)}")
    return values


def _regions(path: Path, indices: list[int], box: list[int]) -> torch.Tensor:
    """The ``box`` region of each frame in ``indices`` of a video ``(N, 3, h, w)``."""
    count = probe(path).num_frames
    missing = [i for i in indices if count is not None and not 0 <= i < count]
    if missing:
        raise UsageError(f"{path} has no frame {missing[0]}", hint="pick frames the video has")
    x0, y0, x1, y1 = box
    return _frames(path, tuple(indices))[:, :, y0:y1, x0:x1]


def zoom_compare(videos: list[Path], labels: list[str], frames: list[int], box: list[int],
                 out: Path, scale: int = 4) -> Path:
    """Write the grid of ``box`` (x0, y0, x1, y1) at ``frames`` of each video to ``out``."""
    from PIL import Image

    _check_out(out)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or min(box) < 0:
        raise UsageError(f"--box must be x0,y0,x1,y1 with x0 < x1 and y0 < y1, got {box}")
    columns = [_regions(v, frames, box) for v in videos]
    if any(c.shape[-2:] != (y1 - y0, x1 - x0) for col in columns for c in col):
        raise UsageError(f"--box {box} reaches past a video's edge",
                         hint="pick a region inside every video")
    # square cells (the grid's), the region centred and enlarged without smoothing
    cell = max(x1 - x0, y1 - y0) * scale
    cells = []
    for r in range(len(frames)):
        row = []
        for col in columns:
            u8 = (col[r].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            im = Image.fromarray(np.ascontiguousarray(u8)).resize(
                ((x1 - x0) * scale, (y1 - y0) * scale), Image.Resampling.NEAREST)
            square = Image.new("RGB", (cell, cell), "white")
            square.paste(im, ((cell - im.width) // 2, (cell - im.height) // 2))
            row.append(square)
        cells.append(row)
    grid = _grid(cells, labels, cell, [f"frame {i}" for i in frames])
    return write_image(out, torch.from_numpy(np.array(grid)).permute(2, 0, 1), quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", type=Path, help="videos of the same size")
    ap.add_argument("--frames", required=True, help="frame numbers, e.g. 88,93")
    ap.add_argument("--box", required=True, help="the region x0,y0,x1,y1 in output pixels")
    ap.add_argument("--labels", help="the columns' labels, comma-separated (default: names)")
    ap.add_argument("--scale", type=int, default=4, help="enlargement (default 4)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the picture (.jpg, .png)")
    args = ap.parse_args()
    try:
        labels = args.labels.split(",") if args.labels else [v.stem for v in args.videos]
        if len(labels) != len(args.videos):
            raise UsageError(f"{len(labels)} labels for {len(args.videos)} videos")
        if not 1 <= args.scale <= 16:
            raise UsageError(f"--scale must be 1 to 16, got {args.scale}")
        print(zoom_compare(args.videos, labels, _ints(args.frames, "frames"),
                           _ints(args.box, "box", 4), args.out, args.scale))
    except DtganError as err:
        sys.exit(f"zoom_compare: {err}")


if __name__ == "__main__":
    main()
