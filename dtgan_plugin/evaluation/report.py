"""Evaluation reports: ``report.json`` (every number), ``report.md`` (the table and its legend)
and pictures (side-by-side grids and GIFs of every method on the same examples).

Every file is written to a temporary name in the report folder and renamed when complete, so
an interrupted evaluation never leaves a half-written report under its final name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_output

__all__ = ["COLUMNS", "LEGEND", "write_report", "render_markdown", "format_table", "format_paired",
           "comparison_grid", "save_comparison_grid", "save_comparison_gif", "atomic_write_text",
           "json_safe"]

# (protocol, key path, header, better: "low" | "high" | "zero", decimals)
COLUMNS: tuple[tuple[str, tuple[str, ...], str, str, int], ...] = (
    ("P1", ("P1", "l1", "mean"), "P1 L1", "low", 4),
    ("P1", ("P1", "psnr", "mean"), "P1 PSNR", "high", 2),
    ("P1", ("P1", "ssim", "mean"), "P1 SSIM", "high", 4),
    ("P2", ("P2", "l1", "mean"), "P2 L1", "low", 4),
    ("P2", ("P2", "l1_vs_static",), "P2 L1/static", "low", 3),
    ("P2", ("P2", "psnr", "mean"), "P2 PSNR", "high", 2),
    ("P2", ("P2", "ssim", "mean"), "P2 SSIM", "high", 4),
    ("P3", ("P3", "corr_mean"), "P3 corr", "high", 3),
    ("P3", ("P3", "mae_expr"), "P3 MAE expr", "low", 3),
    ("P3", ("P3", "mae_motion"), "P3 MAE motion", "low", 4),
    ("P4", ("P4", "leakage", "mean"), "P4 leakage", "low", 3),
    ("P5", ("P5", "temporal_error", "mean"), "P5 Δ-error", "low", 4),
    ("P5", ("P5", "excess_jitter", "mean"), "P5 jitter", "zero", 4),
    ("P5", ("P5", "background_drift", "mean"), "P5 bg drift", "low", 4),
)

LEGEND: dict[str, str] = {
    "P1 L1": "P1 self-reconstruction (target = frame 0 of the clip, source = the clip): mean "
             "absolute error vs the clip, pixels in [0, 1]. Lower is better.",
    "P1 PSNR": "P1 peak signal-to-noise ratio in dB (peak 1.0) of each clip's mean squared "
               "error, averaged over clips; an identical clip counts as 100 dB. Higher is "
               "better.",
    "P1 SSIM": "P1 structural similarity (11x11 Gaussian window, sigma 1.5, valid region, per "
               "RGB channel), 1 = identical. Higher is better.",
    "P2 L1": "P2 cross-identity transfer (target = neutral face of identity B, source = a clip "
             "of identity A): L1 vs the exact ground truth, B rendered with A's per-frame "
             "parameters. Lower is better.",
    "P2 L1/static": "P2 L1 divided by the static baseline's: below 1 means the method moves "
                    "the target closer to the truth than leaving it still. Lower is better.",
    "P2 PSNR": "P2 PSNR vs the ground truth. Higher is better.",
    "P2 SSIM": "P2 SSIM vs the ground truth. Higher is better.",
    "P3 corr": "P3 motion fidelity: a probe CNN trained only on rendered frames of training "
               "identities reads the 13 per-frame parameters (8 expression, 5 head motion) off "
               "each P2 output frame; Pearson correlation with the source's true parameters "
               "over time (both centred on each clip's mean, then pooled over all frames), "
               "averaged over the parameters; a still output scores 0. Higher is better; the "
               "probe's own ceiling (on the ground truth) is given below the table.",
    "P3 MAE expr": "P3 mean absolute error of the probe's expression parameters (smile, "
                   "mouth_open, ... in their own units, mostly [-1, 1]). Lower is better.",
    "P3 MAE motion": "P3 mean absolute error of the head-motion parameters (shift in half image "
                     "heights, roll in radians, nod, scale). Lower is better.",
    "P4 leakage": "P4 appearance leakage: per frame, with the probe's identity embedding e "
                  "(skin, hair, lip, background, shirt colours, hair style, head shape, "
                  "glasses, hat; standardised), d(e(out), e(truth)) / (d(e(out), e(truth)) + "
                  "d(e(out), e(source))): 0 = looks like the target identity B, 1 = like the "
                  "source identity A, 0.5 = halfway. Lower is better.",
    "P5 Δ-error": "P5 frame-to-frame error: mean |(out_t - out_t-1) - (truth_t - truth_t-1)| "
                  "(P2's outputs vs the truth; P1's vs the clip for a folder of videos). Lower "
                  "is better.",
    "P5 jitter": "P5 excess jitter: mean |out_t+1 - 2 out_t + out_t-1| minus the same for the "
                 "truth. Positive = shakier than the truth, 0 = as smooth, negative = smoother "
                 "(a frozen output scores minus the truth's own jitter). Closest to 0 is best.",
    "P5 bg drift": "P5 background stability: mean |out_t - out_0| over the outer 1/8 border "
                   "pixels that never change in the truth. Lower is better.",
}


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _atomic_image(path: Path, img: Any, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        img.save(tmp, **kwargs)  # the temporary keeps the suffix: PIL picks the format
    return path


def _get(entry: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    cur: Any = entry
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            return None
        cur = cur[k]
    if isinstance(cur, (int, float)) and not isinstance(cur, bool):
        return float(cur)
    return None


def _add_ratios(report: dict[str, Any]) -> None:
    """P2 L1 of each method divided by the static baseline's (when both exist)."""
    methods = report.get("methods", {})
    static = _get(methods.get("static", {}), ("P2", "l1", "mean"))
    for entry in methods.values():
        mine = _get(entry, ("P2", "l1", "mean"))
        if static and mine is not None and "P2" in entry:
            entry["P2"]["l1_vs_static"] = mine / static if static > 0 else None


