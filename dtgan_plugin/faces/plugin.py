"""The built-in faces plugin: the ``mediapipe`` and ``synth`` landmarkers and the face stages.

Registered through the same hooks a third party uses. Nothing heavy is imported here: the
landmarkers import MediaPipe or synthfaces only when built.
"""

from __future__ import annotations

from typing import Any, Callable

from ..hooks.hookspecs import hookimpl


def _mediapipe(**options: Any) -> Any:
    from .mediapipe_landmarker import MediaPipeLandmarker

    return MediaPipeLandmarker(**options)


def _synth(**options: Any) -> Any:
    from .synth_landmarker import SynthLandmarker

    return SynthLandmarker(**options)


@hookimpl
def dtgan_register_landmarkers(register: Callable[..., None]) -> None:
    """The built-in landmarkers."""
    register("mediapipe", _mediapipe,
             description="MediaPipe FaceMesh, 478 points + 68 (offline; extra 'faces')")
    register("synth", _synth, description="exact points of a synthfaces clip (identity, params)")


@hookimpl
def dtgan_register_filters(register: Callable[[type], None]) -> None:
    """``dtgan.facecrop`` and ``dtgan.pasteback``."""
    from .stages import STAGES

    for cls in STAGES:
        register(cls)
