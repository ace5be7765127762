"""YUV4MPEG2 (``.y4m``) parsing: the raw-frame format ``ffmpeg -f yuv4mpegpipe`` writes to pipes.

A stream is one header line, ``YUV4MPEG2 W<w> H<h> F<num>:<den> [I…] [A…] [C…] [X…]``, then
per frame a ``FRAME[ params]\\n`` line followed by the planes (Y, then Cb, Cr at the chroma
subsampling that ``C`` names; samples above 8 bits are 16-bit little-endian). We parse it
ourselves so ``ffmpeg … -f yuv4mpegpipe - | dtgan … -i -`` needs no second ffmpeg, and the frame
rate stays exact (``F30000:1001``).

Colour: BT.601 (what ffmpeg assumes for untagged SD and for y4m), limited range unless the
header says ``XCOLORRANGE=FULL``. Chroma is upsampled by repeating samples, as ffmpeg's own
unscaled yuv→rgb converters do.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import IO

import numpy as np
import torch

from dtgan_plugin.errors import MediaError

MAGIC = b"YUV4MPEG2"
FRAME_MAGIC = b"FRAME"
_MAX_LINE = 4096  # a header or FRAME line longer than this is not y4m

# C tag -> (chroma subsampling shift x, y or None for mono, bit depth, has alpha plane)
_COLORSPACES: dict[str, tuple[int, int, bool, int, bool]] = {}


def _register_colorspaces() -> None:
    for base, (sx, sy, chroma) in {"420": (1, 1, True), "422": (1, 0, True),
                                   "444": (0, 0, True), "411": (2, 0, True),
                                   "mono": (0, 0, False)}.items():
        _COLORSPACES[base] = (sx, sy, chroma, 8, False)
        for bits in (9, 10, 12, 14, 16):
            _COLORSPACES[f"{base}p{bits}"] = (sx, sy, chroma, bits, False)
    _COLORSPACES["mono"] = (0, 0, False, 8, False)
    for bits in (9, 10, 12, 14, 16):
        _COLORSPACES[f"mono{bits}"] = (0, 0, False, bits, False)
    # the 4:2:0 variants differ only in chroma siting, which nearest upsampling ignores
    for alias in ("420jpeg", "420paldv", "420mpeg2"):
        _COLORSPACES[alias] = _COLORSPACES["420"]
    _COLORSPACES["444alpha"] = (0, 0, True, 8, True)


_register_colorspaces()


@dataclass(frozen=True)
class Y4MHeader:
    """The parsed stream header: size, exact frame rate, pixel layout and colour range."""

    width: int
    height: int
    fps: Fraction
    colorspace: str = "420jpeg"
    full_range: bool = False
    interlace: str = "p"
    header_len: int = 0

    @property
    def layout(self) -> tuple[int, int, bool, int, bool]:
        """(chroma shift x, chroma shift y, has chroma, bits per sample, has alpha)."""
        return _COLORSPACES[self.colorspace]

    @property
    def bit_depth(self) -> int:
        """Bits per sample (8 to 16)."""
        return self.layout[3]

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(width, height) of each chroma plane; (0, 0) for mono."""
        sx, sy, chroma, _, _ = self.layout
        if not chroma:
            return 0, 0
        return -(-self.width // (1 << sx)), -(-self.height // (1 << sy))

    @property
    def frame_bytes(self) -> int:
        """Bytes of pixel data in one frame (without its FRAME line)."""
        cw, ch = self.chroma_size
        _, _, _, bits, alpha = self.layout
        samples = self.width * self.height * (2 if alpha else 1) + 2 * cw * ch
        return samples * (2 if bits > 8 else 1)


def parse_header(line: bytes) -> Y4MHeader:
    """Parse a ``YUV4MPEG2 …`` header line (with or without its newline); MediaError if invalid."""
    text = line.rstrip(b"\n").decode("ascii", "replace")
    tokens = text.split(" ")
    if not tokens or tokens[0] != MAGIC.decode():
        raise MediaError("input is not a YUV4MPEG2 stream (missing 'YUV4MPEG2' header)",
                         hint="pipe it with `ffmpeg ... -f yuv4mpegpipe -`")
    width = height = 0
    fps = Fraction(25)
    colorspace = "420jpeg"
    full_range = False
    interlace = "p"
    for tok in tokens[1:]:
        if not tok:
            continue
        key, val = tok[0], tok[1:]
        try:
            if key == "W":
                width = int(val)
            elif key == "H":
                height = int(val)
            elif key == "F":
                num, _, den = val.partition(":")
                fps = Fraction(int(num), int(den or 1))
            elif key == "C":
                colorspace = val
            elif key == "I":
                interlace = val or "p"
            elif key == "X" and val.upper().startswith("COLORRANGE="):
                full_range = val.split("=", 1)[1].upper() == "FULL"
        except (ValueError, ZeroDivisionError):
            raise MediaError(f"y4m header has a malformed field {tok!r}",
                             hint="regenerate the stream with ffmpeg -f yuv4mpegpipe") from None
    if width <= 0 or height <= 0:
        raise MediaError(f"y4m header has no valid frame size: {text[:80]!r}",
                         hint="regenerate the stream with ffmpeg -f yuv4mpegpipe")
    if fps <= 0:
        raise MediaError(f"y4m header has an invalid frame rate: {text[:80]!r}",
                         hint="regenerate the stream with ffmpeg -f yuv4mpegpipe")
    if colorspace not in _COLORSPACES:
        known = "420jpeg, 420mpeg2, 420paldv, 422, 444, 444alpha, mono and their pNN variants"
        raise MediaError(f"y4m colour space C{colorspace} is not supported",
                         hint=f"use one of {known}, e.g. ffmpeg -pix_fmt yuv420p")
    return Y4MHeader(width, height, fps, colorspace, full_range, interlace, len(line))


def _read_exact(stream: IO[bytes], buf: memoryview) -> int:
    """Fill ``buf`` from ``stream``; return the byte count (short only at end of stream)."""
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


class Y4MStream:
    """Sequential frame reader over a binary stream that starts with a y4m header.

    ``prefix`` holds bytes already taken from the stream (format sniffing) that belong in front.
    """

    def __init__(self, stream: IO[bytes], *, name: str = "stdin", prefix: bytes = b"") -> None:
        self.stream = stream
        self.name = name
        line = prefix
        if b"\n" not in line:
            line += stream.readline(_MAX_LINE)
        if not line:
            raise MediaError(f"{name} is empty: no y4m header arrived",
                             hint="check the command that feeds the pipe")
        if not line.startswith(MAGIC):
            raise MediaError(f"{name} is not a YUV4MPEG2 stream",
                             hint="pipe it with `ffmpeg ... -f yuv4mpegpipe -`")
        if not line.endswith(b"\n"):
            raise MediaError(f"{name} has a truncated or oversized y4m header",
                             hint="regenerate the stream with ffmpeg -f yuv4mpegpipe")
        self.header = parse_header(line)
        self.frames_read = 0

    def skip_frame_line(self) -> bool:
        """Consume one ``FRAME…\\n`` line; False at a clean end of stream."""
        line = self.stream.readline(_MAX_LINE)
        if not line:
            return False
        if not line.startswith(FRAME_MAGIC) or not line.endswith(b"\n"):
            raise MediaError(f"{self.name}: corrupt y4m stream at frame {self.frames_read} "
                             "(expected a FRAME marker)",
                             hint="the producer probably died mid-stream; check its output")
        return True

    def read_raw(self, count: int) -> np.ndarray | None:
        """Up to ``count`` frames of raw plane bytes, shape (N, frame_bytes); None at the end."""
        fb = self.header.frame_bytes
        out = np.empty((count, fb), dtype=np.uint8)
        n = 0
        while n < count:
            if not self.skip_frame_line():
                break
            got = _read_exact(self.stream, memoryview(out[n]))
            if got != fb:
                raise MediaError(f"{self.name}: y4m stream ended in the middle of frame "
                                 f"{self.frames_read} ({got} of {fb} bytes)",
                                 hint="the producer stopped early; check its log")
            n += 1
            self.frames_read += 1
        return out[:n] if n else None

    def read(self, count: int) -> torch.Tensor | None:
        """Up to ``count`` frames as RGB float32 (N, 3, H, W) in [0, 1]; None at the end."""
        raw = self.read_raw(count)
        return None if raw is None else planes_to_rgb(raw, self.header)


# BT.601 coefficients: R = Y + a*V', G = Y - b*U' - c*V', B = Y + d*U'
_BT601 = (1.402, 0.344136, 0.714136, 1.772)


def planes_to_rgb(raw: np.ndarray, header: Y4MHeader) -> torch.Tensor:
    """Convert raw y4m frame records (N, frame_bytes) to RGB float32 (N, 3, H, W) in [0, 1]."""
    n = raw.shape[0]
    w, h = header.width, header.height
    sx, sy, chroma, bits, _ = header.layout
    data = torch.from_numpy(raw)
    if bits > 8:
        # 16-bit little-endian samples; numpy view keeps it copy-free
        data = torch.from_numpy(raw.view("<u2").astype(np.int32))
        scale = float(1 << (bits - 8))
    else:
        scale = 1.0
    y_size = w * h
    y = data[:, :y_size].reshape(n, h, w).to(torch.float32) / scale
    if header.full_range:
        luma = y / 255.0
    else:
        luma = (y - 16.0) / 219.0
    if not chroma:
        rgb = luma.unsqueeze(1).expand(n, 3, h, w)
        return rgb.clamp(0.0, 1.0).contiguous()
    cw, ch = header.chroma_size
    c_size = cw * ch
    u = data[:, y_size:y_size + c_size].reshape(n, ch, cw).to(torch.float32) / scale
    v = data[:, y_size + c_size:y_size + 2 * c_size].reshape(n, ch, cw).to(torch.float32) / scale
    if sx or sy:
        u = u.repeat_interleave(1 << sy, dim=1).repeat_interleave(1 << sx, dim=2)[:, :h, :w]
        v = v.repeat_interleave(1 << sy, dim=1).repeat_interleave(1 << sx, dim=2)[:, :h, :w]
    denom = 255.0 if header.full_range else 224.0
    u = (u - 128.0) / denom
    v = (v - 128.0) / denom
    a, b, c, d = _BT601
    out = torch.empty((n, 3, h, w), dtype=torch.float32)
    torch.add(luma, v, alpha=a, out=out[:, 0])
    out[:, 1] = luma - b * u - c * v
    torch.add(luma, u, alpha=d, out=out[:, 2])
    return out.clamp_(0.0, 1.0)
