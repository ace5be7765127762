"""Evaluation behind ``dtgan eval``: protocols P1–P5, baselines, the motion probe, reports.

Imported lazily (the plugin manager loads :mod:`.plugin` with every ``dtgan`` command, and it
must not pull in torch). Main entry points::

    from dtgan_plugin.evaluation import run_evaluation
    report = run_evaluation(["dtgan=runs/default/model.safetensors"], "eval/default", synth="")

    from dtgan_plugin.evaluation import evaluate, SynthEvalData, SynthSpec, StaticBaseline
    results = evaluate([StaticBaseline()], SynthEvalData(SynthSpec(identities=40), size=64))
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "run_evaluation": ".protocols",
    "run_realvideo_evaluation": ".realvideo",
    "evaluate": ".protocols",
    "PROTOCOLS": ".protocols",
    "SynthSpec": ".protocols",
    "parse_synth_spec": ".protocols",
    "parse_protocols": ".protocols",
    "EvalBatch": ".protocols",
    "EvalData": ".protocols",
    "SynthEvalData": ".protocols",
    "SynthFolderData": ".protocols",
    "VideoFolderData": ".protocols",
    "open_eval_folder": ".protocols",
    "Method": ".baselines",
    "ModelMethod": ".baselines",
    "StaticBaseline": ".baselines",
    "FlowWarpBaseline": ".baselines",
    "CopySourceBaseline": ".baselines",
    "make_baseline": ".baselines",
    "BASELINES": ".baselines",
    "MotionProbe": ".probe",
    "load_probe": ".probe",
    "save_probe": ".probe",
    "default_probe_path": ".probe",
    "write_report": ".report",
    "render_markdown": ".report",
    "format_table": ".report",
    "save_comparison_grid": ".report",
    "save_comparison_gif": ".report",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
