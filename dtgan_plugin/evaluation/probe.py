"""The motion probe: a small CNN that reads synthfaces parameters back from a rendered frame.

It is the measuring instrument of protocols P3 (motion fidelity) and P4 (appearance leakage):

* the **params head** regresses the per-frame :data:`~dtgan_plugin.synthfaces.PARAM_NAMES`
  (expression and head motion) of one frame;
* the **identity head** regresses a fixed set of identity parameters (:data:`IDENTITY_FEATURES`:
  skin, hair, lip, background and shirt colours, hair style, head shape, glasses, hat), which is
  the identity embedding P4 compares.

It is trained only on frames of *training-split* identities (``python -m
dtgan_plugin.evaluation.train_probe``) and never sees a DTGAN output, so it cannot have learned
a model's artefacts. Input is any square size: frames are resized to :data:`PROBE_SIZE` (64).

The weights ship as ``dtgan_plugin/assets/motion_probe.safetensors`` (float16 tensors, float32 at
run time; metadata holds the names, normalisation and held-out accuracy). Loading never unpickles.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError

__all__ = ["PROBE_SIZE", "IDENTITY_FEATURES", "PROBE_FORMAT", "MotionProbe", "default_probe_path",
           "identity_targets", "save_probe", "load_probe", "ProbeMissingError"]

#: the resolution the probe works at; other sizes are resized (antialiased) to it
PROBE_SIZE = 64
PROBE_FORMAT = "dtgan-motion-probe"
PROBE_FORMAT_VERSION = "1"

#: (field of :class:`~dtgan_plugin.synthfaces.Identity`, channels) the identity head
#: predicts; colours are RGB. Eye colour is left out: at 64 px an iris is a couple of pixels.
IDENTITY_FEATURES: tuple[tuple[str, int], ...] = (
    ("skin", 3), ("hair", 3), ("lip_colour", 3), ("bg_colour", 3), ("bg_colour2", 3),
    ("shirt", 3), ("hair_length", 1), ("fringe", 1), ("head_w", 1), ("head_h", 1),
    ("glasses", 1), ("hat", 1),
)
IDENTITY_DIM = sum(c for _, c in IDENTITY_FEATURES)


class ProbeMissingError(CheckpointError):
    """The probe's weights file does not exist (P3 and P4 are then skipped, not fatal)."""


def default_probe_path() -> Path:
    """Where the shipped probe lives: ``dtgan_plugin/assets/motion_probe.safetensors``."""
    return Path(__file__).resolve().parent.parent / "assets" / "motion_probe.safetensors"


def identity_targets(identity: Any) -> torch.Tensor:
    """The ``(N, IDENTITY_DIM)`` identity-feature vector of a batch of ``Identity``."""
    cols = []
    for name, ch in IDENTITY_FEATURES:
        value = getattr(identity, name).float()
        cols.append(value.reshape(-1, ch))
    return torch.cat(cols, 1)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class MotionProbe(nn.Module):
    """Frames ``(N, 3, H, W)`` in [0, 1] → (params ``(N, P)``, identity ``(N, IDENTITY_DIM)``).

    Outputs are in the parameters' own units (the normalisation is inside the module).
    """

    def __init__(self, n_params: int, widths: tuple[int, ...] = (24, 48, 64, 96),
                 hidden: int = 128) -> None:
        super().__init__()
        self.n_params = n_params
        self.widths = tuple(widths)
        self.hidden = hidden
        layers, cin = [], 3
        for w in widths:  # 64 → 32 → 16 → 8 → 4
            layers.append(_block(cin, w, 2))
            cin = w
        self.features = nn.Sequential(*layers)
        side = PROBE_SIZE // 2 ** len(widths)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, hidden),
                                   nn.ReLU(inplace=True))
        self.params_head = nn.Linear(hidden, n_params)
        self.identity_head = nn.Linear(hidden, IDENTITY_DIM)
        # normalisation of the targets, fitted on the training pool (buffers: saved with weights)
        self.register_buffer("param_mean", torch.zeros(n_params))
        self.register_buffer("param_std", torch.ones(n_params))
        self.register_buffer("id_mean", torch.zeros(IDENTITY_DIM))
        self.register_buffer("id_std", torch.ones(IDENTITY_DIM))
        self.meta: dict[str, Any] = {}

    @staticmethod
    def prepare(frames: torch.Tensor) -> torch.Tensor:
        """Resize ``(N, 3, H, W)`` frames in [0, 1] to the probe's input, centred on 0."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"probe expects frames (N, 3, H, W), got {tuple(frames.shape)}")
        x = frames.float()
        if tuple(x.shape[-2:]) != (PROBE_SIZE, PROBE_SIZE):
            x = F.interpolate(x, size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear",
                              antialias=True, align_corners=False)
        return x * 2 - 1

    def forward_normalised(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised predictions (what the training loss sees)."""
        h = self.trunk(self.features(self.prepare(frames)))
        return self.params_head(h), self.identity_head(h)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters and identity features in their own units."""
        p, i = self.forward_normalised(frames)
        return p * self.param_std + self.param_mean, i * self.id_std + self.id_mean

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """The standardised identity embedding P4 measures distances in: ``(N, IDENTITY_DIM)``."""
        return self.forward_normalised(frames)[1]

    @torch.inference_mode()
    def predict(self, frames: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference over any number of frames ``(N, 3, H, W)``: (params, standardised identity)."""
        ps, es = [], []
        for a in range(0, int(frames.shape[0]), batch):
            p, e = self.forward_normalised(frames[a:a + batch])
            ps.append(p * self.param_std + self.param_mean)
            es.append(e)
        return torch.cat(ps), torch.cat(es)


