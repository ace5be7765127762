"""Streaming auto-crop of a video, and the (cached) face of a still photo.

:class:`AutoCropper` chains landmarker → :class:`FacePicker` → :class:`GapFiller` →
:class:`BoxSmoother` → :func:`crop_frames`, chunk by chunk. It holds the frames whose box is
not settled yet: the smoother's lookahead plus the current gap (both bounded).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from typing import Any

import numpy as np
import torch

from ..errors import MediaError
from .crop import DEFAULT_OFFSET_Y, DEFAULT_RADIUS, DEFAULT_SCALE, BoxSmoother, clamp_box, \
    crop_frames, face_box
from .registry import get_landmarker
from .track import FacePicker, GapFiller
from .types import Landmarker

#: landmarks on every N-th frame only; the 68 points between are interpolated linearly. The
#: box is smoothed over ±8 frames anyway: on carphone every 2nd frame moves it by at most
#: 0.8 px (0.7 % of its side), jitter 0.124 % vs 0.126 %, and halves the landmarker's time
#: (MediaPipe FaceMesh: ~8 ms a frame on one core)
LANDMARK_STRIDE = 2

#: most bytes of float32 frames an AutoCropper holds while a face gap is open (or before the
#: first face): 120 frames at 512x512, 20 at 1080p; past it a gap holds the last face
HOLD_BYTES = 384 << 20


def to_uint8_hwc(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float [0, 1] → ``(T, H, W, 3)`` uint8 RGB, what landmarkers take."""
    out = (frames.detach().float().clamp(0, 1) * 255).round_().to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy())


def make_landmarker(name: str, *, still: bool) -> Landmarker:
    """Build a landmarker; the built-in ``mediapipe`` is told whether it sees a photo."""
    return get_landmarker(name, static=True) if name == "mediapipe" and still \
        else get_landmarker(name)


class AutoCropper:
    """Crop every frame of a video to its smoothed square face box, at ``size`` px."""

    def __init__(self, landmarker: Landmarker, *, face: int = 0, scale: float = DEFAULT_SCALE,
                 offset_y: float = DEFAULT_OFFSET_Y, size: int = 256,
                 radius: int = DEFAULT_RADIUS, what: str = "the video",
                 stride: int | None = None) -> None:
        self.landmarker = landmarker
        self.stride = max(1, int(LANDMARK_STRIDE if stride is None else stride))
        #: frames seen, and skipped frames not yet handed to the filler (they wait for the
        #: next frame with landmarks, or for ``flush``, which looks at the last one)
        self._seen = 0
        self._skipped = 0
        self.scale, self.offset_y, self.size = float(scale), float(offset_y), int(size)
        self.picker = FacePicker(face)
        self.filler = GapFiller(what)
        self.smoother = BoxSmoother(radius)
        self._frames: deque[torch.Tensor] = deque()
        #: the settled 68 points of the frames still held, in frame order
        self._points: deque[np.ndarray] = deque()
        #: the crops' 68 points ``(k, 68, 2)`` (crop pixels) of the last crops handed out
        self.last_points: np.ndarray = np.zeros((0, 68, 2), np.float32)
        self._frame_size: tuple[int, int] | None = None
        #: every smoothed, clamped box handed out, and every raw one, when ``keep_boxes``
        self.boxes: list[np.ndarray] = []
        self.raw_boxes: list[np.ndarray] = []
        self.keep_boxes = False

    @property
    def filled(self) -> int:
        """Frames whose face was lost and filled from their neighbours."""
        return self.filler.filled

    def _crop_ready(self, boxes: np.ndarray) -> torch.Tensor | None:
        if len(boxes) == 0:
            return None
        h, w = self._frame_size or (0, 0)
        boxes = clamp_box(boxes, h, w)
        if self.keep_boxes:
            self.boxes.extend(boxes)
        frames = torch.stack([self._frames.popleft() for _ in range(len(boxes))])
        pts = np.stack([self._points.popleft() for _ in range(len(boxes))])
        # frame pixels → crop pixels: the box is (cx, cy, side), the crop size x size
        corner = boxes[:, None, :2] - boxes[:, None, 2:3] / 2
        self.last_points = ((pts - corner) * (self.size / boxes[:, None, 2:3])).astype(np.float32)
        return crop_frames(frames, boxes, self.size)

    def _push_key(self, faces: list[Any]) -> list[np.ndarray]:
        """Hand the skipped frames before a landmark frame, then its chosen face, to the filler."""
        settled: list[np.ndarray] = []
        for _ in range(self._skipped):
            settled.extend(self.filler.push(None, skipped=True))
        self._skipped = 0
        chosen = self.picker.pick(faces)
        settled.extend(self.filler.push(None if chosen is None else chosen.pts68[0]))
        return settled

    def push(self, frames: torch.Tensor) -> torch.Tensor | None:
        """Feed ``(T, 3, H, W)`` frames; get the crops now settled (or None)."""
        if self._frame_size is None:
            h, w = int(frames.shape[-2]), int(frames.shape[-1])
            budget = HOLD_BYTES // (12 * h * w)
            self.filler.max_gap = max(2, min(self.filler.max_gap, budget))
            self.filler.max_wait = max(2 * self.smoother.radius + 2,
                                       min(self.filler.max_wait, budget))
        self._frame_size = (int(frames.shape[-2]), int(frames.shape[-1]))
        # the frames that get landmarks: every stride-th of the whole video
        first = (-self._seen) % self.stride
        keys = list(range(first, len(frames), self.stride))
        self._seen += len(frames)
        settled: list[np.ndarray] = []
        found = self.landmarker.detect(to_uint8_hwc(frames[keys])) if keys else []
        self._skipped += first if keys else 0
        for i, faces in enumerate(found):
            self._skipped += self.stride - 1 if i else 0
            settled.extend(self._push_key(faces))
        self._skipped = len(frames) - 1 - keys[-1] if keys else self._skipped + len(frames)
        self._frames.extend(frames.unbind(0))
        self._points.extend(settled)
        raw = face_box(np.stack(settled), self.scale, self.offset_y) if settled else \
            np.zeros((0, 3))
        if self.keep_boxes:
            self.raw_boxes.extend(clamp_box(raw, *self._frame_size))
        return self._crop_ready(self.smoother.push(raw))

    def flush(self) -> torch.Tensor | None:
        """The remaining crops; MediaError if no face was found at all."""
        settled: list[np.ndarray] = []
        if self._skipped:
            # the video ended between landmark frames: look at its last frame, so the tail is
            # interpolated towards it rather than held
            self._skipped -= 1
            last = self.landmarker.detect(to_uint8_hwc(self._frames[-1][None]))[0]
            settled = self._push_key(last)
        rest = settled + self.filler.finish()
        self._points.extend(rest)
        raw = face_box(np.stack(rest), self.scale, self.offset_y) if rest else np.zeros((0, 3))
        if self.keep_boxes and self._frame_size is not None:
            self.raw_boxes.extend(clamp_box(raw, *self._frame_size))
        boxes = self.smoother.push(raw)
        tail = self.smoother.flush()
        boxes = np.concatenate([boxes, tail]) if len(tail) else boxes
        return self._crop_ready(boxes)


