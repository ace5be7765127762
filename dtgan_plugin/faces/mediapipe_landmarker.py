"""The built-in ``mediapipe`` landmarker: MediaPipe FaceMesh (478 points) and its 68-point map.

MediaPipe 0.10.21 is the last wheel that bundles its models and the legacy ``solutions`` API,
so it runs offline; it pins ``numpy<2`` and ``protobuf<5``, hence the ``faces`` extra.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import MissingExtraError, UsageError
from .types import FaceTrack

INSTALL_HINT = "pip install 'dtgan-plugin[faces]'"

#: how many threads are inside :func:`_native_logs_silenced`, and the real fd 2 meanwhile
_SILENCE_LOCK = threading.Lock()
_silenced = 0
_saved_stderr: int | None = None

#: added to MediaPipe's normalised coordinates times the frame size, to put pixel centres at
#: i + 0.5 like every other coordinate here (crops, paste-back, the models). Measured on the
#: astronaut: a point plus its mirror image's mirrored point sums to the width minus 1.1
#: (fitted over sizes 60-512 px; continuous coordinates sum to the width), and doubling a
#: crop's size with whole-pixel repeats moves the points by +0.55 px more than twice (0 for
#: continuous coordinates, +0.5 for whole-number pixel centres). Fed with these coordinates,
#: the real-face model's motion correlation rose on all six real-video pairs (0.831 → 0.847).
PIXEL_CENTRE = 0.5

#: FaceMesh index of each iBUG 300-W point, written from the FaceMesh topology (canonical
#: face model): jaw along the silhouette from the image-left ear to the chin to the right,
#: brows outer→inner then inner→outer, nose bridge then nostrils, eyes from the outer corner
#: clockwise (upper lid, inner corner, lower lid), lips from the image-left corner clockwise.
MP_TO_68: np.ndarray = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107,                                    # right brow (image left)
    336, 296, 334, 293, 300,                                 # left brow
    168, 197, 5, 4,                                          # nose bridge, top to tip
    75, 97, 2, 326, 305,                                     # nostrils, left to right
    33, 160, 158, 133, 153, 144,                             # right eye (image left)
    362, 385, 387, 263, 373, 380,                            # left eye
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,     # outer lip
    78, 82, 13, 312, 308, 317, 14, 87,                       # inner lip
], dtype=np.int64)


def _face_mesh() -> Any:
    """The legacy FaceMesh module, or a one-line UsageError naming the install command."""
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as err:
        raise MissingExtraError(f"the 'mediapipe' landmarker needs MediaPipe 0.10.21, which cannot be "
                         f"imported ({str(err).splitlines()[0] if str(err) else 'missing'})",
                         hint=INSTALL_HINT) from None
    return face_mesh


def face_from_points(points: np.ndarray, frame_size: tuple[int, int], layout: str,
                     pts68: np.ndarray, confidence: float = 1.0) -> FaceTrack:
    """A one-frame :class:`FaceTrack` with the tight box of ``points``."""
    box = np.concatenate([points.min(0), points.max(0)]).astype(np.float32)
    return FaceTrack(pts68=pts68[None].astype(np.float32), points=points[None].astype(np.float32),
                     confidence=np.array([confidence], np.float32), boxes=box[None],
                     frame_size=frame_size, layout=layout)


@contextlib.contextmanager
def _native_logs_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null while MediaPipe starts its graph.

    Its C++ side logs a handful of start-up warnings straight to fd 2 (absl before
    InitializeLog, TFLite's delegate notice); no environment switch reaches them. Only graph
    creation and the first frame are wrapped, a few tens of milliseconds; ``DTGAN_VERBOSE``
    keeps them.

    A graph's stages start their landmarkers on several threads at once, and fd 2 belongs to
    the whole process: overlapping windows merge into one (the first to enter redirects, the
    last to leave restores). Each window saving and restoring fd 2 on its own let a late
    one restore the other's /dev/null, and stderr stayed silent for the rest of the run.
    """
    global _silenced, _saved_stderr
    if os.environ.get("DTGAN_VERBOSE"):
        yield
        return
    with _SILENCE_LOCK:
        if _silenced == 0:
            sys.stderr.flush()
            _saved_stderr = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _silenced += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silenced -= 1
            if _silenced == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


class MediaPipeLandmarker:
    """MediaPipe FaceMesh with refined eyes and lips (478 points) plus the 68-point layout.

    ``static=True`` detects afresh on every frame (photos); otherwise FaceMesh tracks from
    frame to frame (videos), which is faster and steadier. The legacy graph does not expose
    its face-presence score, so a found face has confidence 1 and a lost one is absent.
    """

    name = "mediapipe"
    native_layout = "mediapipe478"

    def __init__(self, *, static: bool = False, max_num_faces: int = 4,
                 min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        self._fm = _face_mesh()
        if int(max_num_faces) < 1:
            raise UsageError(f"mediapipe landmarker: max_num_faces must be >= 1, "
                             f"got {max_num_faces}")
        self._kwargs = dict(static_image_mode=bool(static), max_num_faces=int(max_num_faces),
                            refine_landmarks=True,
                            min_detection_confidence=float(min_detection_confidence),
                            min_tracking_confidence=float(min_tracking_confidence))
        self._mesh: Any = None
        self._first: Any = None

    def _ensure(self, first: np.ndarray) -> Any:
        if self._mesh is None:
            with _native_logs_silenced():
                self._mesh = self._fm.FaceMesh(**self._kwargs)
                self._first = self._mesh.process(np.ascontiguousarray(first))
        return self._mesh

    def detect(self, frames: np.ndarray) -> list[list[FaceTrack]]:
        """Faces on each ``(T, H, W, 3)`` uint8 RGB frame, largest first."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} "
                             f"{frames.dtype}")
        if not len(frames):
            return []
        mesh = self._ensure(frames[0])
        h, w = int(frames.shape[1]), int(frames.shape[2])
        scale = np.array([w, h], np.float32)
        out: list[list[FaceTrack]] = []
        for frame in frames:
            # the first frame of a fresh graph was processed while its logs were silenced
            result, self._first = (self._first, None) if self._first is not None else \
                (mesh.process(np.ascontiguousarray(frame)), None)
            faces = []
            for lms in result.multi_face_landmarks or ():
                pts = np.array([(p.x, p.y) for p in lms.landmark], np.float32) * scale \
                    + PIXEL_CENTRE
                faces.append(face_from_points(pts, (h, w), self.native_layout, pts[MP_TO_68]))
            faces.sort(key=lambda f: -float(np.prod(f.boxes[0, 2:] - f.boxes[0, :2])))
            out.append(faces)
        return out

    def reset(self) -> None:
        """Forget the tracking state (a new video starts)."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self.reset()
