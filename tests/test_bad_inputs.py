"""Bad input to the Python API: every case is one clear DtganError, never a raw exception.

A parametrised matrix over ``transfer``, ``extract_dynamics`` and ``Transferer``: the cases of
issue 13 (#2 non-finite dynamics and fps, #8 size='big' and a directory output, #9 alpha) and
the ones that already failed cleanly. No model is loaded for cases refused by argument checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import DtganError, MediaError, OptionError, UsageError
from dtgan_plugin.models import build_model
from dtgan_plugin.models.checkpoint import save_checkpoint
from dtgan_plugin.models.config import ModelConfig

from conftest import make_clip

SMALL = {"resolution": 32, "encoder": {"widths": [8, 16, 16, 32], "feature_dim": 32, "hidden": 32},
         "generator_cfg": {"base_width": 8, "max_width": 32, "dyn_channels": 8}}


class Files:
    """Paths every case may use, made once per module."""

    def __init__(self, root: Path, rgb_image: Path) -> None:
        self.root = root
        self.target = rgb_image
        torch.manual_seed(0)
        self.ckpt = root / "small.safetensors"
        save_checkpoint(self.ckpt, build_model(ModelConfig.from_dict(SMALL)))
        self.src = make_clip(root / "src.mp4", frames=6, size=32)
        self.out = root / "out.mkv"
        self.dir = root / "a_directory"
        self.dir.mkdir()
        self.rgba = root / "rgba.png"
        from PIL import Image

        arr = np.full((16, 16, 4), 128, np.uint8)
        arr[:8, :, 3] = 0
        Image.fromarray(arr, "RGBA").save(self.rgba)

    def dyn(self, name: str, vectors: torch.Tensor, fps: str = "25") -> Path:
        """A dynamics file with the given vectors and declared fps."""
        from safetensors.torch import save_file

        path = self.root / f"{name}.dyn.safetensors"
        save_file({"vectors": vectors.contiguous()}, str(path),
                  metadata={"format": "dtgan-dynamics", "format_version": "1", "fps": fps})
        return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, rgb_image: Path) -> Files:
    return Files(tmp_path_factory.mktemp("bad"), rgb_image)


def _nan_vectors() -> torch.Tensor:
    v = torch.zeros(10, 32)
    v[5:8] = float("nan")
    return v


def _transfer(**kw: Any) -> Callable[[Files], Any]:
    def call(f: Files) -> Any:
        from dtgan_plugin import transfer

        args = {"source": f.src, "target": f.target, "output": f.out,
                "checkpoint": str(f.ckpt), "device": "cpu", "progress": False}
        args.update({k: (v(f) if callable(v) else v) for k, v in kw.items()})
        return transfer(args.pop("source"), args.pop("target"), args.pop("output"), **args)
    return call


def _extract(**kw: Any) -> Callable[[Files], Any]:
    def call(f: Files) -> Any:
        from dtgan_plugin import extract_dynamics

        args = {"source": f.src, "output": f.root / "x.dyn.safetensors",
                "checkpoint": str(f.ckpt), "device": "cpu", "progress": False}
        args.update({k: (v(f) if callable(v) else v) for k, v in kw.items()})
        return extract_dynamics(args.pop("source"), args.pop("output"), **args)
    return call


def _transferer(**kw: Any) -> Callable[[Files], Any]:
    def call(f: Files) -> Any:
        from dtgan_plugin import Transferer

        args = {"target": f.target, "checkpoint": str(f.ckpt), "device": "cpu"}
        args.update({k: (v(f) if callable(v) else v) for k, v in kw.items()})
        return Transferer(args.pop("target"), args.pop("checkpoint"), **args)
    return call


def _push(frames: Any) -> Callable[[Files], Any]:
    def call(f: Files) -> Any:
        from dtgan_plugin import Transferer

        return Transferer(f.target, str(f.ckpt), device="cpu").push(frames)
    return call


# (id, call, expected error class, text the message or hint must hold)
CASES: list[tuple[str, Callable[[Files], Any], type[DtganError], str]] = [
    # transfer(): argument checks (issue 13 #8)
    ("size-word", _transfer(size="big"), OptionError, "size"),
    ("size-zero", _transfer(size=0), OptionError, "size"),
    ("size-negative", _transfer(size=-4), OptionError, "size"),
    ("size-fraction", _transfer(size=96.5), OptionError, "size"),
    ("size-too-big", _transfer(size=5000), OptionError, "4096"),
    ("size-bool", _transfer(size=True), OptionError, "size"),
    ("amplify-nan", _transfer(amplify=float("nan")), OptionError, "amplify"),
    ("amplify-inf", _transfer(amplify=float("inf")), OptionError, "amplify"),
    ("amplify-word", _transfer(amplify="lots"), OptionError, "amplify"),
    ("amplify-too-big", _transfer(amplify=11.0), OptionError, "amplify"),
    ("fit-unknown", _transfer(fit="zoom"), OptionError, "crop"),
    ("alpha-unknown", _transfer(alpha="maybe"), OptionError, "composite"),
    ("reference-negative", _transfer(reference_frame=-1), OptionError, "reference_frame"),
    ("reference-word", _transfer(reference_frame="first"), OptionError, "reference_frame"),
    ("chunk-zero", _transfer(chunk_size=0), OptionError, "chunk_size"),
    ("smooth-word", _transfer(smooth="yes"), OptionError, "smooth"),
    ("keep-audio-word", _transfer(keep_audio="no"), OptionError, "keep_audio"),
    ("target-not-a-path", _transfer(target=42), UsageError, "target"),
    ("output-directory", _transfer(output=lambda f: f.dir), UsageError, "directory"),
    ("no-source-no-dynamics", _transfer(source=None), UsageError, "source"),
    # transfer(): files (several failed cleanly before; kept so they stay so)
    ("source-missing", _transfer(source=lambda f: f.root / "nope.mp4"), MediaError, "not found"),
    ("target-missing", _transfer(target=lambda f: f.root / "nope.png"), MediaError, "nope.png"),
    ("checkpoint-missing", _transfer(checkpoint=lambda f: str(f.root / "no.safetensors")),
     DtganError, "no.safetensors"),
    ("reference-past-end", _transfer(reference_frame=99), UsageError, "past the end"),
    ("device-unknown", _transfer(device="tpu"), UsageError, "device"),
    # issue 13 #9: a transparent target names a real option; composite/drop are that option
    ("alpha-refused", _transfer(target=lambda f: f.rgba), MediaError, "alpha='composite'"),
    # issue 13 #2: non-finite dynamics and impossible frame rates
    ("dynamics-nan", _transfer(source=None, dynamics=lambda f: f.dyn("nan", _nan_vectors())),
     MediaError, "frame 5"),
    ("dynamics-fps-zero", _transfer(source=None, dynamics=lambda f: f.dyn(
        "fps0", torch.zeros(4, 32), "0")), MediaError, "fps"),
    ("dynamics-fps-1e9", _transfer(source=None, dynamics=lambda f: f.dyn(
        "fps1e9", torch.zeros(4, 32), "1e9")), MediaError, "fps"),
    ("dynamics-missing", _transfer(source=None, dynamics=lambda f: f.root / "no.dyn.safetensors"),
     MediaError, "does not exist"),
    # extract_dynamics()
    ("extract-into-directory", _extract(output=lambda f: f.dir), UsageError, "directory"),
    ("extract-fit-unknown", _extract(fit="zoom"), OptionError, "fit"),
    ("extract-reference-negative", _extract(reference_frame=-2), OptionError, "reference_frame"),
    ("extract-chunk-zero", _extract(chunk_size=0), OptionError, "chunk_size"),
    ("extract-missing-folder", _extract(output=lambda f: f.root / "no" / "x.dyn.safetensors"),
     MediaError, "does not exist"),
    ("extract-source-missing", _extract(source=lambda f: f.root / "nope.mp4"), MediaError,
     "not found"),
    # Transferer
    ("transferer-size-word", _transferer(size="big"), OptionError, "size"),
    ("transferer-amplify-nan", _transferer(amplify=float("nan")), OptionError, "amplify"),
    ("transferer-fps-zero", _transferer(fps=0), OptionError, "fps"),
    ("transferer-alpha-unknown", _transferer(alpha="maybe"), OptionError, "alpha"),
    ("transferer-alpha-refused", _transferer(target=lambda f: f.rgba), MediaError, "alpha"),
    ("transferer-fit-unknown", _transferer(fit="zoom"), OptionError, "fit"),
    ("transferer-reference-negative", _transferer(reference_frame=-1), OptionError,
     "reference_frame"),
    ("transferer-frames-shape", _push(np.zeros((2, 8, 8, 4), np.uint8)), UsageError, "(T, H, W, 3)"),
    ("transferer-frames-type", _push([1, 2, 3]), UsageError, "numpy"),
    ("transferer-frames-nan", _push(torch.full((2, 3, 32, 32), float("nan"))), MediaError,
     "not finite"),
]


@pytest.mark.parametrize("call, kind, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_api_input_is_one_clear_error(files: Files, call: Callable[[Files], Any],
                                          kind: type[DtganError], needle: str,
                                          request: pytest.FixtureRequest) -> None:
    files.out = files.root / f"out-{request.node.callspec.id}.mkv"  # one case cannot mask another
    with pytest.raises(kind) as err:
        call(files)
    text = f"{err.value} {err.value.hint or ''}"
    assert needle in text, text
    assert "\n" not in str(err.value)
    assert not files.out.exists()


def test_the_matrix_is_what_the_report_says() -> None:
    assert len(CASES) == 46 and len({c[0] for c in CASES}) == len(CASES)
