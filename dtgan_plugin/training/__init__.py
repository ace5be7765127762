"""Training: procedural data, datasets, augmentation, losses and the trainer.

Modules (import them directly; nothing heavy is imported with this package):

* :mod:`~dtgan_plugin.synthfaces` — procedural cartoon faces with exact cross-identity
  ground truth (:class:`SynthFaceClips`, :func:`render`, :func:`sample_dynamics`, ...)
* :mod:`~dtgan_plugin.training.datagen` — ``dtgan data synth``: write them to a dataset folder
  (:func:`write_dataset`, :class:`SynthFolder`)

The names above are also available here, imported on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "SynthFaceClips": "..synthfaces", "render": "..synthfaces", "sample_dynamics": "..synthfaces",
    "sample_identities": "..synthfaces", "Identity": "..synthfaces",
    "write_dataset": ".datagen", "SynthFolder": ".datagen",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
