"""Whether to crop the face: the ``--crop auto|face|none`` policy, decided before any work.

``auto`` crops when a face landmarker is installed and finds a face; otherwise the whole frame
is used and the caller gets the reason (the CLI prints it as one notice line). ``face``
insists: no landmarker or no face is an error. ``none`` never crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import MediaError, MissingExtraError, UsageError

CROP_MODES = ("auto", "face", "none")


@dataclass(frozen=True)
class CropSettings:
    """How a transfer crops faces: the crop stages' options, and whether to paste back."""

    size: int
    landmarker: str = "mediapipe"
    face: int = 0
    paste_back: bool = True
    #: the target's crop side when above ``size``: a model that can warps it at this size
    detail: int = 0

    def stage_options(self) -> dict[str, Any]:
        """Options of ``dtgan.facecrop`` for the source (the model's size)."""
        return {"size": self.size, "landmarker": self.landmarker, "face": self.face}

    @property
    def target_size(self) -> int:
        """The target's crop side: the detail size, never below the model's."""
        return max(self.size, self.detail)

    def target_options(self) -> dict[str, Any]:
        """Options of ``dtgan.facecrop`` for the target (at :attr:`target_size`)."""
        return {**self.stage_options(), "size": self.target_size}

    def paste_options(self) -> dict[str, Any]:
        """Options of ``dtgan.pasteback`` (the same face and box rule as the target's crop)."""
        return {"landmarker": self.landmarker, "face": self.face}


def decide_crop(mode: str, image: torch.Tensor | None, *, what: str,
                landmarker: str = "mediapipe", face: int = 0) -> tuple[bool, str | None]:
    """``(crop, why_not)`` for a ``(3, H, W)`` image in [0, 1]; raises for ``mode="face"``."""
    from .autocrop import photo_landmarks

    if mode not in CROP_MODES:
        raise UsageError(f"unknown crop mode '{mode}'", hint=f"use one of {', '.join(CROP_MODES)}")
    if mode == "none":
        return False, None
    if image is None:
        if mode == "face":
            raise UsageError(f"cannot crop the face of {what}: nothing to look at")
        return False, f"{what} cannot be inspected, so the whole frame is used"
    try:
        photo_landmarks(image, landmarker, face, what=what)  # cached: the stages reuse it
    except MissingExtraError as err:
        if mode == "face":
            raise
        return False, (f"no face landmarker installed, so the whole frame is used "
                       f"(for auto-crop and paste-back: {err.hint})")
    except MediaError as err:
        # a missing face falls back under auto; too few faces for the asked index does not
        if mode == "face" or not err.message.startswith("no face found"):
            raise
        return False, f"{err.message}, so the whole frame is used (--crop none silences this)"
    return True, None
