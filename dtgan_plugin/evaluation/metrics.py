"""Image, video and probe metrics, and streaming accumulators that never hold a whole dataset.

Every per-clip metric takes videos ``(B, T, 3, H, W)`` float in [0, 1] and returns ``(B,)``:
one value per clip, averaged over its frames, so the report can give a mean and a 95 %
confidence interval over clips.

* :func:`l1` — mean absolute error.
* :func:`psnr` — PSNR on [0, 1] (peak 1) of the clip's mean squared error; identical clips are
  capped at :data:`PSNR_CAP` dB instead of infinity so means stay finite.
* :func:`ssim` — Wang et al.'s SSIM with an 11x11 Gaussian window (sigma 1.5), k1 = 0.01,
  k2 = 0.03, computed by ``kornia.metrics.ssim`` on each RGB channel over the *valid* region
  (no padding) and averaged; the window shrinks to the largest odd size that fits frames
  smaller than 11 pixels.
* :func:`temporal_error`, :func:`excess_jitter`, :func:`background_drift` — protocol P5.
* :func:`leakage` — protocol P4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UsageError

__all__ = ["PSNR_CAP", "SSIM_WINDOW", "l1", "psnr", "ssim", "temporal_error", "excess_jitter",
           "background_drift", "leakage", "MeanAccumulator", "CorrAccumulator"]

#: PSNR of identical frames (dB); a finite cap keeps averages and JSON meaningful
PSNR_CAP = 100.0
SSIM_WINDOW = 11


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 5 or a.shape[2] != 3:
        raise UsageError(f"{name}: expected videos shaped (B, T, 3, H, W), got {tuple(a.shape)}")
    if a.shape != b.shape:
        raise UsageError(f"{name}: the two videos differ in shape: {tuple(a.shape)} vs "
                         f"{tuple(b.shape)}", hint="resize the output to the reference first")


def l1(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per clip: ``(B, T, 3, H, W)`` × 2 → ``(B,)``."""
    _check_pair("l1", output, reference)
    return (output.float() - reference.float()).abs().flatten(1).mean(1)


def psnr(output: torch.Tensor, reference: torch.Tensor, cap: float = PSNR_CAP) -> torch.Tensor:
    """PSNR in dB (peak 1.0) of each clip's mean squared error, ``(B,)``; capped at ``cap``.

    The MSE is pooled over the clip's frames before the logarithm: averaging per-frame PSNRs
    would let one exact frame (frame 0 of a static output is the target itself) count as
    ``cap`` dB and swamp the rest.
    """
    _check_pair("psnr", output, reference)
    mse = (output.float() - reference.float()).square().flatten(1).mean(1)  # (B,)
    floor = 10.0 ** (-cap / 10.0)
    return (10.0 * torch.log10(1.0 / mse.clamp(min=floor))).clamp(max=cap)


