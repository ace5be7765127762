"""A person matte of a photo: MediaPipe's selfie segmenter (it ships in the mediapipe wheel).

Used when a model moves the hair with the head (``generator_cfg.head_outline``): the person
becomes a layer that moves over a still background (``models.head_layer``). Mattes are cached
per photo, like its landmarks.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MissingExtraError
from .autocrop import PhotoCache, to_uint8_hwc
from .mediapipe_landmarker import INSTALL_HINT, _native_logs_silenced

__all__ = ["person_matte"]

_CACHE = PhotoCache()


def person_matte(photo: torch.Tensor) -> torch.Tensor:
    """The soft person matte ``(H, W)`` in [0, 1] (the person 1) of a ``(3, H, W)`` photo in
    [0, 1]; raises :class:`MissingExtraError` without MediaPipe."""
    rgb = to_uint8_hwc(photo[None].detach().cpu())[0]
    key = _CACHE.key(rgb)
    matte = _CACHE.get(key)
    if matte is None:
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except ImportError as err:
            raise MissingExtraError(
                "a person matte needs MediaPipe 0.10.21, which cannot be imported "
                f"({str(err).splitlines()[0] if str(err) else 'missing'})",
                hint=INSTALL_HINT) from None
        # model 0, the general one (256x256): portraits and upper bodies alike
        with _native_logs_silenced(), selfie_segmentation.SelfieSegmentation(
                model_selection=0) as segmenter:
            result = segmenter.process(np.ascontiguousarray(rgb))
        matte = _CACHE.put(key, np.clip(np.asarray(result.segmentation_mask, np.float32),
                                        0.0, 1.0))
    return torch.from_numpy(matte)