def save_probe(path: str | os.PathLike[str], probe: MotionProbe, meta: dict[str, Any]) -> Path:
    """Write the probe as float16 safetensors with JSON metadata, atomically."""
    from safetensors.torch import save_file

    from ..synthfaces import PARAM_NAMES

    dest = Path(path)
    tensors = {}
    for k, v in probe.state_dict().items():
        v = v.detach().cpu().contiguous()
        # float16 halves the shipped file; the normalisation stays float32 (it sets the units)
        keep32 = not v.is_floating_point() or k.endswith(("_mean", "_std"))
        tensors[k] = v.clone() if keep32 else v.to(torch.float16).clone()
    metadata = {
        "format": PROBE_FORMAT, "format_version": PROBE_FORMAT_VERSION,
        "param_names": json.dumps(list(PARAM_NAMES)),
        "identity_features": json.dumps([list(f) for f in IDENTITY_FEATURES]),
        "widths": json.dumps(list(probe.widths)), "hidden": str(probe.hidden),
        "input_size": str(PROBE_SIZE), "info": json.dumps(meta, sort_keys=True),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        from .report import _file_mode

        os.chmod(tmp, _file_mode())  # a shipped asset must be readable by everyone
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def load_probe(path: str | os.PathLike[str] | None = None,
               device: str | torch.device = "cpu") -> MotionProbe:
    """Load the probe (default: the shipped asset) in eval mode; never unpickles."""
    from safetensors import SafetensorError, safe_open

    from ..synthfaces import PARAM_NAMES

    p = Path(path) if path is not None else default_probe_path()
    if not p.is_file():
        raise ProbeMissingError(f"motion probe not found at {p}",
                                hint="run 'python -m dtgan_plugin.evaluation.train_probe' to "
                                     "create it, or pass --probe PATH")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"motion probe {p} could not be read as safetensors: {first}",
                              hint="re-create it with python -m "
                                   "dtgan_plugin.evaluation.train_probe") from None
    if meta.get("format") != PROBE_FORMAT:
        raise CheckpointError(f"{p} is not a motion probe (format {meta.get('format')!r})",
                              hint="pass a file written by dtgan_plugin.evaluation.train_probe")
    if meta.get("format_version") != PROBE_FORMAT_VERSION:
        raise CheckpointError(f"motion probe {p} has format version "
                              f"{meta.get('format_version')!r}; this dtgan reads "
                              f"{PROBE_FORMAT_VERSION}", hint="re-create it with train_probe")
    try:
        names = tuple(json.loads(meta["param_names"]))
        feats = tuple(tuple(f) for f in json.loads(meta["identity_features"]))
        widths = tuple(int(w) for w in json.loads(meta["widths"]))
        hidden = int(meta["hidden"])
        info = json.loads(meta.get("info") or "{}")
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"motion probe {p} has malformed metadata",
                              hint="re-create it with train_probe") from None
    if names != tuple(PARAM_NAMES) or feats != tuple(IDENTITY_FEATURES):
        raise CheckpointError(f"motion probe {p} was trained for other parameters than this "
                              "synthfaces renderer has", hint="re-create it with train_probe")
    probe = MotionProbe(len(names), widths, hidden)
    try:
        probe.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"motion probe {p} does not match its architecture: "
                              f"{str(err).splitlines()[0]}",
                              hint="re-create it with train_probe") from None
    probe.meta = {"path": str(p), **info}
    return probe.to(device).eval()
