"""Options of an evaluation: the protocol names and the ``synth`` spec string's parser."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

__all__ = ["PROTOCOLS", "PROTOCOL_TITLES", "SynthSpec", "parse_synth_spec", "parse_protocols"]

PROTOCOLS: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5")
PROTOCOL_TITLES = {
    "P1": "self-reconstruction", "P2": "cross-identity transfer", "P3": "motion fidelity",
    "P4": "appearance leakage", "P5": "temporal consistency",
}


@dataclass
class SynthSpec:
    """A ``synth`` spec, e.g. ``identities=200:clips=8:frames=16:size=64``; ``size=None`` = the
    model's.

    ``speed`` and ``concat`` are the probabilities of the "arbitrary dynamics" variants of
    :func:`~dtgan_plugin.synthfaces.clip_dynamics` (played 0.5-2x faster or slower;
    two expressions one after the other). Reversed clips are not offered: they start at the
    apex, so a neutral target has no defined truth relative to the source's first frame.
    ``split`` picks the identities: ``test`` (reported results) or ``val`` (for choosing
    between checkpoints without looking at the test identities). ``part`` keeps only the
    ``expression`` or only the head-``motion`` parameters of every clip (the others held at
    neutral), to see which kind of motion a method transfers and where its error is.
    """

    identities: int = 200
    clips: int = 8
    frames: int = 16
    size: int | None = None
    speed: float = 0.0
    concat: float = 0.0
    split: str = "test"
    part: str = "all"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {"identities": self.identities, "clips": self.clips, "frames": self.frames,
                "size": self.size, "speed": self.speed, "concat": self.concat,
                "split": self.split, "part": self.part}


_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "split": (("test", "val"), "test for results, val for choosing between checkpoints"),
    "part": (("all", "expression", "motion"),
             "all parameters, or only the expression or head-motion ones"),
}
_SYNTH_LIMITS: dict[str, tuple[Any, Any]] = {
    "identities": (11, 10_000_000), "clips": (1, 100_000), "frames": (2, 4096),
    "size": (16, 1024), "speed": (0.0, 1.0), "concat": (0.0, 1.0)}


def parse_synth_spec(text: str | None) -> SynthSpec:
    """Parse ``key=value:key=value`` (identities, clips, frames, size, speed, concat, split,
    part)."""
    spec = SynthSpec()
    if not text or not text.strip():
        return spec
    usage = "write it as e.g. identities=200:clips=8:frames=16:size=64"
    for part in text.split(":"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UsageError(f"synth option '{part}' is not key=value", hint=usage)
        key, value = (s.strip() for s in part.split("=", 1))
        if key in _CHOICES:
            choices, hint = _CHOICES[key]
            if value not in choices:
                raise UsageError(f"synth {key} must be one of {', '.join(choices)}, "
                                 f"got '{value}'", hint=hint)
            setattr(spec, key, value)
            continue
        if key not in _SYNTH_LIMITS:
            close = difflib.get_close_matches(key, list(_SYNTH_LIMITS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                f"known keys: {', '.join([*_SYNTH_LIMITS, *_CHOICES])}"
            raise UsageError(f"unknown synth key '{key}'", hint=hint)
        kind = float if isinstance(_SYNTH_LIMITS[key][0], float) else int
        try:
            number = kind(value)
        except ValueError:
            what = "a probability" if kind is float else "an integer"
            raise UsageError(f"synth {key} must be {what}, got '{value}'",
                             hint=usage) from None
        lo, hi = _SYNTH_LIMITS[key]
        if not lo <= number <= hi:
            why = " (each held-out split is every 10th identity and P2 needs two of them)" \
                if key == "identities" else ""
            raise UsageError(f"synth {key} must be between {lo} and {hi}, got {number}{why}")
        setattr(spec, key, number)
    return spec


def parse_protocols(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"P1,P3"`` (case-insensitive, or a list) → ordered, de-duplicated protocol names."""
    if text is None:
        return PROTOCOLS
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = set()
    for raw in items:
        name = raw.strip().upper()
        if not name:
            continue
        if name == "ALL":
            chosen.update(PROTOCOLS)
            continue
        if name not in PROTOCOLS:
            raise UsageError(f"unknown protocol '{raw.strip()}'",
                             hint=f"use a comma-separated subset of {','.join(PROTOCOLS)}")
        chosen.add(name)
    if not chosen:
        raise UsageError("no protocol selected", hint=f"pass e.g. {','.join(PROTOCOLS)}")
    return tuple(p for p in PROTOCOLS if p in chosen)

