"""The 68 points of one face on every frame of a stream: what a landmark model's encoder reads.

:class:`FrameLandmarks` chains landmarker → :class:`~.track.FacePicker` →
:class:`~.track.GapFiller`, chunk by chunk. It holds only points (never frames): frames where
the face was lost wait for the gap to close and are interpolated, so ``push`` may return
fewer point sets than it was given frames, and ``finish`` returns the rest.
"""

from __future__ import annotations

import numpy as np
import torch

from .track import FacePicker, GapFiller
from .types import Landmarker

_EMPTY = np.zeros((0, 68, 2), np.float32)


class FrameLandmarks:
    """Per-frame 68-point landmarks ``(k, 68, 2)`` of one face through a stream of frames."""

    def __init__(self, landmarker: str | Landmarker = "mediapipe", *, face: int = 0,
                 what: str = "the source video") -> None:
        if isinstance(landmarker, str):
            from .autocrop import make_landmarker

            landmarker = make_landmarker(landmarker, still=False)
        self.landmarker = landmarker
        self.picker = FacePicker(face)
        self.filler = GapFiller(what)

    @property
    def filled(self) -> int:
        """Frames where the face was lost and its points were interpolated."""
        return self.filler.filled

    def push(self, frames: torch.Tensor) -> np.ndarray:
        """``(T, 3, H, W)`` float frames in [0, 1] → the points settled so far, in order."""
        from .autocrop import to_uint8_hwc

        out: list[np.ndarray] = []
        for faces in self.landmarker.detect(to_uint8_hwc(frames)):
            chosen = self.picker.pick(faces)
            out.extend(self.filler.push(None if chosen is None else chosen.pts68[0]))
        return np.stack(out).astype(np.float32) if out else _EMPTY

    def finish(self) -> np.ndarray:
        """The points still held (after the last face); MediaError when no face was found."""
        rest = self.filler.finish()
        return np.stack(rest).astype(np.float32) if rest else _EMPTY

    def close(self) -> None:
        """Forget the landmarker's tracking state."""
        self.landmarker.reset()
