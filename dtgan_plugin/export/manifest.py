"""``manifest.json``: what a host needs to drive the exported graphs without reading our code.

Fields (format ``dtgan-onnx``, version 1):

* ``fingerprint`` — the model's :meth:`~dtgan_plugin.models.DTGAN.fingerprint` (the cache key
  and what dynamics files name); ``checkpoint`` — where it was exported from;
* ``opset``, ``resolution`` (square frame size S), ``dyn_dim`` (D), ``feature_dim`` (F),
  ``generator``, ``asd_mode``, ``state_rows_per_clip`` (2 in ``asd`` mode, 1 in ``raw``) and the
  full model ``config``;
* ``normalisation`` — value ranges of the frames in and out;
* ``graphs`` — per graph its ``file`` and its ``inputs``/``outputs``: ``name``, ``dtype`` and
  ``shape``, where a string is a symbolic (dynamic) dimension: ``batch`` (clips streamed at
  once, usually 1), ``frames`` (frames in this chunk) and ``state_rows`` (batch ×
  state_rows_per_clip); a graph lists only the inputs it reads (a ``raw`` model's encoder step
  reads no reference);
* ``state`` — the encoder step's carried tensors and their values before the first chunk;
* ``streaming`` — the loop, in words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import DtganError

MANIFEST = "manifest.json"
FORMAT = "dtgan-onnx"
FORMAT_VERSION = "1"
GRAPHS = ("encoder_reference", "encoder_step", "target_encoder", "renderer")

_DTYPES = {1: "float32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}

STREAMING = (
    "1. phi_ref = encoder_reference(reference); state: h = c = zeros, static = true. "
    "2. For each chunk of source frames (B, T, 3, S, S): dynamics, h, c, static = "
    "encoder_step(frames, reference, phi_ref, h, c, static); feed h_out, c_out, static_out "
    "back as h, c, static for the next chunk. 3. Once per target image: features = "
    "target_encoder(target). 4. frames = renderer(dynamics reshaped to (N, D), target, "
    "features...), in any chunk size.")


class ManifestError(DtganError):
    """An ONNX export folder whose manifest is missing, unreadable or of another model."""


@dataclass
class GraphSpec:
    """One graph to export: its name, module, example inputs, I/O names and dynamic axes."""

    name: str
    module: nn.Module
    args: tuple[Any, ...]
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, dict[int, str]]


def _io(values: Any) -> list[dict[str, Any]]:
    """Name, dtype and shape (symbolic dims as strings) of ONNX graph inputs or outputs."""
    rows = []
    for v in values:
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        rows.append({"name": v.name, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type)),
                     "shape": shape})
    return rows


def _graph_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of one exported file, read back from the file itself."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {"file": path.name, "inputs": _io(proto.graph.input),
            "outputs": _io(proto.graph.output)}


def build_manifest(model: Any, specs: list[GraphSpec], folder: Path, *, opset: int,
                   fingerprint: str, checkpoint: str) -> dict[str, Any]:
    """The manifest of the graphs exported into ``folder``."""
    cfg = model.config
    rows = 2 if cfg.asd_mode == "asd" else 1
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint, "checkpoint": checkpoint, "opset": opset,
        "resolution": cfg.resolution, "dyn_dim": cfg.dyn_dim,
        "feature_dim": cfg.encoder.feature_dim, "generator": cfg.generator,
        "asd_mode": cfg.asd_mode, "state_rows_per_clip": rows,
        "normalisation": {
            "frames_in": {"range": [-1.0, 1.0], "from_rgb01": "2 * x - 1",
                          "layout": "RGB, channels first (3, S, S), float32"},
            "frames_out": {"range": [-1.0, 1.0], "to_rgb01": "clamp((y + 1) / 2, 0, 1)"},
            "dynamics": {"range": "unbounded", "dtype": "float32"},
        },
        "graphs": {s.name: _graph_entry(folder / f"{s.name}.onnx") for s in specs},
        "state": {
            "h": {"shape": [1, "state_rows", cfg.dyn_dim], "init": 0.0},
            "c": {"shape": [1, "state_rows", cfg.dyn_dim], "init": 0.0},
            "static": {"shape": ["batch"], "init": True},
        },
        "streaming": STREAMING,
        "config": cfg.to_dict(),
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest as indented JSON (the caller's folder is itself a staging folder)."""
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Load and check an export folder's manifest (format, version, every graph file present)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST} in {folder}",
                            hint="export one with: dtgan export CHECKPOINT --format onnx -o DIR")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"cannot read {path}: {err}",
                            hint="export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest",
                            hint="export the model again with this version of dtgan")
    graphs = manifest.get("graphs") or {}
    for name in GRAPHS:
        entry = graphs.get(name)
        if not isinstance(entry, dict) or not (folder / str(entry.get("file"))).is_file():
            raise ManifestError(f"{folder} lacks the {name} graph its manifest names",
                                hint="export the model again")
    return manifest
