"""Following one face through a video: pick it per frame, fill the frames where it was lost.

Both steps stream: :class:`FacePicker` looks at one frame at a time, and :class:`GapFiller`
holds only the frames of the current gap (at most ``max_gap`` of them, then it holds the last
known face instead of waiting longer).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import MediaError
from .types import FaceTrack


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


class FacePicker:
    """Choose the same face on every frame: the ``face``-th largest where it is first seen,
    then the face overlapping the previous choice most (a face elsewhere is not a jump)."""

    def __init__(self, face: int = 0, min_iou: float = 0.2) -> None:
        if face < 0:
            raise ValueError(f"face must be >= 0, got {face}")
        self.face = int(face)
        self.min_iou = float(min_iou)
        self._prev: np.ndarray | None = None

    def pick(self, faces: list[FaceTrack]) -> FaceTrack | None:
        """The chosen face among one frame's faces (largest first), or None when lost."""
        if self._prev is None:
            if len(faces) <= self.face:
                return None
            chosen = faces[self.face]
        else:
            scored = [(box_iou(f.boxes[0], self._prev), f) for f in faces]
            if not scored:
                return None
            best_iou, chosen = max(scored, key=lambda s: s[0])
            if best_iou < self.min_iou:
                return None
        self._prev = chosen.boxes[0].copy()
        return chosen


class GapFiller:
    """Emit one 68-point set per frame, in order, interpolating across frames with no face.

    ``push(pts_or_none)`` for each frame returns the frames now known (a found frame closes a
    gap, which is filled linearly between its two neighbours; before the first face, frames
    copy it). ``finish()`` returns the rest and raises ``MediaError`` when there was no face.
    """

    def __init__(self, what: str = "the video", max_gap: int = 50, max_wait: int = 250) -> None:
        self.what = what
        self.max_gap = int(max_gap)
        self.max_wait = int(max_wait)
        self._last: np.ndarray | None = None
        self._pending = 0
        #: whether the open gap holds a lost frame (not only skipped ones)
        self._lost = False
        self.frames = 0
        self.filled = 0

    def push(self, pts: np.ndarray | None, *, skipped: bool = False) -> list[np.ndarray]:
        """Feed one frame's points (None when lost, or ``skipped``: not looked at, to be
        interpolated like a gap but not counted as lost); get the frames now settled."""
        self.frames += 1
        if pts is None:
            self._pending += 1
            self._lost = self._lost or not skipped
            if self._last is None and self._pending > self.max_wait:
                raise MediaError(f"no face found in the first {self.max_wait} frames of "
                                 f"{self.what}", hint="trim the video to where the face shows")
            if self._last is not None and self._pending > self.max_gap:
                # a long gap: stop waiting for its end, hold the last known face
                self._pending -= 1
                self.filled += int(self._lost)
                return [self._last.copy()]
            return []
        pts = np.asarray(pts, np.float32)
        out = self._fill(pts)
        out.append(pts)
        self._last = pts
        return out

    def _fill(self, nxt: np.ndarray) -> list[np.ndarray]:
        n = self._pending
        self._pending = 0
        # a gap of skipped frames only is not a loss; one with a lost frame counts whole
        self.filled += n if self._lost else 0
        self._lost = False
        if self._last is None:
            return [nxt.copy() for _ in range(n)]
        w = np.arange(1, n + 1, dtype=np.float32)[:, None, None] / (n + 1)
        return list(self._last[None] * (1 - w) + nxt[None] * w)

    def finish(self) -> list[np.ndarray]:
        """The frames after the last face (copies of it); MediaError if no face was ever found."""
        if self._last is None:
            if self.frames == 0:
                raise MediaError(f"no frames in {self.what}")
            raise MediaError(f"no face found in {self.what}",
                             hint="use a video or photo where a face is clearly visible")
        n = self._pending
        self._pending = 0
        self.filled += n if self._lost else 0
        self._lost = False
        return [self._last.copy() for _ in range(n)]


def track_faces(per_frame: Iterable[list[FaceTrack]], face: int = 0,
                what: str = "the video") -> tuple[np.ndarray, int]:
    """All frames' chosen 68 points ``(T, 68, 2)`` and the number filled (small inputs only)."""
    picker, filler = FacePicker(face), GapFiller(what)
    out: list[np.ndarray] = []
    for faces in per_frame:
        chosen = picker.pick(faces)
        out.extend(filler.push(None if chosen is None else chosen.pts68[0]))
    out.extend(filler.finish())
    return np.stack(out), filler.filled
