"""Graph stages for real faces: ``dtgan.facecrop`` and ``dtgan.pasteback``.

| stage           | pads                          | what                                      |
|-----------------|-------------------------------|-------------------------------------------|
| dtgan.facecrop  | video → video, image → image  | landmarks, smoothed square box, crop      |
| dtgan.pasteback | image + video → video         | crops composited into the full photo      |

The photo's box is recomputed from its landmarks (cached per photo), so ``facecrop`` of the
target and ``pasteback`` agree exactly when given the same ``scale`` and ``offset_y``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import UsageError
from ..stream import ImagePacket, Packet, PadKind, StreamInfo, VideoChunk, frames_per_chunk
from ..filters.base import Filter, Option, Pad
from .crop import DEFAULT_OFFSET_Y, DEFAULT_RADIUS, DEFAULT_SCALE, crop_frames
from .paste import PasteBack

_FACE_OPTIONS = (
    Option("landmarker", str, "mediapipe", "registered landmarker name"),
    Option("face", int, 0, "which face: 0 = the largest, 1 = the next, ...", min=0),
    Option("scale", float, DEFAULT_SCALE, "box side over the face's extent (1.9 = whole head)",
           min=0.5, max=8.0),
    Option("offset_y", float, DEFAULT_OFFSET_Y, "move the box down by this fraction of its side",
           min=-1.0, max=1.0),
)


class FaceCrop(Filter):
    """Find the face, follow it with a smoothed square box, and crop every frame to it."""

    name = "dtgan.facecrop"
    description = ("Auto-crop the face: landmarks, a square box smoothed over time (follows the "
                   "head, no jitter), cropped to size x size. Works on a photo too.")
    inputs = (Pad("in", PadKind.VIDEO),)
    outputs = (Pad("out", PadKind.VIDEO),)
    kind_follows_input: ClassVar[tuple[PadKind, ...]] = (PadKind.VIDEO, PadKind.IMAGE)
    options = (*_FACE_OPTIONS,
               Option("size", int, 256, "output side in pixels", min=8, max=4096),
               Option("smooth", int, DEFAULT_RADIUS,
                      "smoothing radius in frames (the lookahead; 0 = none)", min=0, max=250))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Square output of ``size``; the landmarker is built now, so a bad name or a missing
        extra fails before decoding starts."""
        from .autocrop import make_landmarker
        from .registry import get_landmarker, landmarker_entries

        if infos[0].kind is PadKind.VIDEO:
            self._landmarker = make_landmarker(self.opts["landmarker"], still=False)
        elif self.opts["landmarker"] not in landmarker_entries():
            get_landmarker(self.opts["landmarker"])  # raises the did-you-mean error
        size = self.opts["size"]
        return infos[0].with_(width=size, height=size)

    def _crop_image(self, packet: ImagePacket) -> ImagePacket:
        from .autocrop import photo_box, photo_landmarks

        image = packet.image
        pts = photo_landmarks(image, self.opts["landmarker"], self.opts["face"])
        box = photo_box(pts, int(image.shape[-2]), int(image.shape[-1]), self.opts["scale"],
                        self.opts["offset_y"])
        return ImagePacket(crop_frames(image[None], box[None], self.opts["size"])[0])

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Crop chunk by chunk (frames wait only for the smoother's lookahead and face gaps)."""
        from .autocrop import AutoCropper, make_landmarker

        cropper: AutoCropper | None = None
        fps = 25.0
        produced = 0
        for packet in inputs[0]:
            if isinstance(packet, ImagePacket):
                yield self._crop_image(packet)
                continue
            if not isinstance(packet, VideoChunk):
                raise TypeError(f"{self.name}: expected video or an image, got "
                                f"{type(packet).__name__}")
            if cropper is None:
                landmarker = getattr(self, "_landmarker", None) or make_landmarker(
                    self.opts["landmarker"], still=False)
                cropper = AutoCropper(landmarker,
                                      face=self.opts["face"], scale=self.opts["scale"],
                                      offset_y=self.opts["offset_y"], size=self.opts["size"],
                                      radius=self.opts["smooth"], what="the source video")
                self._cropper = cropper
            fps = packet.fps
            out = cropper.push(packet.frames)
            del packet
            if out is not None:
                yield VideoChunk(out, produced, fps, self._points(cropper))
                produced += len(out)
        if cropper is not None:
            out = cropper.flush()
            if out is not None:
                yield VideoChunk(out, produced, fps, self._points(cropper))
            if cropper.filled and self.ctx.verbose:
                print(f"dtgan.facecrop: face lost on {cropper.filled} of {cropper.filler.frames}"
                      f" frames, filled from neighbours", file=sys.stderr)
            self.filled = cropper.filled

    @staticmethod
    def _points(cropper: Any) -> Any:
        """The crops' landmarks as side data (a landmark model reads them)."""
        import torch

        return torch.from_numpy(cropper.last_points)

    def close(self) -> None:
        """Release the landmarker (MediaPipe holds a native graph)."""
        cropper = getattr(self, "_cropper", None)
        if cropper is not None:
            cropper.landmarker.reset()
            self._cropper = None


class PasteBackStage(Filter):
    """Composite animated face crops back into the full-resolution photo."""

    name = "dtgan.pasteback"
    description = ("Paste face crops (video) into the photo they were cropped from (image): "
                   "feathered landmark mask, colour matched at the seam; outside the mask "
                   "every pixel is the photo's. Output at the photo's size (odd sizes padded "
                   "by one edge row/column when even=1).")
    inputs = (Pad("photo", PadKind.IMAGE), Pad("crops", PadKind.VIDEO))
    outputs = (Pad("out", PadKind.VIDEO),)
    options = (*_FACE_OPTIONS,
               Option("dilate", float, 0.04, "grow the mask by this fraction of the box side",
                      min=0.0, max=0.5),
               Option("feather", float, 0.04, "soft edge width, fraction of the box side",
                      min=0.001, max=0.5),
               Option("colour_match", bool, True, "match the crop's colour at the seam"),
               Option("even", bool, True, "pad odd sizes to even (h264 needs them)"),
               Option("follow", bool, True, "when the crops carry the face's landmarks (a "
                      "landmark model's dtgan.transfer), grow each frame's mask over where "
                      "the face moved (and the hair, when the model moves it with the head)"))

    def configure(self, infos: Sequence[StreamInfo]) -> StreamInfo:
        """Output at the photo's size (made even when asked)."""
        photo, crops = infos
        if not photo.width or not photo.height:
            raise UsageError(f"{self.name}: the photo's size is unknown")
        w, h = photo.width, photo.height
        if self.opts["even"]:
            w, h = w + w % 2, h + h % 2
        return crops.with_(width=w, height=h)

    def run(self, inputs: Sequence[Iterator[Packet]]) -> Iterator[Packet]:
        """Paste every chunk of crops."""
        from .autocrop import photo_box, photo_landmarks

        photo: Any = next(iter(inputs[0]), None)
        if not isinstance(photo, ImagePacket):
            raise UsageError(f"{self.name}: the photo input produced no image")
        image = photo.image
        pts = photo_landmarks(image, self.opts["landmarker"], self.opts["face"])
        box = photo_box(pts, int(image.shape[-2]), int(image.shape[-1]), self.opts["scale"],
                        self.opts["offset_y"])
        paster: PasteBack | None = None
        per = 1
        for chunk in inputs[1]:
            moved = chunk.landmarks if self.opts["follow"] else None
            hair = chunk.outline if moved is not None else None
            if paster is None:
                # made with the first chunk: whether the hair moved decides the resting mask
                paster = self._paster(image, pts, box, hair is not None)
                h, w = paster.out_size
                per = frames_per_chunk(self.ctx.chunk_size, w, h)  # full-size frames
            for i in range(0, len(chunk), per):
                part = chunk.frames[i:i + per]
                yield VideoChunk(paster.paste(part, None if moved is None else moved[i:i + per],
                                              None if hair is None else hair[i:i + per]),
                                 chunk.start + i, chunk.fps)

    def _paster(self, image: torch.Tensor, pts: np.ndarray, box: np.ndarray,
                hair: bool) -> PasteBack:
        """The photo's paster; with ``hair``, its resting mask covers the head's outline and
        the person's matte near it (the hair's fringe), when MediaPipe can make the matte."""
        outline = matte = None
        if hair:
            from ..errors import MissingExtraError
            from ..models.head_outline import head_outline
            from .segment import person_matte

            outline = head_outline(torch.as_tensor(np.asarray(pts), dtype=torch.float64)[None]
                                   )[0].numpy()
            try:
                matte = person_matte(image)   # cached per photo
            except MissingExtraError:
                matte = None                  # the renderer then has none either
        return PasteBack(image, pts, box, dilate=self.opts["dilate"],
                         feather=self.opts["feather"], colour_match=self.opts["colour_match"],
                         even=self.opts["even"], outline=outline, matte=matte)


STAGES = (FaceCrop, PasteBackStage)
