"""ONNX export of the inference pieces and an onnxruntime backend that runs them.

:func:`export_onnx` writes four graphs and a ``manifest.json`` (see :mod:`.manifest`);
:func:`~dtgan_plugin.export.ort_backend.load_backend` returns a model object that
:mod:`dtgan_plugin.inference` streams through exactly like the torch model. onnx and
onnxruntime are the ``[onnx]`` extra and are imported only when used.
"""

from __future__ import annotations

from .onnx_export import ExportError, check_exportable, export_model, export_onnx

__all__ = ["ExportError", "check_exportable", "export_model", "export_onnx"]
