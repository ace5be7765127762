"""Real faces: landmarkers (a plugin kind), tracking and auto-crop, paste-back, landmark files.

See DESIGN.md §12. MediaPipe is optional (``pip install 'dtgan-plugin[faces]'``); nothing here
imports it until the ``mediapipe`` landmarker is built.
"""

from __future__ import annotations

from .registry import get_landmarker, landmarker_entries, landmarker_names
from .types import NUM_POINTS_68, FaceTrack, Landmarker

__all__ = ["FaceTrack", "Landmarker", "NUM_POINTS_68", "get_landmarker", "landmarker_entries",
           "landmarker_names"]
