"""Still images: read a target image as RGB float32 ``(3, H, W)`` in [0, 1], write one atomically.

Pillow, not ``kornia.io`` (which DESIGN.md names): Pillow reads PNG, JPEG, WebP, BMP and TIFF in
every mode users meet (palette, grayscale, 1-bit, CMYK, 16-bit grayscale, EXIF-rotated phone
photos) and its failures are easy to report. Pillow reduces 16-bit *colour* PNG/TIFF to 8 bits,
so those are decoded by ffmpeg to ``rgba64le`` instead, keeping full precision (scaled by 65535).

Alpha: a transparent image has no single right answer for the generator, so it is refused by
default with a message naming the fix; ``alpha="composite"`` flattens over white, ``"drop"``
discards alpha. An alpha channel that is fully opaque carries nothing and is accepted silently.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from pathlib import Path

import numpy as np
import torch

from dtgan_plugin.errors import MediaError, OptionError
from dtgan_plugin.stream import PadKind, StreamInfo

from .ffmpeg_bin import base_cmd, last_meaningful_line
from .video import IMAGE_EXTENSIONS, check_input_file

ALPHA_MODES = ("refuse", "composite", "drop")
_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF"}


def _open_pil(path: str):
    """Open with Pillow and force a full decode, mapping every failure to MediaError."""
    from PIL import Image, UnidentifiedImageError

    check_input_file(path, what="image")
    try:
        im = Image.open(path)
        # load() clears the tile list that tells a 16-bit colour file apart: note it first
        im.info["dtgan_rawmode"] = _rawmode(im)
        if not _is_16bit_color(im):
            im.load()
    except UnidentifiedImageError:
        raise MediaError(f"{path!r} is not an image Pillow can read",
                         hint=f"use one of {', '.join(IMAGE_EXTENSIONS)}") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise MediaError(f"cannot read image {path!r}: {str(err).splitlines()[0] if str(err) else 'corrupt data'}",
                         hint="the file is truncated or corrupt; re-export it") from None
    except Image.DecompressionBombError:
        raise MediaError(f"image {path!r} is too large to decode safely",
                         hint="downscale it first") from None
    return im


def _rawmode(im) -> str:
    """The decoder's raw mode (``RGB;16B`` for a 16-bit RGB PNG), or ''."""
    tile = getattr(im, "tile", None) or []
    if not tile:
        return ""
    args = tile[0].args if hasattr(tile[0], "args") else tile[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _is_16bit_color(im) -> bool:
    """True for 16-bit-per-channel colour data, which Pillow would reduce to 8 bits."""
    rawmode = im.info.get("dtgan_rawmode", "")
    return ";16" in rawmode and im.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _decode_16bit_color(path: str, width: int, height: int) -> np.ndarray:
    """Decode a 16-bit colour image with ffmpeg: (H, W, 4) float64 in [0, 1] (alpha last)."""
    cmd = base_cmd() + ["-nostdin", "-i", os.path.abspath(path), "-frames:v", "1", "-f",
                        "rawvideo", "-pix_fmt", "rgba64le", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    want = width * height * 8
    if proc.returncode != 0 or len(proc.stdout) != want:
        reason = last_meaningful_line(proc.stderr.decode("utf-8", "replace").splitlines(),
                                      "unexpected output size")
        raise MediaError(f"cannot decode 16-bit image {path!r}: {reason}",
                         hint="convert it to 8-bit PNG first")
    arr = np.frombuffer(proc.stdout, dtype="<u2").reshape(height, width, 4)
    return arr.astype(np.float64) / 65535.0


def _to_float_array(im, path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB (H, W, 3) float64 in [0, 1], alpha (H, W) or None) for any Pillow mode."""
    from PIL import ImageOps

    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP/multi-page TIFF: the first frame is the image
    rawmode = im.info.get("dtgan_rawmode", "")
    if _is_16bit_color(im):
        # Pillow would truncate 16-bit colour to 8 bits
        arr = _decode_16bit_color(path, im.width, im.height)
        has_alpha = im.mode in ("RGBA", "LA", "PA") or "A" in rawmode.split(";")[0]
        return arr[..., :3], (arr[..., 3] if has_alpha else None)
    im = ImageOps.exif_transpose(im)  # phone photos store rotation in EXIF
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(im).astype(np.float64) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2), None
    if mode == "I":
        gray = np.asarray(im).astype(np.float64)
        # 32-bit integer images are 16-bit data in practice (PNG/TIFF loaders widen them)
        scale = 65535.0 if gray.max(initial=0) <= 65535 else 4294967295.0
        return np.repeat((gray / scale)[..., None], 3, axis=2), None
    if mode == "F":
        gray = np.clip(np.asarray(im).astype(np.float64), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    if mode in ("1", "L"):
        gray = np.asarray(im.convert("L")).astype(np.float64) / 255.0
        return np.repeat(gray[..., None], 3, axis=2), None
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGBA")).astype(np.float64) / 255.0
        return arr[..., :3], arr[..., 3]
    return np.asarray(im.convert("RGB")).astype(np.float64) / 255.0, None


def read_image(path: str | os.PathLike, *, alpha: str = "refuse") -> torch.Tensor:
    """Read an image as RGB float32 (3, H, W) in [0, 1]; grayscale/palette/16-bit are converted.

    ``alpha``: ``"refuse"`` (default: MediaError for a transparent image), ``"composite"``
    (flatten over white) or ``"drop"`` (ignore the alpha channel).
    """
    if alpha not in ALPHA_MODES:
        raise OptionError(f"alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    path = os.fspath(path)
    im = _open_pil(path)
    try:
        rgb, a = _to_float_array(im, path)
    finally:
        im.close()
    if a is not None and not np.all(a >= 1.0):
        if alpha == "refuse":
            raise MediaError(f"image {path!r} has transparent pixels (an alpha channel)",
                             hint="pass alpha='composite' (--alpha composite) to flatten it over "
                                  "white, or alpha='drop' to ignore the alpha channel")
        if alpha == "composite":
            a3 = a[..., None]
            rgb = rgb * a3 + (1.0 - a3)
    out = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(torch.float32)
    return out.clamp_(0.0, 1.0)


def probe_image(path: str | os.PathLike) -> StreamInfo:
    """An image's size without decoding its pixels (kind IMAGE, one frame)."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    check_input_file(path, what="image")
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
            fmt = im.format
    except UnidentifiedImageError:
        raise MediaError(f"{path!r} is not an image Pillow can read",
                         hint=f"use one of {', '.join(IMAGE_EXTENSIONS)}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"cannot read image {path!r}: {err}",
                         hint="the file is truncated or corrupt; re-export it") from None
    if orientation in (5, 6, 7, 8):  # EXIF rotations by 90 degrees swap the sides
        width, height = height, width
    return StreamInfo(kind=PadKind.IMAGE, width=width, height=height, num_frames=1,
                      meta={"path": path, "format": fmt})


def _to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] or uint8 -> (H, W, 3) uint8, with a clear error for other shapes."""
    if not isinstance(image, torch.Tensor):
        raise MediaError(f"write_image expects a torch.Tensor (3, H, W), got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] < 1 or image.shape[2] < 1:
        raise MediaError(f"write_image expects an RGB tensor of shape (3, H, W), got {tuple(image.shape)}",
                         hint="permute (H, W, 3) arrays with .permute(2, 0, 1)")
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        u8 = image
    elif image.is_floating_point():
        u8 = torch.nan_to_num(image.float(), nan=0.0).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    else:
        raise MediaError(f"write_image expects float in [0, 1] or uint8, got {image.dtype}")
    return np.ascontiguousarray(u8.permute(1, 2, 0).numpy())


def write_image(path: str | os.PathLike, image: torch.Tensor, *, quality: int = 95) -> Path:
    """Write (3, H, W) float [0, 1] or uint8 to PNG/JPEG/WebP/BMP/TIFF atomically (temp + rename)."""
    from PIL import Image

    path = Path(os.fspath(path))
    ext = path.suffix.lower()
    if ext not in _PIL_FORMATS:
        raise OptionError(f"cannot write an image with extension {ext or '(none)'!r}",
                          hint=f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MediaError(f"output folder {str(parent)!r} does not exist",
                         hint="create it first (mkdir -p)")
    arr = _to_uint8_hwc(image)
    tmp = partial_name(path)
    try:
        # "xb": never clobber; created with the umask's normal permissions (mkstemp uses 0600)
        with open(tmp, "xb") as fh:
            kwargs = {"quality": quality} if _PIL_FORMATS[ext] in ("JPEG", "WEBP") else {}
            Image.fromarray(arr).save(fh, format=_PIL_FORMATS[ext], **kwargs)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def partial_name(path: Path) -> Path:
    """A unique temporary name beside ``path`` that keeps its extension: ``.name.partial-PID-XXXX.ext``."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{secrets.token_hex(3)}{path.suffix}")
