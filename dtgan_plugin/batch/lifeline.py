"""Worker processes die with their driver.

A driver killed with SIGKILL cannot stop its workers, and a worker that runs on is wasted work
whose results never reach ``report.jsonl``. Two mechanisms, so either suffices:

* Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)`` through ctypes): the kernel
  sends SIGTERM the moment the parent goes;
* a daemon thread watching the parent pid (every ``POLL_S``), for other systems and for the
  case where the signal is lost.

SIGTERM in a worker unwinds the running job like Ctrl-C (its writer removes its temporary);
after ``GRACE_S`` the watcher removes every registered temporary and claim and exits anyway,
since a pool worker that survived the unwinding would only wait for work forever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Any

from ..atomic import Terminated, cleanup_registered

PR_SET_PDEATHSIG = 1
POLL_S = 0.5
GRACE_S = 10.0

_terminating = threading.Event()


def _on_term(signum: int, _frame: Any) -> None:
    # once only: a second SIGTERM (from the watcher) must not interrupt the unwinding
    if _terminating.is_set():
        return
    _terminating.set()
    raise Terminated(signum)


def _set_pdeathsig(signum: int) -> bool:
    """Ask the kernel to send ``signum`` when our parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid and not _terminating.is_set():
        time.sleep(POLL_S)
    if not _terminating.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
    cleanup_registered()
    os._exit(128 + signal.SIGTERM)


def die_with_parent(parent_pid: int) -> None:
    """Make this process (a worker, in its main thread) end when ``parent_pid`` ends."""
    signal.signal(signal.SIGTERM, _on_term)
    _set_pdeathsig(signal.SIGTERM)
    threading.Thread(target=_watch, args=(parent_pid,), name="dtgan-lifeline",
                     daemon=True).start()
    # the parent may have died before the kernel knew whom to signal
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
