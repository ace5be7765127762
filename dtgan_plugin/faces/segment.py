"""A person matte of a photo: MediaPipe's selfie segmenter (it ships in the mediapipe wheel).

Used when a model moves the hair with the head (``generator_cfg.head_outline``): the person
becomes a layer that moves over a still background (``models.head_layer``). Mattes are cached
per photo, like its landmarks.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from ..errors import MissingExtraError
from .autocrop import to_uint8_hwc
from .mediapipe_landmarker import INSTALL_HINT, _native_logs_silenced

__all__ = ["person_matte"]

_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_SIZE = 8


def person_matte(photo: torch.Tensor) -> torch.Tensor:
    """The soft person matte ``(H, W)`` in [0, 1] (the person 1) of a ``(3, H, W)`` photo in
    [0, 1]; raises :class:`MissingExtraError` without MediaPipe."""
    rgb = to_uint8_hwc(photo[None].detach().cpu())[0]
    key = (hashlib.blake2b(rgb.tobytes(), digest_size=16).hexdigest(), rgb.shape)
    if key not in _CACHE:
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
        _CACHE[key] = np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return torch.from_numpy(_CACHE[key].copy())
