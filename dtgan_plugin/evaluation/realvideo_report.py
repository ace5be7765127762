"""The real-video protocol's report: ``report.json`` (every per-pair value), ``report.md`` (the
table, the per-signal table and the legend) and pictures, with :mod:`.report`'s machinery
(atomic files, comparison grids and GIFs)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .realvideo_metrics import SIGNALS
from .realvideo_readability import UNREADABLE_GAIN, describe_probes
from .report import atomic_write_text, json_safe, save_comparison_gif, save_comparison_grid

__all__ = ["REAL_COLUMNS", "REAL_LEGEND", "summarise_methods", "render_real_markdown",
           "write_real_report"]

# (key, header, better: "low" | "high" | "one", decimals)
REAL_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("motion_corr", "motion corr", "high", 3),
    ("amplitude", "amplitude", "one", 2),
    ("amplitude_log2_error", "|log2 amp|", "low", 2),
    ("identity_margin", "identity margin", "high", 3),
    ("aligned_identity_margin", "aligned identity", "high", 3),
    ("shape_margin", "shape margin", "high", 3),
    ("liveliness", "liveliness", "one", 2),
    ("self_l1", "self L1", "low", 4),
    ("self_psnr", "self PSNR", "high", 2),
    ("self_ssim", "self SSIM", "high", 4),
    ("lost_frames", "lost frames", "low", 1),
)

REAL_LEGEND: dict[str, str] = {
    "motion corr": "Pearson correlation over time between the source's landmark signals and "
                   "the output's (both read by the landmarker on the face crops), averaged "
                   "over the signals that move in the source (std above the threshold in the "
                   "notes); a still output scores 0. Higher is better.",
    "amplitude": "std of the output's signal over the source's, averaged over the moving "
                 "signals: 1 = the source's size of motion, 0 = none. Closest to 1 is best.",
    "|log2 amp|": "mean |log2 amplitude ratio| over the moving signals: 0 = the source's size "
                  "of motion, 1 = half or double. Lower is better.",
    "identity margin": "per frame (d_s - d_t) / (d_s + d_t) on 16x16 area-averaged face crops: "
                       "d_t the output's mean absolute difference to the target crop, d_s to "
                       "the source's crop of that frame. +1 looks like the target, -1 like the "
                       "source. Cross pairs only. Higher is better. Motion itself costs "
                       "margin here (a shifted head changes the thumbnail): only a still "
                       "output reaches 1.",
    "aligned identity": "the identity margin with pose and expression factored out: each "
                        "output frame is warped (thin-plate spline through its own 68 "
                        "landmarks less the inner lips, plus the frame border) onto the "
                        "target's landmarks, and so is the source's frame; d_t, d_s are then "
                        "taken on 16x16 thumbnails inside the target's face (the hull of its "
                        "landmarks, eroded, less the mouth). A moving head or an opening mouth "
                        "costs nothing; a face that drifts towards the source's does. +1 "
                        "the target, -1 the source. Cross pairs only. Higher is better.",
    "shape margin": "the same margin on the face's shape: jaw and nose landmarks after a "
                    "similarity alignment, vs the target's and vs the source's frame. Higher "
                    "is better (cross pairs only).",
    "liveliness": "the output's mean frame-to-frame change over the source's: 0 = still, 1 = "
                  "as lively. Closest to 1 is best.",
    "self L1": "self pairs only (target = the source's frame 0): mean absolute error vs the "
               "source's face crops. Lower is better.",
    "self PSNR": "self pairs: PSNR in dB vs the source's crops. Higher is better.",
    "self SSIM": "self pairs: SSIM vs the source's crops. Higher is better.",
    "lost frames": "output frames where the landmarker found no face (filled from their "
                   "neighbours), per pair. Lower is better.",
}


def summarise_methods(per_method: Mapping[str, Any]) -> dict[str, Any]:
    """Per method: each metric's mean over pairs (with std, ci95, n) and per signal the mean
    correlation and amplitude over the pairs where that signal moves in the source."""
    out: dict[str, Any] = {}
    for name, entry in per_method.items():
        summ: dict[str, Any] = {}
        for key, vals in entry["per_clip"].items():
            acc = M.MeanAccumulator()
            acc.add(vals)
            summ[key] = acc.summary()
        signals: dict[str, Any] = {}
        for sig in SIGNALS:
            rows = [p[sig] for p in entry["signals"] if p[sig]["moves"]]
            corr = [r["corr"] for r in rows if math.isfinite(r["corr"])]
            amp = [r["amplitude"] for r in rows if math.isfinite(r["amplitude"])]
            signals[sig] = {"pairs_moving": len(rows),
                            "corr": float(np.mean(corr)) if corr else math.nan,
                            "amplitude": float(np.mean(amp)) if amp else math.nan}
        secs, frames = entry["seconds"], entry["frames"]
        out[name] = {**entry.get("describe", {}), "metrics": summ, "signals": signals,
                     "per_clip": entry["per_clip"], "per_pair_signals": entry["signals"],
                     "timing": {"seconds": secs, "frames": frames,
                                "frames_per_second": frames / secs if secs else None}}
    return out


def _fmt(v: float | None, d: int) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{d}f}"


def _best(values: list[float], better: str) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return None
    if better == "low":
        return min(vals)
    if better == "high":
        return max(vals)
    return min(vals, key=lambda v: abs(v - 1))


def format_real_table(methods: Mapping[str, Any]) -> str:
    """One row per method, one column per metric (means over pairs); bold = best."""
    def mean(entry: Mapping[str, Any], key: str) -> float | None:
        return (entry["metrics"].get(key) or {}).get("mean")

    cols = [c for c in REAL_COLUMNS if any(
        mean(e, c[0]) is not None and math.isfinite(mean(e, c[0])) for e in methods.values())]
    arrows = {"low": "↓", "high": "↑", "one": "→1"}
    lines = ["| method | kind | " + " | ".join(f"{h} {arrows[b]}" for _, h, b, _ in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    best = {k: _best([mean(e, k) for e in methods.values()], b) for k, _, b, _ in cols}
    for name, entry in methods.items():
        cells = []
        for key, _, _, dec in cols:
            v = mean(entry, key)
            text = _fmt(v, dec)
            cells.append(f"**{text}**" if best[key] is not None and v == best[key] else text)
        lines.append(f"| {name} | {entry.get('kind', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_signal_table(methods: Mapping[str, Any]) -> str:
    """Per method and signal: correlation / amplitude over the pairs where it moves."""
    lines = ["| method | " + " | ".join(SIGNALS) + " |", "|---|" + "---:|" * len(SIGNALS)]
    for name, entry in methods.items():
        cells = []
        for sig in SIGNALS:
            s = entry["signals"][sig]
            cells.append("–" if not s["pairs_moving"] else
                         f"{_fmt(s['corr'], 2)} / {_fmt(s['amplitude'], 2)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


READING_GAIN_LEGEND = (
    "each target crop is warped (thin-plate spline) so that its landmarks make known moves "
    f"({describe_probes()}; iod: interocular distances, face: face sizes), and the landmarker "
    "reads the frames back as one clip; gain: "
    "least-squares slope of the read signal on the intended one (1 = read at full size, 0 = "
    "not read), corr: their correlation. A signal read with gain below "
    f"{UNREADABLE_GAIN} on a target cannot be expected to correlate there, whatever the "
    "method. The head signals move every point alike and should read about 1 (a check of the "
    "probe); mouth opening is not probed (a stretch draws no mouth cavity). Information only: "
    "no score uses it.")


def _gain_cell(g: Mapping[str, Any] | None) -> str:
    return "–" if not g else f"{_fmt(g.get('gain'), 2)} ({_fmt(g.get('corr'), 2)})"


def format_reading_gain_table(pairs: Sequence[Mapping[str, Any]]) -> str:
    """One row per pair, one column per probed signal: ``gain (corr)``; empty when none."""
    probed = [s for s in SIGNALS if any(s in (p.get("reading_gain") or {}) for p in pairs)]
    if not probed:
        return ""
    lines = ["| pair | " + " | ".join(probed) + " |", "|---|" + "---:|" * len(probed)]
    for p in pairs:
        gains = p.get("reading_gain") or {}
        cells = [_gain_cell(gains.get(s)) for s in probed]
        lines.append(f"| {p['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_real_markdown(report: Mapping[str, Any]) -> str:
    """The whole ``report.md`` of a real-video evaluation."""
    cfg = report.get("config", {})
    out = ["# dtgan eval report: real video", "",
           f"- created: {report.get('created', '')}, dtgan {report.get('dtgan_version', '')}"]
    if report.get("command"):
        out.append(f"- command: `{report['command']}`")
    out.append(f"- landmarker: {cfg.get('landmarker')}; face crops of {cfg.get('size')} px, "
               f"up to {cfg.get('frames')} frames per source")
    for p in report.get("pairs", []):
        moving = ", ".join(p.get("moving_signals") or []) or "none"
        out.append(f"- pair **{p['name']}**: {p.get('frames')} frames; signals that move in "
                   f"the source (std > {cfg.get('moves_std')}): {moving}; source frames "
                   f"without a face: {p.get('source_lost_frames', 0)}")
    notes = report.get("notes") or []
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    methods = report.get("methods", {})
    out += ["", "## Results", "", format_real_table(methods),
            f"Means over {len(report.get('pairs', []))} pairs (self metrics over the self "
            "pairs, identity (plain and aligned) and shape margins over the cross pairs); "
            "per-pair values are in report.json. Bold: best in the column.",
            "", "## Per signal (correlation / amplitude)", "", format_signal_table(methods)]
    gains = format_reading_gain_table(report.get("pairs", []))
    if gains:
        out += ["", "## Landmarker's reading gain on each target", "", gains,
                f"gain (corr) per pair and signal: {READING_GAIN_LEGEND}"]
    out += ["", "## Legend", ""]
    out += [f"- **{h}**: {REAL_LEGEND[h]}" for _, h, _, _ in REAL_COLUMNS]
    out.append("- Baselines: **static** repeats the target; **flow-warp** warps the target by "
               "the source's Farneback flow to frame 0; **flow-warp-aligned** carries that "
               "flow onto the target's face through the similarity between the two faces' "
               "landmarks; **landmark-warp** warps the target by a thin-plate spline through "
               "its 68 landmarks moved by the source's displacements from frame 0 (rotated "
               "and scaled to the target's face).")
    pics = report.get("pictures") or []
    if pics:
        out += ["", "## Examples", ""]
        out += [f"![{p}]({p})" if p.endswith(".png") else f"- animated: [{p}]({p})"
                for p in pics]
    return "\n".join(out) + "\n"


def write_real_report(out_dir: str | os.PathLike[str], report: dict[str, Any],
                      examples: Sequence[Mapping[str, Any]] = ()) -> dict[str, Path]:
    """Write grids and GIFs (source | target | each method) per example pair, ``report.json``
    and ``report.md`` into ``out_dir``, each atomically; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pics: list[str] = []
    for i, ex in enumerate(examples):
        src, tgt, outs = ex["source"], ex["target"], ex["outputs"]
        h = int(src.shape[-2])
        rel = f"examples/real_{i:02d}.png"
        save_comparison_grid(out / rel, src, tgt, outs, None, scale=max(1, round(96 / h)))
        pics.append(rel)
        rel = f"examples/real_{i:02d}.gif"
        save_comparison_gif(out / rel, src[None], tgt[None],
                            {k: v[None] for k, v in outs.items()}, None,
                            scale=max(1, round(96 / h)))
        pics.append(rel)
    report["pictures"] = pics
    written = {rel: out / rel for rel in pics}
    written["report.json"] = atomic_write_text(
        out / "report.json", json.dumps(json_safe(report), indent=2) + "\n")
    written["report.md"] = atomic_write_text(out / "report.md", render_real_markdown(report))
    return written

