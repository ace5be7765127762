"""Training state files: weights, optimiser moments and the step, in one safetensors file.

Optimiser state is flattened into named tensors (``optim.<name>.<param>.<key>``) plus JSON
metadata for the hyper-parameters, so resuming never unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_output
from ..errors import CheckpointError

FORMAT = "dtgan-train-state"
VERSION = "1"


def _flatten_optim(name: str, opt: torch.optim.Optimizer,
                   tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{name}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return {"param_groups": sd["param_groups"]}


def _unflatten_optim(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                     groups: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, sub = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[sub] = value
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def save_state(path: Path, modules: dict[str, torch.nn.Module],
               optims: dict[str, torch.optim.Optimizer], meta: dict[str, Any]) -> None:
    """Write the whole training state atomically (temp name, fsync, rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, mod in modules.items():
        for key, value in mod.state_dict().items():
            tensors[f"module.{name}.{key}"] = value.detach().cpu().contiguous()
    groups = {name: _flatten_optim(name, opt, tensors) for name, opt in optims.items()}
    metadata = {"format": FORMAT, "format_version": VERSION,
                "optim": json.dumps(groups), "meta": json.dumps(meta)}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())


def _load_widened(mod: torch.nn.Module, sub: dict[str, torch.Tensor]) -> list[str]:
    """Load what fits; a conv/linear weight whose input grew gets the old channels + zeros.

    Returns the names left at (or widened from) their fresh initialisation, so a fine-tune can
    switch a discriminator option (``clip_input``) and keep everything that still applies.
    """
    own = mod.state_dict()
    loaded, changed = {}, []
    for key, fresh in own.items():
        old = sub.get(key)
        if old is not None and old.shape == fresh.shape:
            loaded[key] = old
            continue
        changed.append(key)
        if (old is not None and old.dim() == fresh.dim() >= 2 and old.shape[0] == fresh.shape[0]
                and old.shape[2:] == fresh.shape[2:] and old.shape[1] < fresh.shape[1]):
            # the new input channels start silent: the module begins as it was trained
            grown = torch.zeros_like(fresh)
            grown[:, : old.shape[1]] = old
            loaded[key] = grown
        else:
            loaded[key] = fresh
    mod.load_state_dict(loaded, strict=True)
    return changed


def load_state(path: Path, modules: dict[str, torch.nn.Module],
               optims: dict[str, torch.optim.Optimizer],
               widen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Restore modules and optimisers from :func:`save_state`; returns the saved ``meta``.

    Modules named in ``widen`` load with :func:`_load_widened` (fine-tuning only); the names of
    their tensors that did not load as saved are in the returned meta's ``"widened"``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            md = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"training state '{path}' is unreadable: "
                              f"{str(err).splitlines()[0]}",
                              hint="delete it to start over, or restore a backup") from None
    if md.get("format") != FORMAT or md.get("format_version") != VERSION:
        raise CheckpointError(f"'{path}' is not a dtgan training state (version {VERSION})")
    widened: list[str] = []
    for name, mod in modules.items():
        prefix = f"module.{name}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if name in widen:
            widened += [f"{name}.{k}" for k in _load_widened(mod, sub)]
            continue
        try:
            mod.load_state_dict(sub, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"training state '{path}' does not match this config's "
                                  f"{name}: {str(err).splitlines()[0]}",
                                  hint="resume with the config the run started with") from None
    groups = json.loads(md["optim"])
    for name, opt in optims.items():
        if name in groups:
            _unflatten_optim(name, opt, tensors, groups[name])
    meta = json.loads(md["meta"])
    if widen:
        meta["widened"] = widened
    return meta
