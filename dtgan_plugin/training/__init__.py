"""Training: procedural data, datasets, augmentation, losses and the trainer.

Modules (import them directly; nothing heavy is imported with this package):

* :mod:`~dtgan_plugin.training.synthfaces` — procedural cartoon faces with exact cross-identity
  ground truth (:class:`SynthFaceClips`, :func:`render`, :func:`sample_dynamics`, ...)
* :mod:`~dtgan_plugin.training.datagen` — ``dtgan data synth``: write them to a dataset folder
  (:func:`write_dataset`, :class:`SynthFolder`)

The names above are also available here, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SynthFaceClips": "synthfaces", "render": "synthfaces", "sample_dynamics": "synthfaces",
    "sample_identities": "synthfaces", "Identity": "synthfaces",
    "write_dataset": "datagen", "SynthFolder": "datagen",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dtgan_plugin.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
