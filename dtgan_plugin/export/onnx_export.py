"""``export_onnx``: a checkpoint → four ONNX graphs and a ``manifest.json``, written atomically.

The graphs (see :mod:`dtgan_plugin.export.graphs`) are traced with the TorchScript-based
exporter at a stock opset (17 by default; 4-D ``GridSample`` needs 16), with the frame count and
the batch as dynamic axes, so stock onnxruntime (or any ONNX runtime) runs them without custom
ops. Everything is written into a hidden staging folder beside ``out_dir`` and renamed into place
when complete.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from ..atomic import commit, discard, temp_path
from ..errors import DtganError, UsageError
from ..models.model import DTGAN
from .graphs import (EXPORTABLE_ASD_MODES, EncoderStepGraph, ReferenceGraph, RendererGraph,
                     TargetEncoderGraph, feature_names)
from .manifest import MANIFEST, GraphSpec, build_manifest, write_manifest

MIN_OPSET = 16  # 4-D GridSample
MAX_OPSET = 20


class ExportError(DtganError):
    """A model or an option that cannot be exported to ONNX."""


def check_exportable(model: DTGAN, opset: int) -> None:
    """Raise ExportError (one line) unless this model and opset export to stock ONNX."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported for export",
                          hint=f"use an opset between {MIN_OPSET} (4-D GridSample) and "
                               f"{MAX_OPSET}")
    mode = model.config.asd_mode
    if mode not in EXPORTABLE_ASD_MODES:
        raise ExportError(f"cannot export a model with asd_mode '{mode}' to ONNX",
                          hint=f"only {', '.join(EXPORTABLE_ASD_MODES)} models stream through "
                               "the exported encoder step")
    if model.config.needs_landmarks:
        # the geowarp spline solves a linear system per frame, which stock ONNX has no op for
        raise ExportError("cannot export a landmark model (dynamics_input = landmarks or the "
                          "geowarp generator) to ONNX yet",
                          hint="use --backend torch, or export a pixels model such as "
                               "'cartoon64'")


def _specs(model: DTGAN) -> list[GraphSpec]:
    """What to trace: module, example inputs, input/output names and dynamic axes per graph."""
    cfg = model.config
    s, f, d = cfg.resolution, cfg.encoder.feature_dim, cfg.dyn_dim
    rows = 2 if cfg.asd_mode == "asd" else 1
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=gen) * 2 - 1  # noqa: E731
    ref = rand(1, 3, s, s)
    frames = torch.cat([ref.unsqueeze(1), rand(1, 2, 3, s, s)], 1)
    state = torch.zeros(1, rows, d)
    names, _ = feature_names(model)
    target = rand(1, 3, s, s)
    feats = TargetEncoderGraph(model)(target)
    frame_axes = {0: "batch", 1: "frames"}
    state_axes = {1: "state_rows"}
    return [
        GraphSpec("encoder_reference", ReferenceGraph(model), (ref,),
                  ["reference"], ["phi_ref"], {"reference": {0: "batch"}, "phi_ref": {0: "batch"}}),
        GraphSpec("encoder_step", EncoderStepGraph(model),
                  (frames, ref, torch.zeros(1, f), state, state.clone(),
                   torch.ones(1, dtype=torch.bool)),
                  ["frames", "reference", "phi_ref", "h", "c", "static"],
                  ["dynamics", "h_out", "c_out", "static_out"],
                  {"frames": frame_axes, "reference": {0: "batch"}, "phi_ref": {0: "batch"},
                   "h": state_axes, "c": state_axes, "static": {0: "batch"},
                   "dynamics": frame_axes, "h_out": state_axes, "c_out": state_axes,
                   "static_out": {0: "batch"}}),
        GraphSpec("target_encoder", TargetEncoderGraph(model), (target,),
                  ["target"], names[1:], {}),
        # traced with 3 frames: a batch of 1 would let broadcasting hide a missing expand
        GraphSpec("renderer", RendererGraph(model), (rand(3, d) * 0.5, target, *feats),
                  ["dynamics", *names], ["frames"],
                  {"dynamics": {0: "frames"}, "frames": {0: "frames"}}),
    ]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's deprecation/tracer warnings and its console chatter."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _atanh(g: Any, x: Any) -> Any:
    """aten::atanh as ½·log((1 + x) / (1 − x)) in stock ops.

    The TorchScript exporter has no atanh; ONNX's own Atanh runs element by element in
    onnxruntime (13× slower than the vectorised Log here, a fifth of the renderer's time),
    and the two agree within 3e-7 on the clamped range the generators use.
    """
    one = g.op("Constant", value_t=torch.tensor(1.0))
    half = g.op("Constant", value_t=torch.tensor(0.5))
    ratio = g.op("Div", g.op("Add", one, x), g.op("Sub", one, x))
    return g.op("Mul", g.op("Log", ratio), half)