def ssim(output: torch.Tensor, reference: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Mean SSIM per clip (Gaussian ``window``, valid region, per RGB channel), ``(B,)``."""
    from kornia.metrics import ssim as kssim

    _check_pair("ssim", output, reference)
    b, t, c, h, w = output.shape
    win = min(window, h, w)
    win -= 1 - win % 2  # odd
    if win < 3:
        raise UsageError(f"ssim needs frames of at least 3x3 pixels, got {h}x{w}")
    x = output.float().reshape(b * t, c, h, w)
    y = reference.float().reshape(b * t, c, h, w)
    out = torch.empty(b * t)
    # in slices, so the SSIM maps (5 filtered copies) stay small whatever the batch
    step = max(1, (1 << 22) // (c * h * w))
    for a in range(0, b * t, step):
        m = kssim(x[a:a + step], y[a:a + step], win, max_val=1.0, padding="valid")
        out[a:a + step] = m.flatten(1).mean(1).cpu()
    return out.reshape(b, t).mean(1)


def _diff(x: torch.Tensor, order: int) -> torch.Tensor:
    for _ in range(order):
        x = x[:, 1:] - x[:, :-1]
    return x


def temporal_error(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame error: mean |Δoutput_t − Δreference_t| over t ≥ 1 and pixels, ``(B,)``.

    0 when the output changes exactly as the reference does (even if offset by a constant);
    NaN for one-frame clips.
    """
    _check_pair("temporal_error", output, reference)
    if output.shape[1] < 2:
        return torch.full((output.shape[0],), math.nan)
    d = _diff(output.float(), 1) - _diff(reference.float(), 1)
    return d.abs().flatten(1).mean(1)


def excess_jitter(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean |second difference| of the output minus that of the reference, per clip ``(B,)``.

    Positive: the output shakes or flickers more than the reference; 0: as smooth; negative:
    smoother (a frozen output scores −(the reference's own jitter)). NaN below 3 frames.
    """
    _check_pair("excess_jitter", output, reference)
    if output.shape[1] < 3:
        return torch.full((output.shape[0],), math.nan)
    jo = _diff(output.float(), 2).abs().flatten(1).mean(1)
    jr = _diff(reference.float(), 2).abs().flatten(1).mean(1)
    return jo - jr


def static_border_mask(reference: torch.Tensor, border: float = 0.125,
                       tol: float = 2.0 / 255.0) -> torch.Tensor:
    """``(B, H, W)`` bool: pixels in the outer ``border`` band that never change in ``reference``
    (by more than ``tol`` in any channel): background the output should keep still."""
    b, t, c, h, w = reference.shape
    bw = max(1, int(round(min(h, w) * border)))
    band = torch.ones(h, w, dtype=torch.bool)
    band[bw:h - bw, bw:w - bw] = False
    ref = reference.float()
    still = (ref - ref[:, :1]).abs().amax(dim=(1, 2)) <= tol  # (B, H, W)
    return still & band


def background_drift(output: torch.Tensor, reference: torch.Tensor, border: float = 0.125,
                     tol: float = 2.0 / 255.0) -> torch.Tensor:
    """Mean |output_t − output_0| over t ≥ 1 on the reference's still border, per clip ``(B,)``.

    The region is :func:`static_border_mask`: background that does not move in the reference,
    so any change of the output there (flicker or drift) is an error. NaN where a clip has no
    such pixels or only one frame.
    """
    _check_pair("background_drift", output, reference)
    b, t = output.shape[:2]
    if t < 2:
        return torch.full((b,), math.nan)
    mask = static_border_mask(reference, border, tol)  # (B, H, W)
    out = output.float()
    change = (out[:, 1:] - out[:, :1]).abs().mean(2)  # (B, T-1, H, W)
    total = (change * mask.unsqueeze(1).float()).sum(dim=(1, 2, 3))
    count = mask.flatten(1).sum(1).float() * (t - 1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full((b,), math.nan))


def leakage(emb_output: torch.Tensor, emb_target: torch.Tensor, emb_source: torch.Tensor,
            eps: float = 1e-6) -> torch.Tensor:
    """Appearance leakage per frame: d(out, target) / (d(out, target) + d(out, source)).

    Embeddings are ``(N, E)`` identity features of the output frame, of the *truth* frame (the
    target's identity in the same pose) and of the *source* frame. 0: the output has the
    target's identity; 1: it has the source's; 0.5: equally far from both.
    """
    if not (emb_output.shape == emb_target.shape == emb_source.shape) or emb_output.ndim != 2:
        raise UsageError("leakage: embeddings must all be (N, E) of one shape, got "
                         f"{tuple(emb_output.shape)}, {tuple(emb_target.shape)}, "
                         f"{tuple(emb_source.shape)}")
    dt = (emb_output - emb_target).norm(dim=1)
    ds = (emb_output - emb_source).norm(dim=1)
    return dt / (dt + ds + eps)


class MeanAccumulator:
    """Streaming mean, standard deviation and 95 % confidence interval; NaNs are skipped."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.skipped = 0

    def add(self, values: torch.Tensor | Sequence[float] | float) -> None:
        """Add one value or a batch of values."""
        v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        ok = torch.isfinite(v)
        self.skipped += int((~ok).sum())
        v = v[ok]
        self.n += int(v.numel())
        self.total += float(v.sum())
        self.total_sq += float(v.square().sum())

    @property
    def mean(self) -> float:
        """The mean (NaN when empty)."""
        return self.total / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (NaN below two values)."""
        if self.n < 2:
            return math.nan
        var = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return math.sqrt(max(var, 0.0))

    def summary(self) -> dict[str, Any]:
        """``{"mean", "std", "ci95", "n"}``; ci95 is the normal-approximation half-width."""
        ci = 1.96 * self.std / math.sqrt(self.n) if self.n >= 2 else math.nan
        out: dict[str, Any] = {"mean": self.mean, "std": self.std, "ci95": ci, "n": self.n}
        if self.skipped:
            out["skipped"] = self.skipped
        return out


class CorrAccumulator:
    """Streaming per-column Pearson correlation and MAE between predictions and truth.

    Columns are the probe's parameters; rows are frames (all clips pooled). Given clips
    ``(B, T, K)``, correlation is computed on values centred over each clip's frames: it
    measures whether the predicted trajectory follows the true one over time, not whether
    clips differ from each other (which a still output would score on, through its target's
    identity). The MAE uses the raw values. A column whose centred prediction or truth is
    constant (std below :attr:`CONSTANT_STD`) has correlation 0 by convention: a still output
    is not rewarded.
    """

    CONSTANT_STD = 1e-6

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        k = len(self.names)
        self.n = 0
        self.s = {key: torch.zeros(k, dtype=torch.float64)
                  for key in ("a", "b", "aa", "bb", "ab", "abs")}

    def add(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        """Add clips ``(B, T, K)`` (centred per clip for the correlation) or frames ``(N, K)``."""
        k = len(self.names)
        if pred.shape != truth.shape or pred.shape[-1] != k or pred.ndim not in (2, 3):
            raise UsageError(f"CorrAccumulator: prediction {tuple(pred.shape)} and truth "
                             f"{tuple(truth.shape)} must both be (B, T, {k}) or (N, {k})")
        a = pred.detach().to(torch.float64).cpu()
        b = truth.detach().to(torch.float64).cpu()
        self.s["abs"] += (a - b).abs().reshape(-1, k).sum(0)
        if a.ndim == 3:
            a = a - a.mean(1, keepdim=True)
            b = b - b.mean(1, keepdim=True)
        a, b = a.reshape(-1, k), b.reshape(-1, k)
        self.n += a.shape[0]
        s = self.s
        s["a"] += a.sum(0)
        s["b"] += b.sum(0)
        s["aa"] += (a * a).sum(0)
        s["bb"] += (b * b).sum(0)
        s["ab"] += (a * b).sum(0)

    def corr(self) -> dict[str, float]:
        """Pearson correlation per column."""
        if self.n < 2:
            return {name: math.nan for name in self.names}
        s, n = self.s, self.n
        cov = s["ab"] - s["a"] * s["b"] / n
        va = (s["aa"] - s["a"] ** 2 / n).clamp(min=0)
        vb = (s["bb"] - s["b"] ** 2 / n).clamp(min=0)
        denom = (va * vb).sqrt()
        # a constant column leaves only rounding noise in its variance: not a correlation
        floor = (self.CONSTANT_STD ** 2) * n
        ok = (va > floor) & (vb > floor)
        r = torch.where(ok, cov / denom.clamp(min=1e-300), torch.zeros_like(cov))
        return {name: float(v) for name, v in zip(self.names, r.clamp(-1, 1))}

    def mae(self) -> dict[str, float]:
        """Mean absolute error per column."""
        if not self.n:
            return {name: math.nan for name in self.names}
        return {name: float(v) for name, v in zip(self.names, self.s["abs"] / self.n)}
