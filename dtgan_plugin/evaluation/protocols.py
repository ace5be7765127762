"""The five procedural protocols (:func:`evaluate`) and :func:`run_evaluation` behind
``dtgan eval``.

Data are in :mod:`.data`, options in :mod:`.options`, checkpoint and baseline loading in
:mod:`.loading`, the report files in :mod:`.report`; their public names are re-exported here.

Protocols (see ``report.md``'s legend for directions):

* **P1** self-reconstruction: target = frame 0 of the clip, source = the clip; L1/PSNR/SSIM vs
  the clip.
* **P2** cross-identity: target = neutral face of identity B, source = a clip of A, truth = B
  rendered with A's per-frame parameters; L1/PSNR/SSIM vs the truth.
* **P3** motion fidelity on P2's outputs: the motion probe's per-frame parameter estimates vs
  the source's true parameters (Pearson correlation and MAE per parameter, pooled over frames).
* **P4** appearance leakage on P2's outputs: per frame, with the probe's identity embedding
  ``e``: ``d(e(out), e(truth)) / (d(e(out), e(truth)) + d(e(out), e(source)))`` — 0 means the
  output has the target's identity, 1 the source's. ``truth`` (B in the same pose) and ``source``
  (A in that pose) are the two references, so pose does not enter the distance.
* **P5** temporal consistency on P2's outputs vs the truth (on P1's outputs vs the clip for a
  video folder): frame-to-frame error, excess jitter, background drift.

Landmark models (``needs_landmarks``) get the renderer's exact landmarks of the source and of
the target of each pass: P1's target is the clip's frame 0, so its landmarks are frame 0's.
P3-P5 read only the P2 outputs' frames, so they need no landmarks of their own.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import MediaError, UsageError
from . import metrics as M
from .baselines import Method
from .data import (DYNAMICS_SEED_OFFSET, PAIR_SEED_OFFSET, VIDEO_EXTENSIONS, EvalBatch,
                   EvalData, SynthEvalData, SynthFolderData, VideoFolderData, open_eval_folder,
                   require_landmarks)
from .loading import (_checkpoint_name, _paired_reference, landmark_models, load_methods,
                      resolve_checkpoints)
from .options import PROTOCOL_TITLES, PROTOCOLS, SynthSpec, parse_protocols, parse_synth_spec

__all__ = ["PROTOCOLS", "PROTOCOL_TITLES", "SynthSpec", "parse_synth_spec", "parse_protocols",
           "EvalBatch", "EvalData", "SynthEvalData", "SynthFolderData", "VideoFolderData",
           "open_eval_folder", "evaluate", "run_evaluation", "paired_differences",
           "DYNAMICS_SEED_OFFSET", "PAIR_SEED_OFFSET", "VIDEO_EXTENSIONS",
           "_checkpoint_name", "_paired_reference"]

# frames x pixels of one evaluation batch (a 16 x 16-frame batch at 64 px is 2^20 x 16)
_BATCH_PIXELS = 1 << 24


@dataclass
class _MethodState:
    method: Method
    p3: M.CorrAccumulator | None = None
    seconds: float = 0.0
    frames: int = 0
    #: per-clip values in clip order (a few floats per clip): the summaries and the paired
    #: comparisons are both computed from them
    per_clip: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, protocol: str, metric: str, values: torch.Tensor) -> None:
        flat = torch.as_tensor(values, dtype=torch.float64).reshape(-1).tolist()
        self.per_clip.setdefault((protocol, metric), []).extend(flat)

    def summaries(self) -> dict[str, dict[str, dict[str, Any]]]:
        """protocol → metric → ``MeanAccumulator.summary()`` of its per-clip values."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (protocol, metric), vals in self.per_clip.items():
            acc = M.MeanAccumulator()
            acc.add(vals)
            out.setdefault(protocol, {})[metric] = acc.summary()
        return out


def paired_differences(mine: Sequence[float], ref: Sequence[float]) -> dict[str, Any]:
    """Mean of per-clip ``mine - ref`` with its 95 % half-width (clips where both are finite).

    Every method sees the same clips, so the clip-to-clip spread (hard clips are hard for
    everyone) cancels: the interval is far narrower than the two means' own intervals.
    """
    acc = M.MeanAccumulator()
    diffs = [a - b for a, b in zip(mine, ref) if math.isfinite(a) and math.isfinite(b)]
    acc.add(diffs)
    out = acc.summary()
    return {"mean_diff": out["mean"], "ci95": out["ci95"], "n": out["n"]}


