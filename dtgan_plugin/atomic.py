"""Atomic files: temporary names, rename into place, process liveness, stale-file cleanup.

Every output is written under a hidden temporary name beside its final name and renamed into
place when complete, so a final name only ever appears complete. The one spelling is::

    .{stem}.{tag}-{pid}-{host4}{rand6}{suffix}      e.g.  .clip.partial-4242-1a2b9f3c0d.mp4

``pid`` is the writer's process, ``host4`` four hex digits of a hash of this machine's name
(so a shared folder written by several machines never loses a live temporary of another
machine), ``rand6`` makes names unique inside one process, and the suffix is kept for muxers
that pick their format from it.

A temporary is *registered* when it is named; :func:`commit` and :func:`discard` unregister
it, and every registered temporary still present at interpreter exit is removed.
:func:`install_signal_handlers` turns SIGTERM and SIGHUP into :class:`Terminated` (a
``KeyboardInterrupt``), so ``kill`` cleans up exactly like Ctrl-C. After SIGKILL nothing can
clean up at once: :func:`clean_stale` removes temporaries whose process is dead (on this
machine), never a live run's.

Claims (:func:`try_claim`) are ``O_EXCL`` lock files holding ``pid host``: one holder at a
time across processes and machines sharing a folder; a claim whose process is dead on this
machine is stale and taken over.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

__all__ = ["Terminated", "clean_stale", "commit", "discard", "atomic_output",
           "install_signal_handlers", "pid_alive", "raise_if_terminated", "release_claim",
           "temp_path", "claim_stale", "try_claim", "host_tag"]

#: tags that earlier versions used for temporaries; clean_stale recognises them too
_KNOWN_TAGS = {"partial", "raw", "tmp"}
_registry: set[Path] = set()
_lock = threading.RLock()


def host_tag() -> str:
    """Four hex digits naming this machine in temporary names (stable across runs)."""
    name = socket.gethostname() or "localhost"
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:4]


def _tag_ok(tag: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]*", tag):
        raise ValueError(f"temporary tag must be lowercase letters/digits, got {tag!r}")
    return tag


def temp_path(final: Path, tag: str = "partial") -> Path:
    """A unique hidden temporary name beside ``final``, registered for cleanup at exit."""
    final = Path(final)
    _KNOWN_TAGS.add(_tag_ok(tag))
    tmp = final.with_name(f".{final.stem}.{tag}-{os.getpid()}-{host_tag()}"
                          f"{secrets.token_hex(3)}{final.suffix}")
    with _lock:
        _registry.add(tmp)
    return tmp


def register(path: Path) -> Path:
    """Register an already-named temporary (e.g. one ffmpeg creates) for cleanup at exit."""
    with _lock:
        _registry.add(Path(path))
    return Path(path)


def _remove(path: Path) -> None:
    """Remove a file or a staging folder; missing is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def commit(temp: Path, final: Path) -> None:
    """Rename ``temp`` into place as ``final`` (atomic on one file system) and unregister it.

    Not after a SIGTERM or SIGHUP (:func:`install_signal_handlers`) that other code swallowed:
    :class:`Terminated` is raised again here, so the caller removes ``temp`` as on any error."""
    raise_if_terminated()
    os.replace(temp, final)
    with _lock:
        _registry.discard(Path(temp))


def discard(temp: Path) -> None:
    """Remove ``temp`` if present and unregister it; errors other than 'missing' propagate."""
    try:
        _remove(Path(temp))
    finally:
        with _lock:
            _registry.discard(Path(temp))


@contextlib.contextmanager
def atomic_output(final: Path, tag: str = "partial") -> Iterator[Path]:
    """Yield a temporary path for ``final``; rename it into place on success, remove on error."""
    final = Path(final)
    clean_stale(final.parent, final)
    tmp = temp_path(final, tag)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            discard(tmp)
        raise
    commit(tmp, final)


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    try:
        # a killed child not yet reaped by its parent writes nothing more: count it as dead
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _temp_re() -> re.Pattern[str]:
    tags = "|".join(sorted(_KNOWN_TAGS))
    return re.compile(rf"^\.(?P<base>.+?)\.(?P<tag>{tags})-(?P<pid>\d+)"
                      rf"(?:-(?P<rand>[0-9A-Za-z]+))?(?P<suffix>\.[^.]*)?$")


def _is_stale(pid: int, rand: str | None, registered: bool) -> bool:
    """Whether a temporary of ``pid`` (name tail ``rand``) may be removed by this process."""
    if rand and len(rand) == 10 and re.fullmatch(r"[0-9a-f]{10}", rand) \
            and rand[:4] != host_tag():
        return False  # another machine's: its pids mean nothing here
    if pid == os.getpid():
        # ours only when this process named it; otherwise an earlier run that had our pid
        # (e.g. pid 1 in a container) left it
        return not registered
    return not pid_alive(pid)


