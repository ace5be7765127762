"""Pictures people would rather look at than numbers: sample grids, GIFs, loss curves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch


def _u8(x: torch.Tensor) -> np.ndarray:
    """(…,3,H,W) float [0,1] → (…,H,W,3) uint8."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def _atomic_save(img: "object", path: Path, **kwargs: object) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")
    img.save(tmp, **kwargs)  # type: ignore[attr-defined]
    os.replace(tmp, path)


def sample_grid(target: torch.Tensor, source: torch.Tensor, output: torch.Tensor,
                truth: torch.Tensor | None = None, max_frames: int = 8) -> np.ndarray:
    """One block per example: a target column, then rows source / output / truth over time.

    Shapes: target (B,3,H,W); source, output, truth (B,T,3,H,W). Returns (H',W',3) uint8.
    """
    b, t = source.shape[:2]
    idx = torch.linspace(0, t - 1, min(t, max_frames)).round().long()
    h, w = source.shape[-2:]
    pad = 2
    rows = [source, output] + ([truth] if truth is not None else [])
    n_rows, n_cols = len(rows), len(idx) + 1
    canvas = np.full((b * (n_rows * (h + pad) + pad * 2), n_cols * (w + pad) + pad, 3), 255,
                     np.uint8)
    for i in range(b):
        top = i * (n_rows * (h + pad) + pad * 2)
        canvas[top + pad:top + pad + h, pad:pad + w] = _u8(target[i])
        for r, row in enumerate(rows):
            y = top + pad + r * (h + pad)
            for c, fi in enumerate(idx):
                x = pad + (c + 1) * (w + pad)
                canvas[y:y + h, x:x + w] = _u8(row[i, fi])
    return canvas


def save_sample_grid(path: str | Path, target: torch.Tensor, source: torch.Tensor,
                     output: torch.Tensor, truth: torch.Tensor | None = None) -> Path:
    """Write :func:`sample_grid` as a PNG (columns: target, then frames over time)."""
    from PIL import Image

    path = Path(path)
    _atomic_save(Image.fromarray(sample_grid(target, source, output, truth)), path)
    return path


def save_sample_gif(path: str | Path, target: torch.Tensor, source: torch.Tensor,
                    output: torch.Tensor, truth: torch.Tensor | None = None,
                    fps: int = 8, scale: int = 2) -> Path:
    """Animated GIF; each example is a row of source | target | output | truth panels."""
    from PIL import Image

    path = Path(path)
    b, t = source.shape[:2]
    frames = []
    for k in range(t):
        panels = [source[:, k], target, output[:, k]] + ([truth[:, k]] if truth is not None else [])
        row = torch.cat([torch.cat(list(p), dim=-2) for p in panels], dim=-1)  # (3, B*H, P*W)
        img = Image.fromarray(_u8(row))
        if scale != 1:
            img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        frames.append(img)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps),
                   loop=0)
    os.replace(tmp, path)
    return path


def plot_losses(log_path: str | Path, out_path: str | Path) -> Path | None:
    """Plot every numeric series of a JSONL training log against the step, as a PNG."""
    log_path, out_path = Path(log_path), Path(out_path)
    if not log_path.exists():
        return None
    rows = []
    for line in log_path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skip = {"step", "elapsed_s", "lr", "stage"}
    keys = sorted({k for r in rows for k, v in r.items()
                   if k not in skip and isinstance(v, (int, float))})
    groups = [("pre-training", [k for k in keys if k.startswith("pre_")]),
              ("reconstruction / dynamics", [k for k in keys if k in ("l1", "dyn")]),
              ("validation L1 vs static", [k for k in keys if k.startswith("val_")]),
              ("adversarial", [k for k in keys if k in ("d_s", "d_t", "g_s", "g_t")])]
    groups = [(title, ks) for title, ks in groups if ks]
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 2.6 * len(groups)), squeeze=False)
    for ax, (title, ks) in zip(axes[:, 0], groups):
        for key in ks:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key,
                    marker="o" if key.startswith("val_") else None, ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out_path.with_name(f".{out_path.name}.partial-{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_path)
    return out_path
