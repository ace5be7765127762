"""The onnxruntime backend: the exported graphs behind the torch model's streaming interface.

:class:`OrtModel` offers what :mod:`dtgan_plugin.inference` uses of a
:class:`~dtgan_plugin.models.DTGAN` — ``config``, ``fingerprint()``, ``parameters()`` (for the
device), ``encoder.init_state``/``encoder.step`` and ``generator.encode_target``/
``generator.render`` — so :class:`~dtgan_plugin.inference.DynamicsExtractor` and
:class:`~dtgan_plugin.inference.Renderer` stream through it unchanged. Tensors go in and come out
as CPU float32 torch tensors in the same ranges as the torch model's.

:func:`load_backend` picks the backend by name; for onnxruntime it loads an export folder, or
exports the checkpoint once into a cache folder named by its fingerprint
(``$DTGAN_CACHE_DIR/onnx/<fingerprint>``, default ``~/.cache/dtgan``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import MissingExtraError, OptionError
from ..models.config import ModelConfig
from ..models.encoder import EncoderState
from ..models.generators import TargetFeatures
from ..models.layers import InputShapeError, check_frames, check_image
from .manifest import MANIFEST, read_manifest

BACKENDS = ("torch", "onnxruntime")
INSTALL_HINT = "pip install 'dtgan-plugin[onnx]'"

_lock = threading.Lock()
_loaded: dict[str, "OrtModel"] = {}


class BackendError(OptionError):
    """An inference backend that is unknown, or a device it cannot run on (exit code 2)."""


def require(module: str) -> Any:
    """Import onnx/onnxruntime, or raise a one-line MissingExtraError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"the onnxruntime backend needs the '{module}' package, which "
                                f"is not installed", hint=INSTALL_HINT) from None


def check_backend(backend: Any) -> str:
    """The backend name if known, else a one-line BackendError listing the known ones."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}",
                           hint=f"use one of {', '.join(BACKENDS)}")
    return str(backend)


def check_backend_device(backend: str, device: Any) -> None:
    """Refuse a device the backend cannot run on: onnxruntime runs here on the CPU only."""
    if check_backend(backend) == "onnxruntime" and \
            str(device or "auto").strip().lower() not in ("auto", "cpu"):
        raise BackendError(f"the onnxruntime backend runs on the CPU, not on {device}",
                           hint="use --device cpu (or auto) with --backend onnxruntime")


def cache_dir() -> Path:
    """Where exports made on demand are kept: $DTGAN_CACHE_DIR/onnx or ~/.cache/dtgan/onnx."""
    root = os.environ.get("DTGAN_CACHE_DIR") or Path.home() / ".cache" / "dtgan"
    return Path(root).expanduser() / "onnx"


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous CPU numpy view/copy of a tensor (channels-last inputs get copied)."""
    return np.ascontiguousarray(t.detach().to("cpu").numpy())


