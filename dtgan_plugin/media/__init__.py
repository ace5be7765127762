"""Media I/O: video readers (decord, ffmpeg pipes, y4m on stdin), images, the ffmpeg writer.

Public API::

    from dtgan_plugin.media import open_video, read_image, VideoWriter

    with open_video("in.mp4", size=(256, 256)) as reader:           # size is (width, height)
        with VideoWriter("out.mp4", fps=reader.fps, width=256, height=256,
                         audio_from="in.mp4") as writer:
            for chunk in reader.chunks():                            # VideoChunk (T, 3, H, W)
                writer.write(chunk)

Names are imported lazily (PEP 562) so that importing the media plugin at CLI start-up does not
pull in torch or decord.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: extensions opened with decord (random access); other videos go through ffmpeg
DECORD_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
    ".nut",
)
#: still-image extensions read by :func:`read_image`
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: extensions the ffmpeg reader is known to handle besides decord's (it tries anything)
FFMPEG_VIDEO_EXTENSIONS: tuple[str, ...] = (".ts", ".mts", ".m2ts", ".ogv", ".gif", ".y4m")

_LAZY: dict[str, str] = {
    "find_ffmpeg": ".ffmpeg_bin", "ffmpeg_version": ".ffmpeg_bin", "fps_fraction": ".ffmpeg_bin",
    "open_video": ".video", "open_video_stream": ".video", "probe": ".video",
    "is_image_path": ".video", "is_sequence_pattern": ".video", "VideoReader": ".video",
    "DecordReader": ".video", "FFmpegReader": ".video", "Y4MReader": ".video",
    "FrameRangeError": ".video",
    "read_image": ".image", "write_image": ".image", "probe_image": ".image",
    "VideoWriter": ".writer", "open_writer": ".writer", "resolve_codec": ".writer",
    "CODECS": ".writer", "AUTO_CODEC": ".writer", "WRITER_EXTENSIONS": ".writer",
    "Y4MHeader": ".y4m", "Y4MStream": ".y4m", "parse_header": ".y4m",
    "mux_audio": ".mux", "atempo_factors": ".mux",
}

__all__ = sorted([*_LAZY, "DECORD_EXTENSIONS", "IMAGE_EXTENSIONS", "FFMPEG_VIDEO_EXTENSIONS"])


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
