"""The one set of argparse validators and shared flags every ``dtgan`` command uses.

A validator turns the flag's text into a value or raises ``argparse.ArgumentTypeError``, which
the parser reports as one usage line (exit code 2). The flag helpers take anything with
``add_argument`` (a parser or an argument group), so ``batch`` keeps its help sections.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any, Callable

from ..errors import UsageError
from ..media.image import ALPHA_MODES
from ..models.head_pose import MAX_HEAD
from ..stream import DEFAULT_CHUNK

#: the ways an image of another size or aspect is fitted to the model's square
FIT_MODES = ("crop", "pad", "stretch")
#: inference backends (``export.ort_backend.BACKENDS``, written out: this module stays light)
BACKENDS = ("torch", "onnxruntime")
#: a frame-rate flag above this is a typo, not a frame rate (and would blow up frame counts)
MAX_FPS = 1000.0


def whole_number(text: str) -> int:
    """Any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _at_least(text: str, low: int, what: str) -> int:
    """An integer >= ``low``; the error says ``expected WHAT``."""
    value = whole_number(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _at_least(text, 1, "a positive number")


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    return _at_least(text, 0, "a number >= 0")


def detail_size(text: str) -> int | str:
    """``auto`` or an integer >= 0 (``--detail``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _at_least(text, 0, "'auto' or a number of pixels >= 0")
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels >= 0, got "
                                         f"{text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """A validator for integers >= ``low``."""
    def check(text: str) -> int:
        return _at_least(text, low, f"a number >= {low}")

    check.__name__ = f"int_at_least_{low}"
    return check


def finite_float(text: str) -> float:
    """A real number; nan and inf are refused (they would render black frames)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fps(text: str) -> float:
    """A frame rate: finite, > 0 and at most :data:`MAX_FPS`."""
    value = positive_float(text)
    if value > MAX_FPS:
        raise argparse.ArgumentTypeError(f"frame rate {text} is above {MAX_FPS:g}")
    return value


def amplify(text: str) -> float:
    """A motion-strength factor: any finite number (0 still, 1 as the source)."""
    return finite_float(text)


def head_motion(text: str) -> float:
    """How much of the source's head motion to keep, from 0 to MAX_HEAD (``--head``)."""
    value = finite_float(text)
    if not 0.0 <= value <= MAX_HEAD:
        raise argparse.ArgumentTypeError(f"head must be between 0 and {MAX_HEAD:g}, got {text}")
    return value


def size(text: str) -> int:
    """An output side length in pixels (>= 1)."""
    return positive_int(text)


def crf(text: str) -> int:
    """An encoder quality from 0 (lossless) to 63."""
    value = whole_number(text)
    if not 0 <= value <= 63:
        raise argparse.ArgumentTypeError(f"CRF must be between 0 and 63, got {value}")
    return value


def threads(text: str) -> int | str:
    """``auto`` or a positive number of threads."""
    return text if text == "auto" else positive_int(text)


# --- shared flags -----------------------------------------------------------------------------

def add_device_flag(p: Any) -> None:
    """``--device``."""
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")


def add_chunk_flag(p: Any) -> None:
    """``--chunk-size``."""
    p.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK, metavar="N",
                   help=f"frames per chunk (default {DEFAULT_CHUNK})")


def add_backend_flag(p: Any) -> None:
    """``--backend``."""
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="inference backend: torch (default) or onnxruntime (CPU only, with "
                        "--device auto or cpu; needs pip install 'dtgan-plugin[onnx]'; the "
                        "checkpoint is exported to ONNX once, into $DTGAN_CACHE_DIR or "
                        "~/.cache/dtgan)")


def add_model_flags(p: Any, *, chunk: bool = True) -> None:
    """The model flags: ``--checkpoint --device --backend --reference-frame --fit
    [--chunk-size]``."""
    p.add_argument("--checkpoint", default="default",
                   help="'default' (or a plugin's named model) or a .safetensors path")
    add_device_flag(p)
    add_backend_flag(p)
    p.add_argument("--reference-frame", type=nonneg_int, default=0, metavar="N",
                   help="source frame whose repetition forms the static sequence (default 0)")
    p.add_argument("--fit", default="crop", choices=FIT_MODES,
                   help="how images of another size/aspect are fitted (default crop)")
    if chunk:
        add_chunk_flag(p)


def add_render_flags(p: Any) -> None:
    """The dynamics edits and output size: ``--amplify --smooth --size --alpha``."""
    p.add_argument("--amplify", type=amplify, default=1.0, metavar="X",
                   help="motion strength (0 still, 1 as source, >1 exaggerated)")
    p.add_argument("--head", type=head_motion, default=1.0, metavar="X",
                   help="how much of the source's head motion to keep, landmark models only: "
                        "1 (default) all, 0 the head stays put and only the face's expression "
                        "moves, 0.5 half")
    p.add_argument("--smooth", action="store_true", help="One-Euro smoothing of the dynamics")
    p.add_argument("--size", type=size, default=None, metavar="PX",
                   help="upscale the output to PX x PX (default: the model's resolution)")
    p.add_argument("--alpha", default="refuse", choices=ALPHA_MODES,
                   help="a target with transparent pixels: refuse it (default), composite it "
                        "over white, or drop the alpha channel")


def add_face_flags(p: Any, *, paste_back: bool = True, landmarker: bool = True) -> None:
    """The real-face flags: ``--crop --face [--paste-back/--no-paste-back] [--landmarker]``."""
    p.add_argument("--crop", default="auto", choices=("auto", "face", "none"),
                   help="auto (default): find and crop the faces when a face landmarker is "
                        "installed and the target has a face, else whole frames (with a "
                        "notice); face: insist on it; none: whole frames")
    p.add_argument("--face", type=nonneg_int, default=0, metavar="N",
                   help="with several faces, the N-th largest (default 0: the largest)")
    if paste_back:
        p.add_argument("--paste-back", action=argparse.BooleanOptionalAction, default=True,
                       help="paste the animated face back into the full-size photo (default "
                            "on; the output then has the photo's size)")
        p.add_argument("--detail", type=detail_size, default="auto", metavar="auto|PX",
                       help="with paste-back, warp the photo's face at PX pixels: auto "
                            "(default) twice its size in the photo, at most 512, for a sharp "
                            "face; 0 the model's resolution, upscaled (faster, softer)")
    if landmarker:
        p.add_argument("--landmarker", default="mediapipe", metavar="NAME",
                       help="registered face landmarker (default mediapipe)")


def add_encode_flags(p: Any, *, codecs: str = "auto (by extension), h264, h264rgb, ffv1, "
                                              "vp9, gif, png, y4m") -> None:
    """The encoder flags: ``--codec --crf``."""
    p.add_argument("--codec", default="auto", help=codecs)
    p.add_argument("--crf", type=crf, default=None, metavar="N",
                   help="encoder quality, 0 (lossless) to 63 (default: the codec's)")


def check_output_path(path: str, flag: str = "-o") -> None:
    """Refuse an output that is an existing folder before any work starts."""
    if path != "-" and os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder", hint="give a file name for the output")
