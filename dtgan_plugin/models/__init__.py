"""The Dynamics Transfer GAN model: config, ASD encoder, generators, discriminators, checkpoints.

Models know nothing of files, graphs or the CLI (only :mod:`.checkpoint` reads and writes
``.safetensors`` files). Everything is imported lazily so that ``dtgan_plugin.models.plugin``
(loaded with the plugin manager) does not pull in torch.

Main entry points::

    from dtgan_plugin.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
    model = build_model(ModelConfig(resolution=64, generator="warp"))
    save_checkpoint("m.safetensors", model, extra={"step": 0})
    model = load_checkpoint("m.safetensors")
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "ModelConfig": ".config",
    "EncoderConfig": ".config",
    "GeneratorConfig": ".config",
    "DiscriminatorConfig": ".config",
    "DynamicsEncoder": ".encoder",
    "EncoderState": ".encoder",
    "Generator": ".generators",
    "WarpGenerator": ".generators",
    "SynthGenerator": ".generators",
    "TargetFeatures": ".generators",
    "build_generator": ".generators",
    "FrameDiscriminator": ".discriminators",
    "ClipDiscriminator": ".discriminators",
    "Discriminators": ".discriminators",
    "build_discriminators": ".discriminators",
    "DTGAN": ".model",
    "build_model": ".model",
    "weights_fingerprint": ".model",
    "InputShapeError": ".layers",
    "save_checkpoint": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "load_discriminators": ".checkpoint",
    "read_checkpoint_metadata": ".checkpoint",
    "resolve_checkpoint": ".checkpoint",
    "FORMAT": ".checkpoint",
    "FORMAT_VERSION": ".checkpoint",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
