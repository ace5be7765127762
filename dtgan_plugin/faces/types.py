"""The landmark data model shared by landmarkers, crop tracking, paste-back and evaluation.

Coordinates are pixels ``(x, y)`` of the frame the landmarks were found on, float32, with
pixel centres at i + 0.5 (column 0 spans x from 0 to 1), as crops, paste-back and the models
read them; a landmarker whose pixel centres are whole numbers adds 0.5. Every
landmarker provides the common 68-point layout (iBUG 300-W: jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, mouth 48-67) in ``pts68``, plus its own native points in ``points``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

NUM_POINTS_68 = 68

#: index ranges of the iBUG 300-W layout
JAW = range(0, 17)
RIGHT_BROW = range(17, 22)  # the subject's right: image left
LEFT_BROW = range(22, 27)
NOSE = range(27, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
OUTER_LIP = range(48, 60)
INNER_LIP = range(60, 68)


@dataclass
class FaceTrack:
    """One face's landmarks over ``T`` frames (``T`` may be 1 for a photo).

    - ``pts68``: ``(T, 68, 2)`` float32 pixels, iBUG 300-W order.
    - ``points``: ``(T, N, 2)`` float32 pixels in the landmarker's native layout ``layout``
      (for example ``"mediapipe478"``); equal to ``pts68`` where the native layout is 68 points.
    - ``confidence``: ``(T,)`` float32 in [0, 1]; 0 marks a frame where the face was not found
      (its points are then filled from neighbouring frames, or NaN before filling).
    - ``boxes``: ``(T, 4)`` float32 ``x0, y0, x1, y1`` pixels, the face's tight box.
    - ``frame_size``: ``(height, width)`` of the frames the points refer to.
    """

    pts68: np.ndarray
    points: np.ndarray
    confidence: np.ndarray
    boxes: np.ndarray
    frame_size: tuple[int, int]
    layout: str = "ibug68"
    fps: float = 25.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pts68.shape[0])

    @property
    def found(self) -> np.ndarray:
        """``(T,)`` bool: frames where the landmarker found the face."""
        return self.confidence > 0


@runtime_checkable
class Landmarker(Protocol):
    """Maps RGB frames to the faces found on each.

    ``detect(frames)`` takes ``(T, H, W, 3)`` uint8 RGB frames and returns, for each frame, a
    list of faces ordered largest first; each face is a ``FaceTrack`` of length 1. A landmarker
    may keep state between calls (a tracker); ``reset()`` forgets it.
    """

    name: str
    native_layout: str

    def detect(self, frames: np.ndarray) -> list[list[FaceTrack]]:
        """Faces on each frame, largest first."""
        ...

    def reset(self) -> None:
        """Forget any tracking state (start of a new video)."""
        ...
