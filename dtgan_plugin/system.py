"""Facts about the machine that several subsystems size themselves by, and the device choice."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import torch


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def resolve_device(name: "str | torch.device | Any" = "auto") -> "torch.device":
    """``auto`` → CUDA when available, else CPU; asking for an absent CUDA is a usage error.

    Accepts a :class:`torch.device` as is, and names in any case with surrounding blanks
    (``"CUDA:0 "``). Anything but ``auto``, ``cpu`` and ``cuda[:N]`` is a usage error.
    """
    import torch  # here, not at the top: this module is imported by the light CLI setup

    if isinstance(name, torch.device):
        return name
    text = str(name or "auto").strip().lower() or "auto"
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (text == "cpu" or text.startswith("cuda")):
        raise UsageError(f"unknown device '{name}'", hint="use auto, cpu or cuda[:N]")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {text} was asked for but no CUDA device is available",
                         hint="use --device cpu or auto")
    try:
        return torch.device(text)
    except RuntimeError:  # "cudax", "cuda:a": not a device torch knows
        raise UsageError(f"unknown device '{name}'", hint="use auto, cpu or cuda[:N]") from None
