"""Locate and talk to the ffmpeg executable.

The binary is ``DTGAN_FFMPEG``, then ``ffmpeg`` on PATH, then the one imageio-ffmpeg ships, so a
plain ``pip install`` is enough. The rest of this module is what every ffmpeg child process
needs: a stderr drain (an undrained stderr pipe deadlocks ffmpeg once its buffer fills), a way
to turn ffmpeg's stderr into one meaningful line, exact frame rates, and a cheap stream probe.
Import stays light (standard library only) because the CLI imports the media plugin at start-up.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO

from dtgan_plugin.errors import MediaError

ENV_VAR = "DTGAN_FFMPEG"


@functools.lru_cache(maxsize=None)
def _find(env_value: str | None) -> str:
    """Resolve the binary for a given DTGAN_FFMPEG value (cached per value so tests can override it)."""
    if env_value:
        # An explicit setting must work: silently falling back would hide a user's mistake.
        path = env_value if os.path.sep in env_value else shutil.which(env_value)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise MediaError(
            f"{ENV_VAR}={env_value!r} is not an executable ffmpeg",
            hint=f"point {ENV_VAR} at an ffmpeg binary or unset it",
        )
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # imageio_ffmpeg raises RuntimeError or ImportError when it has no binary
        exe = None
    if exe and os.path.isfile(exe):
        return exe
    raise MediaError(
        "no ffmpeg executable found",
        hint=f"install ffmpeg on PATH, `pip install imageio-ffmpeg`, or set {ENV_VAR}",
    )


def find_ffmpeg() -> str:
    """Path of the ffmpeg executable to run (cached); MediaError with a fix if there is none."""
    return _find(os.environ.get(ENV_VAR) or None)


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` (for diagnostics and bug reports)."""
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-version"], capture_output=True,
                         text=True, timeout=30)
    return (out.stdout.splitlines() or ["unknown"])[0]


def base_cmd(loglevel: str = "error") -> list[str]:
    """``[ffmpeg, -hide_banner, -nostats, -loglevel LEVEL]``: the start of every command we run."""
    return [find_ffmpeg(), "-hide_banner", "-nostats", "-loglevel", loglevel]


# ---------------------------------------------------------------------------------------------
# stderr handling

# Summary lines ffmpeg prints after the real cause; they say nothing the user can act on.
_GENERIC = re.compile(
    r"^(Error opening (input|output) files?\b|Conversion failed|Exiting with exit code"
    r"|Error initializing filters?$|Error parsing a filter description around"
    r"|Nothing was written into output file|Terminating thread with return code"
    r"|Task finished with error code|Error while filtering|Error sending frames to consumers"
    r"|Could not open encoder before EOF|Error while processing the decoded data"
    r"|Error submitting|Error closing|Error while decoding stream|Error reinitializing filters"
    r"|Failed to inject frame into filter network|Error parsing filterchain"
    r"|Error while opening encoder)",
    re.IGNORECASE,
)
_TAG = re.compile(r"^\[([^\]@]+?)(?: @ 0x[0-9a-f]+)?\]\s*")
_PARSED_FILTER = re.compile(r"^Parsed_(\w+?)_\d+$")


_ERROR_LEAD = re.compile(r"^Error opening (input|output)( file)?: ", re.IGNORECASE)


def clean_stderr_line(line: str) -> str:
    """Strip ffmpeg's ``[ctx @ 0x…]`` prefixes, keeping a filter's name (``scale: Invalid size``)."""
    line = _ERROR_LEAD.sub("", line.strip())
    name = ""
    while True:
        match = _TAG.match(line)
        if not match:
            break
        tag = match.group(1).strip()
        parsed = _PARSED_FILTER.match(tag)
        if parsed and not name:
            name = parsed.group(1)
        line = _ERROR_LEAD.sub("", line[match.end():])
    return f"{name}: {line}" if name else line


def last_meaningful_line(lines: list[str] | collections.deque, default: str = "") -> str:
    """The last stderr line that explains a failure, with generic summaries skipped."""
    fallback = ""
    for raw in reversed(list(lines)):
        text = clean_stderr_line(raw)
        if not text:
            continue
        fallback = fallback or text
        if not _GENERIC.search(text):
            return text.rstrip(".: ")
    return (fallback or default).rstrip(".: ")