def _declare_outputs(path: Path, spec: GraphSpec, example: tuple[torch.Tensor, ...]) -> None:
    """Write the outputs' full shapes into the file: static sizes as numbers, dynamic as names.

    The exporter marks every size of an output with a dynamic axis as unknown; a host (and the
    manifest, which is read back from the files) should see ``(frames, 3, 64, 64)``.
    """
    import onnx

    proto = onnx.load(str(path))
    for value, tensor in zip(proto.graph.output, example):
        axes = spec.axes.get(value.name, {})
        dims = value.type.tensor_type.shape.dim
        for k, size in enumerate(tensor.shape):
            dims[k].Clear()
            if k in axes:
                dims[k].dim_param = axes[k]
            else:
                dims[k].dim_value = int(size)
    onnx.save(proto, str(path))


def _export_graph(spec: GraphSpec, path: Path, opset: int) -> None:
    """Trace one graph to ``path``."""
    torch.onnx.register_custom_op_symbolic("aten::atanh", _atanh, opset)
    module = spec.module.eval()
    with _quiet(), torch.no_grad():
        try:
            torch.onnx.export(module, spec.args, str(path), dynamo=False,
                              opset_version=opset, input_names=spec.inputs,
                              output_names=spec.outputs, dynamic_axes=spec.axes,
                              do_constant_folding=True)
        except torch.onnx.errors.OnnxExporterError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"cannot export the {spec.name} graph: {first}",
                              hint=f"try another --opset ({MIN_OPSET}-{MAX_OPSET})") from None
        example = module(*spec.args)
    _declare_outputs(path, spec, example if isinstance(example, tuple) else (example,))


def _plain_model(model: DTGAN) -> DTGAN:
    """A contiguous (not channels-last) float32 CPU copy, so the trace holds plain layouts."""
    import copy

    clone = copy.deepcopy(model).to("cpu", torch.float32)
    clone = clone.to(memory_format=torch.contiguous_format).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _install(staging: Path, out_dir: Path, replace: bool) -> None:
    """Rename the complete staging folder to ``out_dir``, replacing an earlier export there.

    With ``replace`` false an export that appeared meanwhile (another process filling the same
    cache folder) is kept and ours dropped, so a reader of that folder never sees it vanish.
    """
    old = None
    if not replace and (out_dir / MANIFEST).is_file():
        discard(staging)
        return
    if out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        elif (out_dir / MANIFEST).is_file():
            old = temp_path(out_dir, "old")
            os.replace(out_dir, old)
        else:
            raise UsageError(f"{out_dir} exists and is not an earlier ONNX export",
                             hint="choose an empty or new folder for -o")
    commit(staging, out_dir)
    if old is not None:
        discard(old)


def export_model(model: DTGAN, out_dir: str | os.PathLike[str], *, opset: int = 17,
                 checkpoint: str = "", replace: bool = True) -> dict[str, Any]:
    """Export a loaded model into ``out_dir``; returns the manifest written there."""
    check_exportable(model, opset)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder", hint="pass a folder for -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = _plain_model(model)
    staging = temp_path(out, "partial")
    try:
        staging.mkdir()
        specs = _specs(plain)
        for spec in specs:
            _export_graph(spec, staging / f"{spec.name}.onnx", opset)
        manifest = build_manifest(plain, specs, staging, opset=opset,
                                  fingerprint=model.fingerprint(), checkpoint=checkpoint)
        write_manifest(staging / MANIFEST, manifest)
        _install(staging, out, replace)
    except BaseException:
        discard(staging)
        raise
    return manifest


def export_onnx(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                opset: int = 17, *, replace: bool = True) -> dict[str, Any]:
    """Export the checkpoint (a path or a registered name) to ONNX graphs + manifest in out_dir."""
    from ..models.checkpoint import load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(str(checkpoint))
    model = load_checkpoint(path, map_location="cpu")
    return export_model(model, out_dir, opset=opset, checkpoint=str(path), replace=replace)


__all__ = ["ExportError", "check_exportable", "export_model", "export_onnx"]
