"""The methods an evaluation compares, from their names: checkpoints (``NAME=PATH``) and
baselines, resolved and validated before any work so that a typo fails in a second."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from .baselines import BASELINES, BaselineUnavailable, Method, ModelMethod, make_baseline

__all__ = ["resolve_checkpoints", "check_baselines", "load_methods", "landmark_models",
           "RESERVED_NAMES"]

#: method names a checkpoint may not take (the baselines')
RESERVED_NAMES = ("static", "flow-warp", "copy-source", "flow-warp-aligned", "landmark-warp")


def _checkpoint_name(spec: str, taken: set[str]) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` → (name, path); the name defaults to the file or run folder."""
    raw = spec.strip()
    if not raw:
        raise UsageError("empty checkpoint", hint="pass a .safetensors path or NAME=PATH")
    if "=" in raw and not Path(raw).expanduser().exists():
        name, path = (s.strip() for s in raw.split("=", 1))
        if not name or not path:
            raise UsageError(f"checkpoint '{raw}' is not NAME=PATH",
                             hint="e.g. noDT=runs/noDT/model.safetensors")
    else:
        path = raw
        p = Path(raw)
        name = p.parent.name if p.stem in ("model", "checkpoint") and p.parent.name else p.stem
        name = name or raw
    if name in taken or name in RESERVED_NAMES:
        raise UsageError(f"two methods are called '{name}'",
                         hint="name checkpoints with NAME=PATH so every row is distinct")
    return name, path


def _paired_reference(choice: str | None, models: Sequence[str],
                      baselines: Sequence[str]) -> str | None:
    """The method to pair the others with: ``""`` picks the first checkpoint (if any)."""
    if choice is None or choice.lower() == "none":
        return None
    if choice == "":
        return models[0] if models else None
    known = [*models, *baselines]
    if choice not in known:
        lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(choice.lower(), list(lower), n=1)
        raise UsageError(f"paired reference '{choice}' is not one of the methods "
                         f"({', '.join(known)})",
                         hint=f"did you mean '{lower[close[0]]}'?" if close else
                         "name a checkpoint (NAME=PATH) or a baseline, or pass 'none'")
    return choice


def resolve_checkpoints(checkpoints: Sequence[str]) -> list[tuple[str, Path, dict[str, Any]]]:
    """``(name, resolved path, metadata)`` of every checkpoint spec; bad ones raise."""
    from ..models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

    named: list[tuple[str, Path, dict[str, Any]]] = []
    taken: set[str] = set()
    for spec_str in checkpoints:
        name, path = _checkpoint_name(spec_str, taken)
        resolved = resolve_checkpoint(path)
        named.append((name, resolved, read_checkpoint_metadata(resolved)))
        taken.add(name)
    return named


def landmark_models(named: Sequence[tuple[str, Path, dict[str, Any]]]) -> list[str]:
    """Names of the checkpoints whose model reads landmarks (from their metadata's config)."""
    from ..models.config import ModelConfig

    return [name for name, _, meta in named
            if ModelConfig.from_dict(meta["config"]).needs_landmarks]


def check_baselines(names: Sequence[str], known: Sequence[str] | None = None) -> None:
    """Raise the did-you-mean usage error for an unknown baseline name."""
    for bname in names:
        if bname not in (BASELINES if known is None else known):
            make_baseline(bname)


def load_methods(named: Sequence[tuple[str, Path, dict[str, Any]]], baselines: Sequence[str],
                 device: Any, notes: list[str],
                 log: Callable[[str], None] = lambda msg: None,
                 factory: Callable[[str], Method] = make_baseline) -> list[Method]:
    """Load checkpoints as :class:`ModelMethod` and build baselines; an unavailable baseline
    (missing OpenCV) is skipped with a note."""
    from ..inference import load_model

    methods: list[Method] = []
    for name, path, meta in named:
        model = load_model(path, device)
        methods.append(ModelMethod(name, model, path=str(path), fingerprint=meta["fingerprint"],
                                   info={"extra": meta.get("extra", {}),
                                         "size_bytes": meta.get("size_bytes")}))
    for bname in dict.fromkeys(baselines):  # unique, in order
        try:
            methods.append(factory(bname))
        except BaselineUnavailable as err:
            notes.append(str(err))
            log(str(err))
    if not methods:
        raise UsageError("nothing to evaluate: every baseline is unavailable",
                         hint="install opencv-python-headless or pass a checkpoint")
    return methods
