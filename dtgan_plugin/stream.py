"""The packets that flow along graph edges, and the stream descriptions known before running.

Pad kinds: ``video`` (a stream of :class:`VideoChunk`), ``image`` (exactly one
:class:`ImagePacket`), ``dynamics`` (a stream of :class:`DynamicsChunk`).
Frames are float32 in [0, 1], layout ``(T, C, H, W)`` with C = 3 (RGB).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

import torch


class PadKind(str, enum.Enum):
    """What a pad carries."""

    VIDEO = "video"
    IMAGE = "image"
    DYNAMICS = "dynamics"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StreamInfo:
    """What is known about a stream before any frame is decoded.

    ``num_frames`` is None when unknown (a pipe). ``dim`` is the dynamics vector size.
    ``meta`` carries kind-specific facts (for dynamics: ``checkpoint``, ``reference_frame``).
    """

    kind: PadKind
    fps: float = 25.0
    width: int = 0
    height: int = 0
    num_frames: int | None = None
    dim: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> "StreamInfo":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass
class VideoChunk:
    """Consecutive frames ``(T, 3, H, W)`` float in [0, 1]; ``start`` is the first frame's index.

    ``landmarks`` is optional side data: the tracked face's 68 points ``(T, 68, 2)`` in pixels
    of these frames, attached by ``dtgan.facecrop`` so that a landmark model downstream need not
    find the face again. A stage that changes the frames' geometry builds new chunks without it.
    ``outline`` likewise: the head outline's points ``(T, K, 2)`` where a transfer moved the
    hair with the head (``dtgan.pasteback``'s mask then covers the hair).
    """

    frames: torch.Tensor
    start: int
    fps: float
    landmarks: torch.Tensor | None = None
    outline: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class ImagePacket:
    """A single image ``(3, H, W)`` float in [0, 1]."""

    image: torch.Tensor


@dataclass
class DynamicsChunk:
    """Per-frame dynamics vectors ``(T, D)``; ``meta`` names the model and reference frame."""

    vectors: torch.Tensor
    start: int
    fps: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


Packet = VideoChunk | ImagePacket | DynamicsChunk

DEFAULT_CHUNK = 32

#: ``StreamInfo.meta`` key: seconds into the input's audio where the stream's first frame is
#: (``dtgan.trim`` adds its start), so ``--keep-audio`` stays in sync after a trim
AUDIO_OFFSET = "audio_offset"
#: ``StreamInfo.meta`` key: how much faster than its input's audio the stream plays
#: (``dtgan.retime``'s speed), so ``--keep-audio`` speeds the audio up alike (pitch kept)
AUDIO_TEMPO = "audio_tempo"
#: ``StreamInfo.meta`` key: why no audio can follow the stream (reversed or looped motion)
AUDIO_UNSYNCED = "audio_unsynced"
_AUDIO_KEYS = (AUDIO_OFFSET, AUDIO_TEMPO, AUDIO_UNSYNCED)

#: most bytes of float32 frames a decoded chunk holds: chunks of large frames get fewer frames
#: (256x256: 10, 1080p: 1), so what the bounded queues hold stays small whatever the resolution
CHUNK_BYTES = 8 << 20


#: largest frame side a stage may produce, and most bytes of one float32 frame: anything
#: larger cannot be meant (12000x12000 is 1.7 GB a frame) and is refused before any work
MAX_SIDE = 16384
MAX_FRAME_BYTES = 1 << 30


def frame_bytes(width: int, height: int) -> int:
    """Bytes of one float32 RGB frame."""
    return 3 * 4 * max(1, int(width)) * max(1, int(height))


def frames_per_chunk(chunk_size: int, width: int, height: int) -> int:
    """Frames per decoded chunk: at most ``chunk_size``, and at most :data:`CHUNK_BYTES` of them."""
    return max(1, min(int(chunk_size), CHUNK_BYTES // frame_bytes(width, height)))


def check_frame_size(width: int, height: int, stage: str) -> None:
    """OptionError when ``stage`` would make frames too large to hold (see :data:`MAX_SIDE`)."""
    from .errors import OptionError

    if max(width, height) > MAX_SIDE or frame_bytes(width, height) > MAX_FRAME_BYTES:
        raise OptionError(f"{stage}: a {width}x{height} frame is too large "
                          f"({frame_bytes(width, height) / 2**30:.1f} GiB as float32)",
                          hint=f"keep each side at most {MAX_SIDE} px and a frame under "
                               f"{MAX_FRAME_BYTES >> 30} GiB (about 9400x9400)")


def split_frames(frames: torch.Tensor, chunk_size: int = DEFAULT_CHUNK) -> list[torch.Tensor]:
    """``(T, C, H, W)`` frames as views of at most :func:`frames_per_chunk` frames each."""
    n = frames_per_chunk(chunk_size, int(frames.shape[-1]), int(frames.shape[-2]))
    return list(frames.split(n)) if frames.shape[0] > n else [frames]


def audio_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The audio-timing entries of a stream's meta, for stages that start a new StreamInfo."""
    return {k: meta[k] for k in _AUDIO_KEYS if k in meta}