def _matches_final(base: str, suffix: str | None, final: Path) -> bool:
    # current spelling keeps the stem and suffix; older ones put the whole name before the tag
    return (base == final.stem and (suffix or "") == final.suffix) or base == final.name


def clean_stale(directory: Path, final: Path | None = None) -> list[Path]:
    """Remove temporaries of dead processes (this machine) in ``directory``; return them.

    With ``final``, only temporaries of that final name are touched. A live process's
    temporary, another machine's, and one this process is writing are always kept.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    pattern = _temp_re()
    with _lock:
        registered = set(_registry)
    removed: list[Path] = []
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        if final is not None and not _matches_final(match["base"], match["suffix"], Path(final)):
            continue
        path = Path(entry.path)
        if not _is_stale(int(match["pid"]), match["rand"], path in registered):
            continue
        with contextlib.suppress(OSError):
            _remove(path)
            removed.append(path)
    return removed


# ------------------------------------------------------------------------------- claims

def try_claim(lock: Path) -> bool:
    """Take the claim ``lock`` (an ``O_EXCL`` file holding ``pid host``); False if held.

    A claim whose holder is dead on this machine is stale: it is removed and taken over.
    The claim file is registered, so it is released at exit like a temporary.
    """
    lock = Path(lock)
    me = f"{os.getpid()} {socket.gethostname()}\n".encode()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not claim_stale(lock) or not _reclaim(lock):
                return False
            continue
        try:
            os.write(fd, me)
        finally:
            os.close(fd)
        register(lock)
        return True
    return False


def _reclaim(lock: Path) -> bool:
    """Remove a stale claim under a guard, so two processes reclaiming at once cannot both
    remove it (the second would remove the first one's fresh claim)."""
    guard = lock.with_name(f"{lock.name}.reclaim")
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        # someone else is reclaiming it; a guard left by a process killed right here expires
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > 30.0:
                guard.unlink()
        return False
    os.close(fd)
    try:
        if claim_stale(lock):  # checked again: it may be a fresh claim by now
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()
    return True


def claim_stale(lock: Path) -> bool:
    """True when claim ``lock`` may be taken over: its holder is dead on this machine."""
    try:
        text = lock.read_text(encoding="utf-8", errors="replace").split()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if len(text) < 2:
        # being written right now, or a crash between open and write: stale only when old
        try:
            return time.time() - lock.stat().st_mtime > 60.0
        except OSError:
            return True
    pid, host = text[0], text[1]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        with _lock:  # ours when this process took it; else an earlier run that had our pid
            return Path(lock) not in _registry
    return not pid_alive(int(pid))


def release_claim(lock: Path) -> None:
    """Give up a claim this process holds (missing is fine)."""
    discard(Path(lock))


# ------------------------------------------------------------------------------ signals

class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so every writer removes its temporary."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


#: the signal that :func:`_on_signal` turned into :class:`Terminated`, kept: a Terminated raised
#: while a library imports can be swallowed there (MediaPipe's import, interrupted, became an
#: ImportError that read as "MediaPipe missing", and the run went on to write its output)
_terminated: int | None = None


def _on_signal(signum: int, _frame: object) -> None:
    global _terminated
    _terminated = signum
    # once: a second signal while unwinding kills at once (impatient user; the next run's
    # clean_stale removes what that leaves)
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signum)


def raise_if_terminated() -> None:
    """Raise :class:`Terminated` again if a handled SIGTERM/SIGHUP has arrived."""
    if _terminated is not None:
        raise Terminated(_terminated)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP unwind like KeyboardInterrupt (main thread only; idempotent)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, None) or current is _on_signal:
            signal.signal(signum, _on_signal)


def cleanup_registered() -> list[Path]:
    """Remove every registered temporary still present (called at exit); return them."""
    with _lock:
        paths = list(_registry)
        _registry.clear()
    removed = []
    for path in paths:
        try:
            if os.path.lexists(path):
                _remove(path)
                removed.append(path)
        except OSError as err:
            print(f"dtgan: warning: could not remove '{path}': {err.strerror}", file=sys.stderr)
    return removed


atexit.register(cleanup_registered)


def os_error_message(err: OSError, path: str | os.PathLike[str]) -> str:
    """One line naming the cause of a failed write (disk full, quota, permissions, ...)."""
    import errno

    causes = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
              errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
              errno.EISDIR: "it is a directory"}
    cause = causes.get(err.errno, err.strerror or type(err).__name__)
    return f"{cause} writing '{path}'"
