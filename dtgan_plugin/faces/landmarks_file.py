"""``.lmk.safetensors`` files: one face's landmarks over a video, like dynamics files.

Tensors ``pts68`` ``(T, 68, 2)``, ``points`` ``(T, N, 2)``, ``confidence`` ``(T,)`` and
``boxes`` ``(T, 4)`` (all float32, pixels) and string metadata: ``format=dtgan-landmarks``,
``format_version``, ``frame_size`` (``"H,W"``), ``fps``, ``layout`` (the native points'),
``landmarker``. Any safetensors reader opens it; nothing is ever unpickled. Landmarks are
small (a 478-point track is about 4 KB a frame), so a file is written and read whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import MediaError
from .types import FaceTrack

FORMAT = "dtgan-landmarks"
FORMAT_VERSION = "1"
SUFFIX = ".lmk.safetensors"
_TENSORS = ("pts68", "points", "confidence", "boxes")


def save_landmarks(path: str | os.PathLike[str], track: FaceTrack, *,
                   landmarker: str = "") -> Path:
    """Write ``track`` to ``path`` (under a temporary name, renamed when complete)."""
    from safetensors.numpy import save_file

    path = Path(path)
    if not path.parent.exists():
        raise MediaError(f"output directory '{path.parent}' does not exist", hint="create it first")
    t = len(track)
    tensors = {k: np.ascontiguousarray(getattr(track, k), np.float32) for k in _TENSORS}
    expect = {"pts68": (t, 68, 2), "confidence": (t,), "boxes": (t, 4)}
    for key, shape in expect.items():
        if tensors[key].shape != shape:
            raise ValueError(f"landmarks '{key}' must be {shape}, got {tensors[key].shape}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "frame_size": f"{int(track.frame_size[0])},{int(track.frame_size[1])}",
            "fps": repr(float(track.fps)), "layout": track.layout,
            "landmarker": landmarker or str(track.meta.get("landmarker", ""))}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_landmarks(path: str | os.PathLike[str]) -> FaceTrack:
    """Read a landmarks file; a missing, corrupt or foreign file is a one-line MediaError."""
    from safetensors import SafetensorError  # type: ignore[attr-defined]
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"landmarks file '{path}' does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            if meta.get("format") != FORMAT or not set(_TENSORS) <= keys:
                raise MediaError(f"'{path}' is a safetensors file but not a dtgan landmarks file")
            arrays = {k: f.get_tensor(k).astype(np.float32) for k in _TENSORS}
    except (SafetensorError, OSError, ValueError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MediaError(f"'{path}' is not a readable landmarks file: {msg}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise MediaError(f"'{path}' has landmarks format version "
                         f"{meta.get('format_version')!r}; this dtgan reads {FORMAT_VERSION!r}")
    try:
        h, w = (int(v) for v in meta["frame_size"].split(","))
        fps = float(meta.get("fps", 25.0))
    except (KeyError, ValueError):
        raise MediaError(f"'{path}' has a bad frame_size or fps in its metadata") from None
    t = arrays["pts68"].shape[0]
    if arrays["pts68"].shape[1:] != (68, 2) or any(arrays[k].shape[0] != t for k in _TENSORS):
        raise MediaError(f"'{path}' holds landmarks of inconsistent shapes")
    return FaceTrack(frame_size=(h, w), fps=fps, layout=meta.get("layout", "ibug68"),
                     meta={"landmarker": meta.get("landmarker", "")}, **arrays)