class StderrDrain:
    """Read a child's stderr on a daemon thread into a bounded ring of lines.

    ffmpeg blocks once the stderr pipe buffer (64 KiB) is full; draining on a thread avoids that
    deadlock, and the ring bounds memory however chatty the child is.
    """

    def __init__(self, stream: IO[bytes], *, max_lines: int = 200) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name="ffmpeg-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError):  # pipe closed under us while the process is killed
            pass

    def join(self, timeout: float | None = 5.0) -> None:
        """Wait until the child closed stderr (or the timeout passed)."""
        self._thread.join(timeout)

    def message(self, default: str = "") -> str:
        """The last meaningful line seen so far."""
        return last_meaningful_line(self.lines, default)


def kill_process(proc: subprocess.Popen | None) -> None:
    """Kill a child if it still runs and reap it (no zombies, no open pipes)."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
        pass


# ---------------------------------------------------------------------------------------------
# frame rates

_COMMON_DENOMS = (1, 1001, 2, 3, 4, 5, 6, 8, 10, 12, 100, 1000)


def fps_fraction(fps: float | Fraction | str) -> Fraction:
    """An exact rational frame rate (29.97002997 -> 30000/1001); MediaError if not positive."""
    try:
        value = Fraction(fps) if isinstance(fps, (str, Fraction)) else Fraction(float(fps))
    except (ValueError, ZeroDivisionError, TypeError):
        raise MediaError(f"invalid frame rate {fps!r}", hint="use a positive number such as 25 or 30000/1001") from None
    if value <= 0:
        raise MediaError(f"invalid frame rate {fps!r}", hint="use a positive number such as 25 or 30000/1001")
    if isinstance(fps, (str, Fraction)):
        return value
    # floats such as 29.97002997 come from a rational; find the NTSC-style one it rounds from
    for den in _COMMON_DENOMS:
        cand = Fraction(round(float(value) * den), den)
        if cand > 0 and abs(float(cand) - float(value)) < 1e-6 * float(value):
            return cand
    return value.limit_denominator(100000)


def fps_str(fps: float | Fraction | str) -> str:
    """The frame rate as ffmpeg's ``num/den`` (or an integer) string."""
    frac = fps_fraction(fps)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


# ---------------------------------------------------------------------------------------------
# probing through ``ffmpeg -i`` (imageio-ffmpeg ships no ffprobe)

@dataclass
class ProbeResult:
    """What ``ffmpeg -i`` says about a file's first video stream and its audio streams."""

    width: int = 0
    height: int = 0
    fps: float = 0.0
    duration: float | None = None
    video_codec: str | None = None
    audio_codecs: list[str] = field(default_factory=list)
    error: str = ""
    #: ffmpeg's complaints (unindented stderr lines), for callers that look for a specific cause
    messages: list[str] = field(default_factory=list)

    @property
    def has_video(self) -> bool:
        """True when the file has a video stream."""
        return self.video_codec is not None


_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (\w+)(.*)$")
_SIZE = re.compile(r",\s*(\d+)x(\d+)[\s,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def probe_file(path: str) -> ProbeResult:
    """Parse ``ffmpeg -hide_banner -i PATH`` (exits 1 by design: no output is named)."""
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", path]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ProbeResult(error="ffmpeg timed out while probing")
    lines = proc.stderr.decode("utf-8", "replace").splitlines()
    out = ProbeResult()
    for line in lines:
        dur = _DURATION.search(line)
        if dur and out.duration is None:
            h, m, s = dur.groups()
            out.duration = int(h) * 3600 + int(m) * 60 + float(s)
        match = _STREAM.match(line)
        if not match:
            continue
        kind, codec, rest = match.groups()
        if kind == "Audio":
            out.audio_codecs.append(codec)
        elif out.video_codec is None and "attached pic" not in rest:
            out.video_codec = codec
            size = _SIZE.search(rest + ",")
            if size:
                out.width, out.height = int(size.group(1)), int(size.group(2))
            rates = {unit: float(num) * (1000 if k else 1) for num, k, unit in _FPS.findall(rest)}
            out.fps = rates.get("fps") or rates.get("tbr") or 0.0
    if not out.has_video and not out.audio_codecs:
        # the stream dump is indented; what is left are ffmpeg's own complaints
        out.messages = [clean_stderr_line(l) for l in lines if l and not l[0].isspace()
                        and not l.startswith(("Input #", "At least one output"))]
        out.error = last_meaningful_line(out.messages)
    return out