class OrtEncoder:
    """``init_state``/``step`` of :class:`~dtgan_plugin.models.encoder.DynamicsEncoder`."""

    def __init__(self, model: "OrtModel") -> None:
        self._ref = model.session("encoder_reference")
        self._step = model.session("encoder_step")
        # a raw-mode step reads no reference: the exporter drops inputs a graph does not use
        self._step_inputs = {i.name for i in self._step.get_inputs()}
        self.resolution = model.resolution
        self.dyn_dim = model.dyn_dim
        self.rows = int(model.manifest["state_rows_per_clip"])

    def init_state(self, reference: torch.Tensor) -> EncoderState:
        """Start a stream: the reference frame (B, 3, H, W) defines the static sequence."""
        check_image("reference", reference, self.resolution)
        b = int(reference.shape[0])
        ref = torch.from_numpy(_numpy(reference.float()))
        (phi,) = self._ref.run(None, {"reference": ref.numpy()})
        zeros = torch.zeros(1, self.rows * b, self.dyn_dim)
        return EncoderState(reference=ref, phi_ref=torch.from_numpy(phi), hidden=zeros,
                            cell=zeros.clone(), static=torch.ones(b, dtype=torch.bool))

    def step(self, frames: torch.Tensor,
             state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """Dynamics of the next chunk (B, T, 3, H, W) → (d (B, T, D), new state)."""
        check_frames("frames", frames, self.resolution)
        b, t = int(frames.shape[0]), int(frames.shape[1])
        if state.batch != b:
            raise InputShapeError(f"frames have batch {b} but the encoder state tracks "
                                  f"{state.batch} clips; call init_state with matching batch")
        if t == 0:
            return torch.zeros(b, 0, self.dyn_dim), state
        assert state.hidden is not None and state.cell is not None
        feeds = {"frames": _numpy(frames.float()), "reference": _numpy(state.reference),
                 "phi_ref": _numpy(state.phi_ref), "h": _numpy(state.hidden),
                 "c": _numpy(state.cell), "static": _numpy(state.static)}
        feeds = {k: v for k, v in feeds.items() if k in self._step_inputs}
        d, h, c, static = (torch.from_numpy(x) for x in self._step.run(None, feeds))
        return d, EncoderState(reference=state.reference, phi_ref=state.phi_ref, hidden=h,
                               cell=c, static=static, frames_seen=state.frames_seen + t)


class OrtGenerator:
    """``encode_target``/``render`` of :class:`~dtgan_plugin.models.generators.Generator`."""

    def __init__(self, model: "OrtModel") -> None:
        self._target = model.session("target_encoder")
        self._render = model.session("renderer")
        self.resolution = model.resolution
        self.dyn_dim = model.dyn_dim
        self.levels = model.config.levels
        self._names = [i["name"] for i in model.manifest["graphs"]["renderer"]["inputs"]][1:]

    def encode_target(self, target: torch.Tensor) -> TargetFeatures:
        """One target image (1, 3, H, W) in [-1, 1] → features reused for every chunk."""
        check_image("target", target, self.resolution)
        if target.shape[0] != 1:
            raise InputShapeError(f"the onnxruntime backend encodes one target at a time, got "
                                  f"{int(target.shape[0])}")
        image = torch.from_numpy(_numpy(target.float()))
        outs = dict(zip(self._names[1:], self._target.run(None, {"target": image.numpy()})))
        skips: list[torch.Tensor | None] = [None] * self.levels
        for name, value in outs.items():
            if name.startswith("skip"):
                skips[int(name[4:])] = torch.from_numpy(value)
        rest = {n[5:]: torch.from_numpy(v) for n, v in outs.items() if n.startswith("rest_")}
        return TargetFeatures(image=image, bottleneck=torch.from_numpy(outs["bottleneck"]),
                              skips=skips, rest=rest)

    def _feeds(self, feats: TargetFeatures) -> dict[str, np.ndarray]:
        """The renderer's per-target inputs from a TargetFeatures."""
        feeds = {"target": _numpy(feats.image), "bottleneck": _numpy(feats.bottleneck)}
        for name in self._names:
            if name.startswith("skip"):
                skip = feats.skips[int(name[4:])]
                assert skip is not None
                feeds[name] = _numpy(skip)
            elif name.startswith("rest_"):
                feeds[name] = _numpy(feats.rest[name[5:]])
        return feeds

    def render(self, feats: TargetFeatures, d: torch.Tensor) -> torch.Tensor:
        """Dynamics (B, T, D) → frames (B, T, 3, H, W) in [-1, 1], one target for every clip."""
        if d.dim() != 3 or d.shape[-1] != self.dyn_dim:
            raise InputShapeError(f"dynamics must be (B, T, {self.dyn_dim}), "
                                  f"got {tuple(d.shape)}")
        if feats.batch != 1:
            raise InputShapeError("the onnxruntime backend renders one target's features; "
                                  f"got {feats.batch}")
        b, t = int(d.shape[0]), int(d.shape[1])
        s = self.resolution
        if b * t == 0:
            return torch.zeros(b, t, 3, s, s)
        feeds = self._feeds(feats)
        feeds["dynamics"] = _numpy(d.float().reshape(b * t, self.dyn_dim))
        (frames,) = self._render.run(None, feeds)
        return torch.from_numpy(frames).reshape(b, t, 3, s, s)


class OrtModel:
    """An exported model run by onnxruntime, shaped like the torch model for inference.

    ``threads`` caps onnxruntime's intra-op threads (None: its default, one per core).
    """

    backend = "onnxruntime"

    def __init__(self, folder: str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.threads = threads
        self.manifest = read_manifest(self.folder)
        self.config = ModelConfig.from_dict(self.manifest["config"])
        self._ort = require("onnxruntime")
        self._sessions: dict[str, Any] = {}
        self.encoder = OrtEncoder(self)
        self.generator = OrtGenerator(self)

    def session(self, name: str) -> Any:
        """The onnxruntime session of one graph (created once)."""
        if name not in self._sessions:
            opts = self._ort.SessionOptions()
            opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                opts.intra_op_num_threads = self.threads
            # each session has its own thread pool; threads left spinning after one graph
            # ran compete with the next graph's (measured 1.5-1.8x slower end to end on 2 cores)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = self.folder / self.manifest["graphs"][name]["file"]
            self._sessions[name] = self._ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"])
        return self._sessions[name]

    @property
    def resolution(self) -> int:
        """Square frame size the model works at."""
        return int(self.manifest["resolution"])

    @property
    def dyn_dim(self) -> int:
        """Size D of one dynamics vector."""
        return int(self.manifest["dyn_dim"])

    def fingerprint(self) -> str:
        """The exported model's fingerprint (the torch model's, recorded at export)."""
        return str(self.manifest["fingerprint"])

    def parameters(self) -> Iterator[torch.Tensor]:
        """One CPU tensor, so callers that read the device off the first parameter get CPU."""
        yield torch.zeros(())

    def eval(self) -> "OrtModel":
        """Inference only already; returns self (for symmetry with nn.Module)."""
        return self


def _cached_export(checkpoint: str | os.PathLike[str]) -> Path:
    """The cache folder holding the checkpoint's export, exporting it first if needed."""
    from ..models.checkpoint import read_checkpoint_metadata, resolve_checkpoint
    from .onnx_export import export_onnx

    path = resolve_checkpoint(str(checkpoint))
    fingerprint = str(read_checkpoint_metadata(path)["fingerprint"])
    folder = cache_dir() / fingerprint
    if not (folder / MANIFEST).is_file():
        require("onnx")
        export_onnx(path, folder, replace=False)
    return folder


def load_ort_model(checkpoint: str | os.PathLike[str]) -> OrtModel:
    """An export folder, or a checkpoint exported on demand into the cache, run by onnxruntime."""
    require("onnxruntime")
    source = Path(os.fspath(checkpoint)).expanduser()
    folder = source if (source / MANIFEST).is_file() else _cached_export(checkpoint)
    key = str(folder.resolve())
    with _lock:
        if key not in _loaded:
            _loaded[key] = OrtModel(folder)
        return _loaded[key]


def load_backend(checkpoint: str | os.PathLike[str] = "default", device: Any = "cpu",
                 backend: str = "torch") -> Any:
    """The model for inference on the named backend: a DTGAN (torch) or an OrtModel.

    ``device`` is a name (``auto``, ``cpu``, ``cuda[:N]``) or a torch.device; onnxruntime
    takes ``auto`` or ``cpu`` only.
    """
    check_backend_device(backend, device)
    if backend == "torch":
        from ..inference import load_model
        from ..system import resolve_device

        return load_model(checkpoint, resolve_device(device))
    return load_ort_model(checkpoint)