def _fmt(value: float | None, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{decimals}f}"


def format_table(report: Mapping[str, Any]) -> str:
    """The markdown table: one row per method (models first), one column per metric."""
    protos = set(report.get("protocols", []))
    methods = report.get("methods", {})
    cols = [c for c in COLUMNS if c[0] in protos and
            any(_get(e, c[1]) is not None for e in methods.values())]
    if not cols or not methods:
        return "_no metrics were computed_\n"
    best: dict[str, float] = {}
    for _, keys, header, better, _d in cols:
        vals = [_get(e, keys) for e in methods.values()]
        vals = [v for v in vals if v is not None and not math.isnan(v)]
        if len(vals) < 2:
            continue
        if better == "low":
            best[header] = min(vals)
        elif better == "high":
            best[header] = max(vals)
        else:
            best[header] = min(vals, key=abs)
    arrows = {"low": "↓", "high": "↑", "zero": "→0"}
    lines = ["| method | kind | " + " | ".join(f"{h} {arrows[b]}" for _, _, h, b, _ in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    for name, entry in methods.items():
        cells = []
        for _, keys, header, better, dec in cols:
            v = _get(entry, keys)
            text = _fmt(v, dec)
            if v is not None and header in best and not math.isnan(v) and \
                    (abs(v) if better == "zero" else v) == \
                    (abs(best[header]) if better == "zero" else best[header]):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | {entry.get('kind', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_paired(report: Mapping[str, Any]) -> str:
    """The paired-differences table: each method minus the reference, clip by clip."""
    paired = report.get("paired") or {}
    rows = paired.get("methods") or {}
    cols = [(f"{keys[0]}.{keys[1]}", header, better, dec) for _, keys, header, better, dec
            in COLUMNS if len(keys) == 3 and any(f"{keys[0]}.{keys[1]}" in r
                                                 for r in rows.values())]
    if not rows or not cols:
        return ""
    lines = ["| method | " + " | ".join(h for _, h, _, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, entry in rows.items():
        cells = []
        for key, _, better, dec in cols:
            d = entry.get(key)
            if not d or d.get("mean_diff") is None or math.isnan(d["mean_diff"]):
                cells.append("–")
                continue
            diff, ci = d["mean_diff"], d["ci95"]
            # one more decimal than the table: differences are small by nature
            text = f"{diff:+.{dec + 1}f} ± {_fmt(ci, dec + 1)}"
            if not math.isnan(ci) and abs(diff) > ci and better != "zero":
                good = (diff < 0) == (better == "low")
                text = f"**{text}** {'better' if good else 'worse'}"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _header_lines(report: Mapping[str, Any]) -> list[str]:
    """The report's title and its list of facts: data, checkpoints, probe, protocols, notes."""
    data = report.get("data", {})
    out = ["# dtgan eval report", ""]
    out.append(f"- created: {report.get('created', '')}, dtgan {report.get('dtgan_version', '')}")
    if report.get("command"):
        out.append(f"- command: `{report['command']}`")
    desc = f"{data.get('kind')} data, {report.get('clips', data.get('clips'))} clips at " \
           f"{data.get('size')} px"
    if data.get("kind") == "synth":
        split = data.get("split", "test")
        desc += (f" ({split}-split identities: {data.get(f'{split}_identities')}, frames per clip: "
                 f"{data.get('frames')}, world seed {data.get('world_seed')}, held-out dynamics "
                 f"seed {data.get('dynamics_seed')}, pair seed {data.get('pair_seed')})")
        part = (data.get("spec") or {}).get("part", "all")
        if part != "all":
            desc += f"; only the {part} parameters move, the others stay neutral"
    elif data.get("folder"):
        desc += f" from {data['folder']}"
    out.append(f"- data: {desc}")
    for name, ck in report.get("checkpoints", {}).items():
        cfg = ck.get("config", {})
        out.append(f"- checkpoint **{name}**: `{ck.get('path')}` (fingerprint "
                   f"`{ck.get('fingerprint')}`, {cfg.get('resolution')} px, generator "
                   f"{cfg.get('generator')}, asd_mode {cfg.get('asd_mode')})")
    probe = report.get("probe") or {}
    if probe:
        held = probe.get("heldout", {})
        r = held.get("corr", {})
        mean = sum(r.values()) / len(r) if r else float("nan")
        out.append(f"- motion probe: `{probe.get('path')}` (held-out mean correlation "
                   f"{mean:.3f} on rendered frames of test identities)")
    out.append(f"- protocols run: {', '.join(report.get('protocols', [])) or 'none'}")
    notes = report.get("notes") or []
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return out


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole ``report.md``."""
    out = _header_lines(report)
    out += ["", "## Results", "", format_table(report)]
    n = report.get("clips")
    out.append(f"Means over {n} clips (95 % confidence intervals and per-parameter numbers are "
               "in report.json). Bold: best in the column.")
    ceiling = report.get("probe_ceiling")
    if ceiling:
        out.append("")
        out.append(f"P3 ceiling — the probe on the ground truth itself: corr "
                   f"{_fmt(ceiling.get('corr_mean'), 3)}, MAE expr "
                   f"{_fmt(ceiling.get('mae_expr'), 3)}, MAE motion "
                   f"{_fmt(ceiling.get('mae_motion'), 4)}. A method cannot be expected to "
                   "score better than this.")
    paired_table = format_paired(report)
    if paired_table:
        ref = report["paired"]["reference"]
        out += ["", f"## Paired differences vs {ref}", "",
                f"Each method minus **{ref}** on the same clips, mean ± 95 % interval of the "
                "per-clip differences (hard clips are hard for every method, so these intervals "
                "are much narrower than the means' own). Bold: the interval excludes zero.", "",
                paired_table]
    shown = [h for p, _, h, _, _ in COLUMNS if p in set(report.get("protocols", []))]
    if shown:
        out += ["", "## Legend", ""]
        out += [f"- **{h}**: {LEGEND[h]}" for h in shown if h in LEGEND]
        out.append("- Baselines: **static** repeats the target; **flow-warp** warps the target "
                   "by the source's dense Farneback optical flow from each frame to frame 0; "
                   "**copy-source** (opt-in) outputs the source itself, the worst case of "
                   "leakage.")
    timing = report.get("timing", {})
    rows = [(k, v.get("timing", {})) for k, v in report.get("methods", {}).items()]
    if rows:
        out += ["", "## Timing", "", "| method | seconds | frames | frames/s |",
                "|---|---:|---:|---:|"]
        for name, t in rows:
            fps = t.get("frames_per_second")
            out.append(f"| {name} | {t.get('seconds', 0):.2f} | {t.get('frames', 0)} | "
                       f"{fps:.0f} |" if fps else f"| {name} | – | – | – |")
        out.append("")
        out.append(f"Total: {timing.get('total_seconds', timing.get('seconds', 0)):.1f} s on "
                   f"{report.get('config', {}).get('device', '?')}.")
    pics = report.get("pictures") or []
    if pics:
        out += ["", "## Examples", ""]
        for p in pics:
            if p.endswith(".png"):
                out.append(f"![{p}]({p})")
            else:
                out.append(f"- animated: [{p}]({p})")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------

def _u8(x: torch.Tensor) -> np.ndarray:
    """(…,3,H,W) float [0,1] → (…,H,W,3) uint8."""
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1) \
        .cpu().numpy()


def _text(img: Any, xy: tuple[int, int], text: str) -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(img).text(xy, text, fill=(0, 0, 0))


def comparison_grid(source: torch.Tensor, target: torch.Tensor,
                    outputs: Mapping[str, torch.Tensor], truth: torch.Tensor | None = None, *,
                    max_frames: int = 8, scale: int = 1, truth_label: str = "truth") -> Any:
    """One example as a labelled PIL image: rows source, target, each method, truth; columns
    are frames over time (the target is one image, in the first column).

    Shapes: source, outputs, truth ``(T, 3, H, W)``; target ``(3, H, W)``.
    """
    from PIL import Image

    t, _, h, w = source.shape
    idx = torch.linspace(0, t - 1, min(t, max_frames)).round().long().tolist()
    rows: list[tuple[str, torch.Tensor | None]] = [("source", source), ("target", None)]
    rows += list(outputs.items())
    if truth is not None:
        rows.append((truth_label, truth))
    hs, ws, pad, label_w, head_h = h * scale, w * scale, 2, 84, 12
    width = label_w + len(idx) * (ws + pad) + pad
    height = head_h + len(rows) * (hs + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    for c, fi in enumerate(idx):
        _text(canvas, (label_w + pad + c * (ws + pad), 0), f"t={fi}")

    def paste(frame: torch.Tensor, x: int, y: int) -> None:
        tile = Image.fromarray(_u8(frame))
        if scale != 1:
            tile = tile.resize((ws, hs), Image.NEAREST)
        canvas.paste(tile, (x, y))

    for r, (label, video) in enumerate(rows):
        y = head_h + pad + r * (hs + pad)
        _text(canvas, (2, y + hs // 2 - 5), label[:13])
        if video is None:
            paste(target, label_w + pad, y)
            continue
        for c, fi in enumerate(idx):
            paste(video[fi], label_w + pad + c * (ws + pad), y)
    return canvas


def save_comparison_grid(path: str | os.PathLike[str], source: torch.Tensor,
                         target: torch.Tensor, outputs: Mapping[str, torch.Tensor],
                         truth: torch.Tensor | None = None, **kwargs: Any) -> Path:
    """Write :func:`comparison_grid` as a PNG, atomically."""
    return _atomic_image(Path(path), comparison_grid(source, target, outputs, truth, **kwargs))


def save_comparison_gif(path: str | os.PathLike[str], source: torch.Tensor, target: torch.Tensor,
                        outputs: Mapping[str, torch.Tensor], truth: torch.Tensor | None = None,
                        *, fps: int = 8, scale: int = 2, truth_label: str = "truth") -> Path:
    """An animated GIF: one row per example, panels source | target | methods… | truth.

    Shapes: source, outputs, truth ``(B, T, 3, H, W)``; target ``(B, 3, H, W)``.
    """
    from PIL import Image

    b, t, _, h, w = source.shape
    labels = ["source", "target", *outputs.keys()] + ([truth_label] if truth is not None else [])
    hs, ws, pad, head_h = h * scale, w * scale, 2, 12
    width = len(labels) * (ws + pad) + pad
    height = head_h + b * (hs + pad) + pad
    base = Image.new("RGB", (width, height), (255, 255, 255))
    for i, lab in enumerate(labels):
        _text(base, (pad + i * (ws + pad), 0), lab[:max(4, ws // 6)])
    frames = []
    for k in range(t):
        img = base.copy()
        for e in range(b):
            panels = [source[e, k], target[e]] + [o[e, k] for o in outputs.values()]
            if truth is not None:
                panels.append(truth[e, k])
            for i, panel in enumerate(panels):
                tile = Image.fromarray(_u8(panel))
                if scale != 1:
                    tile = tile.resize((ws, hs), Image.NEAREST)
                img.paste(tile, (pad + i * (ws + pad), head_h + pad + e * (hs + pad)))
        frames.append(img.convert("P", palette=Image.ADAPTIVE, colors=255))
    return _atomic_image(Path(path), frames[0], save_all=True, append_images=frames[1:],
                         duration=max(20, int(1000 / fps)), loop=0)


def _json_safe(obj: Any) -> Any:
    """NaN/inf → None (strict JSON), tensors → lists, paths → strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


#: public name for the other report writers (the real-video protocol's)
json_safe = _json_safe


def write_report(out_dir: str | os.PathLike[str], report: dict[str, Any],
                 examples: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write pictures, ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _add_ratios(report)
    written: dict[str, Path] = {}
    pics: list[str] = []
    if examples and examples.get("source") is not None and examples.get("outputs"):
        src, tgt, tru = examples["source"], examples["target"], examples["truth"]
        outs = examples["outputs"]
        tag = "p2" if examples.get("cross") else "p1"
        truth_label = "truth" if examples.get("cross") else "clip"
        h = int(src.shape[-2])
        scale = max(1, round(96 / h))
        for i in range(int(src.shape[0])):
            rel = f"examples/{tag}_example_{i:02d}.png"
            save_comparison_grid(out / rel, src[i], tgt[i], {k: v[i] for k, v in outs.items()},
                                 tru[i] if examples.get("cross") else None, scale=scale,
                                 truth_label=truth_label)
            pics.append(rel)
        rel = f"examples/{tag}_examples.gif"
        save_comparison_gif(out / rel, src, tgt, outs, tru if examples.get("cross") else None,
                            scale=max(1, round(64 / h)), truth_label=truth_label)
        pics.append(rel)
        if "names" in examples:
            report.setdefault("example_clips", list(examples["names"]))
    report["pictures"] = pics
    for rel in pics:
        written[rel] = out / rel
    written["report.json"] = atomic_write_text(
        out / "report.json", json.dumps(_json_safe(report), indent=2, sort_keys=False) + "\n")
    written["report.md"] = atomic_write_text(out / "report.md", render_markdown(report))
    return written