def _paired(states: Sequence[_MethodState], reference: str) -> dict[str, Any]:
    ref = next(st for st in states if st.method.name == reference)
    table: dict[str, Any] = {}
    for st in states:
        if st is ref:
            continue
        table[st.method.name] = {
            f"{proto}.{metric}": paired_differences(vals, ref.per_clip[(proto, metric)])
            for (proto, metric), vals in st.per_clip.items()
            if (proto, metric) in ref.per_clip and len(vals) == len(ref.per_clip[(proto, metric)])}
    return {"reference": reference, "methods": table}


def _batch_limit(batch_size: int, source_shape: Sequence[int]) -> int:
    t, c, h, w = source_shape
    return max(1, min(batch_size, _BATCH_PIXELS // max(1, t * c * h * w)))


def _p3_summary(acc: M.CorrAccumulator) -> dict[str, Any]:
    from ..synthfaces import EXPRESSION_PARAMS, MOTION_PARAMS

    corr, mae = acc.corr(), acc.mae()

    def mean(d: dict[str, float], keys: Sequence[str]) -> float:
        vals = [d[k] for k in keys if not math.isnan(d[k])]
        return sum(vals) / len(vals) if vals else math.nan

    names = list(corr)
    return {"corr_mean": mean(corr, names), "corr_expr": mean(corr, EXPRESSION_PARAMS),
            "corr_motion": mean(corr, MOTION_PARAMS), "mae_expr": mean(mae, EXPRESSION_PARAMS),
            "mae_motion": mean(mae, MOTION_PARAMS), "frames": acc.n,
            "per_param": {k: {"corr": corr[k], "mae": mae[k]} for k in names}}


def _active_protocols(protocols: Sequence[str], data: EvalData, probe: Any,
                      notes: list[str]) -> set[str]:
    """The protocols that can run on ``data`` with ``probe``; what is dropped goes to notes."""
    active = set(protocols)
    if not data.has_truth:
        active -= {"P2", "P3", "P4"}
    if probe is None and ({"P3", "P4"} & active):
        active -= {"P3", "P4"}
        if not any(n.startswith("P3 and P4 skipped") for n in notes):
            notes.append("P3 and P4 skipped: no motion probe was given")
    return active


@dataclass
class _Pass:
    """One evaluation pass: which protocols run, the probe, and the example clips kept."""

    active: set[str]
    has_truth: bool
    probe: Any
    examples: int
    ex: dict[str, Any] = field(default_factory=dict)

    @property
    def need_cross(self) -> bool:
        """Cross-identity outputs are needed (P2-P5 on data with truth)."""
        return self.has_truth and bool({"P2", "P3", "P4", "P5"} & self.active)

    @property
    def need_self(self) -> bool:
        """Self-reconstruction outputs are needed (P1, or P5 without truth)."""
        return "P1" in self.active or ("P5" in self.active and not self.has_truth)

    @property
    def use_probe(self) -> bool:
        """The motion probe runs (P3 or P4 with a probe)."""
        return self.probe is not None and bool({"P3", "P4"} & self.active)

    def keep_examples(self, batch: EvalBatch) -> int:
        """Store the batch's first clips as examples; returns how many outputs to keep."""
        want = max(0, self.examples - len(self.ex["names"]))
        if not want:
            return 0
        k = min(want, int(batch.source.shape[0]))
        self.ex["names"] += batch.names[:k]
        self.ex["source"].append(batch.source[:k])
        if self.need_cross:
            self.ex["target"].append(batch.cross_target[:k])
            self.ex["truth"].append(batch.cross_truth[:k])
        else:
            self.ex["target"].append(batch.self_target[:k])
            self.ex["truth"].append(batch.source[:k])
        return k


def _timed(st: _MethodState, source: torch.Tensor, target: torch.Tensor,
           source_lmk: torch.Tensor | None, target_lmk: torch.Tensor | None) -> torch.Tensor:
    # only landmark methods get the keywords: a method of one's own may take frames only
    kw = {"source_lmk": source_lmk, "target_lmk": target_lmk} \
        if getattr(st.method, "needs_landmarks", False) else {}
    t0 = time.perf_counter()
    out = st.method(source, target, **kw)
    st.seconds += time.perf_counter() - t0
    st.frames += out.shape[0] * out.shape[1]
    return out


def _self_pass(st: _MethodState, batch: EvalBatch, run: _Pass, keep: int) -> None:
    """P1 (and P5 without truth) on the self-reconstruction outputs."""
    out = _timed(st, batch.source, batch.self_target, batch.source_lmk, batch.self_target_lmk)
    if "P1" in run.active:
        st.add("P1", "l1", M.l1(out, batch.source))
        st.add("P1", "psnr", M.psnr(out, batch.source))
        st.add("P1", "ssim", M.ssim(out, batch.source))
    if "P5" in run.active and not run.has_truth:
        _temporal(st, out, batch.source)
    if keep and not run.need_cross:
        run.ex["outputs"][st.method.name].append(out[:keep])


def _cross_pass(st: _MethodState, batch: EvalBatch, run: _Pass, keep: int,
                emb_truth: torch.Tensor | None, emb_src: torch.Tensor | None) -> None:
    """P2-P5 on the cross-identity outputs."""
    b = int(batch.source.shape[0])
    out = _timed(st, batch.source, batch.cross_target, batch.source_lmk, batch.cross_target_lmk)
    truth = batch.cross_truth
    if "P2" in run.active:
        st.add("P2", "l1", M.l1(out, truth))
        st.add("P2", "psnr", M.psnr(out, truth))
        st.add("P2", "ssim", M.ssim(out, truth))
    if "P5" in run.active:
        _temporal(st, out, truth)
    if run.use_probe:
        p_out, emb_out = run.probe.predict(out.flatten(0, 1))
        if st.p3 is not None:
            st.p3.add(p_out.view_as(batch.params), batch.params)
        if "P4" in run.active:
            leak = M.leakage(emb_out, emb_truth, emb_src)
            st.add("P4", "leakage", leak.view(b, -1).mean(1))
            st.add("P4", "identity_distance",
                   (emb_out - emb_truth).norm(dim=1).view(b, -1).mean(1))
    if keep:
        run.ex["outputs"][st.method.name].append(out[:keep])


def _method_entry(st: _MethodState) -> dict[str, Any]:
    """One method's summaries, per-clip values and timing for the report."""
    entry: dict[str, Any] = {**st.method.describe()}
    entry.update(st.summaries())
    if st.p3 is not None:
        entry["P3"] = _p3_summary(st.p3)
    # every per-clip value, in clip order, for statistics of your own (a few floats a clip)
    entry["per_clip"] = {f"{proto}.{metric}": vals
                         for (proto, metric), vals in st.per_clip.items()}
    entry["timing"] = {"seconds": st.seconds, "frames": st.frames,
                       "frames_per_second": st.frames / st.seconds if st.seconds else None}
    return entry


def evaluate(methods: Sequence[Method], data: EvalData, *, protocols: Sequence[str] = PROTOCOLS,
             probe: Any = None, batch_size: int = 16, examples: int = 4,
             progress: bool = False, notes: Sequence[str] = (),
             paired_with: str | None = None) -> dict[str, Any]:
    """Run the protocols for every method over ``data``; returns results and example clips.

    The result has ``methods`` (name → protocol → metric summaries), ``probe_ceiling`` (P3 of
    the ground truth itself), ``notes`` (what was skipped and why), ``examples`` (tensors of
    the first few pairs for pictures), ``timing`` and, with ``paired_with`` naming one of the
    methods, ``paired``: every other method's per-clip differences from it.
    """
    from tqdm import tqdm

    from ..synthfaces import PARAM_NAMES

    protocols = parse_protocols(list(protocols))
    landmark_names = [m.name for m in methods if getattr(m, "needs_landmarks", False)]
    require_landmarks(landmark_names, data)
    notes = list(notes) + list(getattr(data, "notes", []))
    if landmark_names:
        notes.append(f"landmark models ({', '.join(landmark_names)}) read the renderer's exact "
                     "68 landmarks of the source and the target")
    run = _Pass(_active_protocols(protocols, data, probe, notes), data.has_truth, probe, examples,
                {"source": [], "target": [], "truth": [], "names": [],
                 "outputs": {m.name: [] for m in methods}})
    states = [_MethodState(m) for m in methods]
    for st in states:
        if "P3" in run.active:
            st.p3 = M.CorrAccumulator(PARAM_NAMES)
    ceiling = M.CorrAccumulator(PARAM_NAMES) if "P3" in run.active else None
    n_clips = 0
    t_start = time.perf_counter()
    bar = tqdm(total=len(data), desc="eval", unit="clip", disable=not progress)
    for batch in data.batches(batch_size):
        n_clips += int(batch.source.shape[0])
        emb_truth = emb_src = None
        if run.need_cross and run.use_probe:
            p_truth, emb_truth = probe.predict(batch.cross_truth.flatten(0, 1))
            if ceiling is not None:
                ceiling.add(p_truth.view_as(batch.params), batch.params)
            if "P4" in run.active:
                emb_src = probe.predict(batch.source.flatten(0, 1))[1]
        keep = run.keep_examples(batch)
        for st in states:
            if run.need_self:
                _self_pass(st, batch, run, keep)
            if run.need_cross:
                _cross_pass(st, batch, run, keep, emb_truth, emb_src)
        bar.update(int(batch.source.shape[0]))
    bar.close()
    elapsed = time.perf_counter() - t_start
    results: dict[str, Any] = {
        "methods": {st.method.name: _method_entry(st) for st in states},
        "protocols": [p for p in protocols if p in run.active],
        "requested_protocols": list(protocols), "clips": n_clips, "notes": notes}
    if ceiling is not None:
        results["probe_ceiling"] = _p3_summary(ceiling)
    if paired_with is not None and len(states) > 1:
        results["paired"] = _paired(states, paired_with)
    results["timing"] = {"seconds": elapsed, "clips_per_second": n_clips / elapsed if elapsed
                         else None}
    cat = lambda xs: torch.cat(xs) if xs else None  # noqa: E731
    ex = run.ex
    results["examples"] = {"names": ex["names"], "source": cat(ex["source"]),
                           "target": cat(ex["target"]), "truth": cat(ex["truth"]),
                           "cross": run.need_cross,
                           "outputs": {k: cat(v) for k, v in ex["outputs"].items() if v}}
    return results


def _temporal(st: _MethodState, out: torch.Tensor, truth: torch.Tensor) -> None:
    st.add("P5", "temporal_error", M.temporal_error(out, truth))
    st.add("P5", "excess_jitter", M.excess_jitter(out, truth))
    st.add("P5", "background_drift", M.background_drift(out, truth))


def _check_options(data: str | None, synth: str | None, batch_size: int, frames: int,
                   examples: int, clips: int | None, out: Path) -> None:
    """One-line usage errors for :func:`run_evaluation`'s parameters (named as parameters)."""
    if (data is None) == (synth is None):
        raise UsageError("pass exactly one of data (a folder) and synth (a spec string)")
    for name, value, low in (("batch_size", batch_size, 1), ("frames", frames, 2),
                             ("examples", examples, 0), ("clips", clips, 1)):
        if value is not None and value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output folder {out} is a file", hint="pass a folder for the report")


def _load_probe(probe_path: str | None, notes: list[str],
                say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """The motion probe, or ``(None, {})`` with a note when it is missing."""
    from .probe import ProbeMissingError, load_probe

    try:
        probe = load_probe(probe_path, device="cpu")
    except ProbeMissingError as err:
        notes.append(f"P3 and P4 skipped: {err}")
        say(f"P3 and P4 skipped: {err}")
        return None, {}
    return probe, dict(probe.meta)


def report_header(command: str, config: dict[str, Any]) -> dict[str, Any]:
    """The fields every evaluation report starts with: format, versions, time, environment."""
    import platform

    from .. import __version__

    return {"format": "dtgan-eval-report", "format_version": "1", "dtgan_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
            "config": config,
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "threads": torch.get_num_threads(), "machine": platform.machine()}}


def run_evaluation(checkpoints: Sequence[str], out_dir: str | os.PathLike[str], *,
                   data: str | None = None, synth: str | None = None, clips: int | None = None,
                   seed: int = 0, device: str = "auto", protocols: str | Sequence[str] | None = None,
                   baselines: Sequence[str] | None = None, batch_size: int = 16,
                   frames: int = 16, examples: int = 4, probe_path: str | None = None,
                   progress: bool = False, command: str = "",
                   log: Callable[[str], None] | None = None,
                   paired_with: str | None = "") -> dict[str, Any]:
    """Evaluate checkpoints and baselines and write ``report.json``, ``report.md`` and pictures.

    ``checkpoints`` are ``PATH`` or ``NAME=PATH`` strings (or registered names); exactly one of
    ``data`` (a folder) and ``synth`` (a spec string, ``""`` for the defaults) is given.
    ``paired_with`` names the method the others are compared with clip by clip (``""``: the
    first checkpoint; ``None`` or ``"none"``: no paired comparison).
    Returns the report dict (also written as ``report.json``).
    """
    from ..system import resolve_device
    from .baselines import DEFAULT_BASELINES
    from .loading import check_baselines
    from .report import write_report

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    protos = parse_protocols(protocols)
    out = Path(out_dir).expanduser()
    _check_options(data, synth, batch_size, frames, examples, clips, out)
    spec = parse_synth_spec(synth) if synth is not None else None
    baseline_names = list(DEFAULT_BASELINES if baselines is None else baselines)
    dev = resolve_device(device)
    named = resolve_checkpoints(checkpoints)
    check_baselines(baseline_names)
    if not named and not baseline_names:
        raise UsageError("nothing to evaluate", hint="pass a checkpoint or a baseline")
    reference = _paired_reference(paired_with, [n for n, _, _ in named], baseline_names)
    # the evaluation runs at the first model's resolution (64 px with baselines only)
    size = int(named[0][2]["config"]["resolution"]) if named else 64
    if spec is not None:
        dataset: EvalData = SynthEvalData(spec, size=size, seed=seed, limit=clips)
    else:
        dataset = open_eval_folder(data, frames=frames, size=size, seed=seed, limit=clips)
    require_landmarks(landmark_models(named), dataset)  # before any model is loaded
    notes: list[str] = []
    methods = load_methods(named, baseline_names, dev, notes, say)
    for m in methods:
        if getattr(m, "resolution", dataset.size) != dataset.size:
            notes.append(f"{m.name} works at {m.resolution} px; its inputs were resized from "
                         f"and its outputs back to the evaluation size {dataset.size} px")
    probe, probe_info = None, {}
    if {"P3", "P4"} & set(protos) and dataset.has_truth:
        probe, probe_info = _load_probe(probe_path, notes, say)
    # a batch's frames are bounded in pixels, so 256 px clips do not take 16x the memory
    bs = _batch_limit(batch_size, (getattr(dataset, "frames", 16), 3, dataset.size, dataset.size))
    results = evaluate(methods, dataset, protocols=protos, probe=probe, batch_size=bs,
                       examples=examples, progress=progress, notes=notes,
                       paired_with=reference if any(m.name == reference for m in methods)
                       else None)
    skipped = dataset.skipped if isinstance(dataset, VideoFolderData) else []
    if results["clips"] == 0:
        raise MediaError(f"no clip of {data or 'the data'} could be evaluated (first problem: "
                         f"{skipped[0] if skipped else 'no clips'})",
                         hint="check the videos with 'ffprobe' or re-encode them")
    if skipped:
        results["notes"].append(f"{len(skipped)} video(s) skipped; first: {skipped[0]}")
    config = {"protocols": list(protos), "baselines": baseline_names, "seed": seed,
              "device": str(dev), "batch_size": batch_size, "clips": clips,
              "frames": frames if spec is None else spec.frames, "examples": examples,
              "synth": spec.to_dict() if spec else None, "data": str(data) if data else None}
    header = report_header(command, config)
    environment = header.pop("environment")
    report = {
        **header, "data": dataset.describe(),
        "checkpoints": {n: {"path": str(p), "fingerprint": meta["fingerprint"],
                            "config": meta["config"], "extra": meta.get("extra", {})}
                        for n, p, meta in named},
        "probe": probe_info, "environment": environment,
        **{k: v for k, v in results.items() if k != "examples"},
    }
    report["timing"]["total_seconds"] = time.perf_counter() - t0
    write_report(out, report, results["examples"])
    return report
