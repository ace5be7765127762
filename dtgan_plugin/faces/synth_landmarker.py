"""The built-in ``synth`` landmarker: the exact 68 points of a procedural (synthfaces) clip.

The renderer knows where every eye corner and lip point is, so this "landmarker" does not look
at the pixels: it replays ``synthfaces.landmarks68`` for the clip it was built for, frame by
frame, and only checks that the frames it is given have the clip's size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from .mediapipe_landmarker import face_from_points


class SynthLandmarker:
    """Exact landmarks of one synthfaces clip (``identity`` with per-frame ``params``)."""

    name = "synth"
    native_layout = "ibug68"

    def __init__(self, *, identity: Any = None, params: Any = None,
                 size: int | tuple[int, int] = 64) -> None:
        if identity is None or params is None:
            raise UsageError("the 'synth' landmarker needs the clip's identity and params",
                             hint="get_landmarker('synth', identity=..., params=..., size=...)")
        from ..synthfaces.landmarks import landmarks68

        # + 0.5: the renderer's pixel centres are whole numbers, this package's are at i + 0.5
        pts = landmarks68(identity, params, size) + 0.5  # (N, T, 68, 2)
        if pts.ndim != 4 or pts.shape[0] != 1 or pts.shape[2:] != (68, 2):
            raise UsageError(f"the 'synth' landmarker takes one clip; landmarks68 gave "
                             f"{tuple(pts.shape)}")
        self._pts = np.asarray(pts[0].detach().cpu().numpy(), np.float32)
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.frame_size = (h, w)
        self._next = 0

    def __len__(self) -> int:
        return int(self._pts.shape[0])

    def detect(self, frames: np.ndarray) -> list[list[Any]]:
        """The clip's exact points for the next ``T`` frames (frames only size-checked)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or tuple(frames.shape[1:3]) != self.frame_size:
            raise UsageError(f"the 'synth' landmarker was built for {self.frame_size[1]}x"
                             f"{self.frame_size[0]} frames, got shape {tuple(frames.shape)}")
        t = int(frames.shape[0])
        if self._next + t > len(self):
            raise UsageError(f"the 'synth' landmarker's clip has {len(self)} frames; asked for "
                             f"frames {self._next}..{self._next + t - 1}")
        out = []
        for pts in self._pts[self._next:self._next + t]:
            out.append([face_from_points(pts, self.frame_size, self.native_layout, pts)])
        self._next += t
        return out

    def reset(self) -> None:
        """Start again at the clip's first frame."""
        self._next = 0
