"""Real faces: landmarkers (a plugin kind), tracking and auto-crop, paste-back, landmark files.

See DESIGN.md §12. MediaPipe is optional (``pip install 'dtgan-plugin[faces]'``); nothing here
imports it until the ``mediapipe`` landmarker is built. The heavier pieces load on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .registry import get_landmarker, landmarker_entries, landmarker_names
from .types import NUM_POINTS_68, FaceTrack, Landmarker

__getattr__, __dir__ = lazy_exports(__name__, {
    "AutoCropper": ".autocrop", "photo_landmarks": ".autocrop", "photo_box": ".autocrop",
    "PasteBack": ".paste", "save_landmarks": ".landmarks_file", "load_landmarks": ".landmarks_file",
    "decide_crop": ".decide", "CropSettings": ".decide",
})

__all__ = ["AutoCropper", "CropSettings", "FaceTrack", "Landmarker", "NUM_POINTS_68", "PasteBack",
           "decide_crop", "get_landmarker", "landmarker_entries", "landmarker_names",
           "load_landmarks", "photo_box", "photo_landmarks", "save_landmarks"]
