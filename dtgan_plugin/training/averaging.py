"""Checkpoint averaging: the mean of several checkpoints' weights from one run (SWA-style).

GAN training with small batches leaves the generator jittering around a good point; the mean of
checkpoints taken along the same late, low-learning-rate stretch of a run sits closer to that
point than any one of them (stochastic weight averaging, Izmailov et al. 2018; the same trick
as averaging the last checkpoints of a translation model). Only checkpoints of one model
configuration can be averaged, and averaging makes sense only within one run: two independently
trained networks do not share a basin, and their mean is garbage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UsageError


def average_checkpoints(paths: Sequence[str | os.PathLike[str]],
                        out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the element-wise mean of the checkpoints' weights to ``out``; returns a summary."""
    import torch

    from ..models.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint

    if len(paths) < 2:
        raise UsageError(f"averaging needs at least 2 checkpoints, got {len(paths)}",
                         hint="pass several checkpoints of one run, e.g. "
                              "runs/x/checkpoints/model_*.safetensors")
    dest = Path(out)
    if dest.resolve() in {Path(p).resolve() for p in paths}:
        raise UsageError(f"the output {dest} is one of the inputs",
                         hint="write the average under a new name")
    first = load_checkpoint(paths[0])
    config_json = first.config.to_json()
    reference = first.state_dict()
    # running sum in float64: 20+ float32 tensors summed in float32 lose low bits
    total = {k: v.detach().to(torch.float64) for k, v in reference.items()}
    steps = [_step(read_checkpoint_metadata(paths[0]))]
    for path in paths[1:]:
        model = load_checkpoint(path)
        if model.config.to_json() != config_json:
            raise CheckpointError(f"{path} has another model configuration than {paths[0]}",
                                  hint="average checkpoints of one run only")
        for k, v in model.state_dict().items():
            total[k] += v.detach().to(torch.float64)
        steps.append(_step(read_checkpoint_metadata(path)))
    n = len(paths)
    state = {k: (v / n).to(reference[k].dtype) for k, v in total.items()}
    first.load_state_dict(state)
    extra = {"averaged_from": [os.fspath(p) for p in paths], "steps": steps}
    save_checkpoint(dest, first, extra=extra)
    return {"out": os.fspath(dest), "checkpoints": n, "steps": steps,
            "fingerprint": first.fingerprint()}


def _step(meta: dict[str, Any]) -> int | None:
    extra = meta.get("extra") or {}
    step = extra.get("step") if isinstance(extra, dict) else None
    return int(step) if isinstance(step, int) else None