class PhotoCache:
    """Arrays computed from a photo, kept for the last few photos (the least recently used
    goes first when full); keyed by the photo's pixels and whatever else the computation
    read. The landmarks of a photo and its person matte are kept so."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: "OrderedDict[tuple[Any, ...], np.ndarray]" = OrderedDict()

    @staticmethod
    def key(rgb: np.ndarray, *extra: Any) -> tuple[Any, ...]:
        """The key of a uint8 photo's pixels, plus ``extra``."""
        return (hashlib.blake2b(rgb.tobytes(), digest_size=16).hexdigest(), rgb.shape, *extra)

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        """A copy of what is kept under ``key``, or None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key].copy()

    def put(self, key: tuple[Any, ...], value: np.ndarray) -> np.ndarray:
        """Keep ``value`` under ``key`` (the oldest goes when full); returns a copy of it."""
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value.copy()


_PHOTO_CACHE = PhotoCache()


def photo_landmarks(photo: torch.Tensor, landmarker: str = "mediapipe", face: int = 0,
                    what: str = "the photo") -> np.ndarray:
    """The 68 points ``(68, 2)`` of a ``(3, H, W)`` photo's face, cached per photo, so the
    target's facecrop and its paste-back find the very same box."""
    rgb = to_uint8_hwc(photo[None])
    key = _PHOTO_CACHE.key(rgb, landmarker, int(face))
    cached = _PHOTO_CACHE.get(key)
    if cached is not None:
        return cached
    faces = make_landmarker(landmarker, still=True).detect(rgb)[0]
    if len(faces) <= face:
        found = f"only {len(faces)} face(s)" if faces else "no face"
        raise MediaError(f"no face found in {what}" if not faces else
                         f"{found} found in {what}, asked for face {face}",
                         hint="use a photo where the face is clearly visible"
                         if not faces else "pick a lower face index")
    return _PHOTO_CACHE.put(key, np.asarray(faces[face].pts68[0], np.float32))


def photo_box(pts68: np.ndarray, height: int, width: int, scale: float = DEFAULT_SCALE,
              offset_y: float = DEFAULT_OFFSET_Y) -> np.ndarray:
    """The photo's clamped crop box ``(cx, cy, side)`` (deterministic from its landmarks)."""
    return clamp_box(face_box(pts68, scale, offset_y), height, width)
