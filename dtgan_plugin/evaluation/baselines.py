"""The methods an evaluation compares: DTGAN checkpoints and the classical baselines.

A *method* is a callable ``method(source, target) -> output`` with ``source`` ``(B, T, 3, H, W)``,
``target`` ``(B, 3, H, W)`` and ``output`` ``(B, T, 3, H, W)``, all float in [0, 1] on the CPU,
plus a ``name`` and a ``kind`` (``"model"`` or ``"baseline"``). A method with
``needs_landmarks`` (a landmark model) is also given ``source_lmk`` ``(B, T, 68, 2)`` and
``target_lmk`` ``(B, 68, 2)``: the 68 iBUG points in pixels of the frames passed (pixel centres
at integers, as the renderer's :func:`~dtgan_plugin.synthfaces.landmarks.landmarks68`); the
others are called with frames only. Baselines:

* ``static`` — repeat the target: no motion at all. Every method should beat it.
* ``flow-warp`` — classical optical flow: dense Farneback flow (OpenCV) from each source frame
  back to the source's reference frame (frame 0) is applied to the target with bilinear
  sampling, i.e. ``output_t(x) = target(x + flow_{t→0}(x))``. It moves the target's pixels
  exactly as the source's pixels moved, which is right when the two faces are aligned and
  wrong where the source's appearance changes (an opening mouth shows teeth the target's
  closed mouth does not have). Needs ``opencv-python-headless`` (the ``eval`` extra).
* ``copy-source`` — output the source itself (opt-in): the worst case of appearance leakage,
  useful to calibrate P4.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import UsageError

__all__ = ["BASELINES", "DEFAULT_BASELINES", "BaselineUnavailable", "Method", "StaticBaseline",
           "FlowWarpBaseline", "CopySourceBaseline", "ModelMethod", "make_baseline",
           "farneback_flow", "warp_by_flow", "resize_frames", "resize_points"]


class BaselineUnavailable(Exception):
    """A baseline whose optional dependency is missing; the evaluation skips it with a note."""


class Method:
    """Base of every compared method: ``method(source, target) -> output``."""

    name: str = ""
    kind: str = "baseline"
    #: True when the method reads landmarks (the evaluation then passes them as keywords)
    needs_landmarks: bool = False

    def __call__(self, source: torch.Tensor, target: torch.Tensor,
                 source_lmk: torch.Tensor | None = None,
                 target_lmk: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for the report."""
        return {"name": self.name, "kind": self.kind}


def _check_inputs(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.ndim != 5 or source.shape[2] != 3:
        raise UsageError(f"source must be (B, T, 3, H, W), got {tuple(source.shape)}")
    if target.ndim != 4 or target.shape[0] != source.shape[0] or \
            target.shape[1:] != source.shape[2:]:
        raise UsageError(f"target must be (B, 3, H, W) matching the source {tuple(source.shape)}, "
                         f"got {tuple(target.shape)}")


def resize_frames(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(..., 3, H, W)`` frames to ``size``×``size`` (antialiased bilinear), clamped."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:]).float()
    y = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False).clamp_(0, 1)
    return y.reshape(*lead, 3, size, size)


def resize_points(points: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """Pixel points ``(..., 2)`` (x, y) of ``height``×``width`` frames → pixels of the same
    frames resized to ``size``×``size`` by :func:`resize_frames`. Points are continuous, as a
    landmarker's are (pixel ``i`` covers ``[i, i + 1)``), so resizing just scales them."""
    if (height, width) == (size, size):
        return points
    scale = torch.tensor([size / width, size / height], dtype=torch.float32)
    return points.float() * scale


class StaticBaseline(Method):
    """Repeat the target for every frame."""

    name = "static"

    def __call__(self, source: torch.Tensor, target: torch.Tensor,
                 source_lmk: torch.Tensor | None = None,
                 target_lmk: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(source, target)
        return target.unsqueeze(1).expand_as(source).clone()


class CopySourceBaseline(Method):
    """Output the source unchanged (an oracle of total appearance leakage)."""

    name = "copy-source"

    def __call__(self, source: torch.Tensor, target: torch.Tensor,
                 source_lmk: torch.Tensor | None = None,
                 target_lmk: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(source, target)
        return source.clone()


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise BaselineUnavailable("flow-warp baseline skipped: OpenCV is not installed "
                                  "(pip install 'dtgan-plugin[eval]' or "
                                  "opencv-python-headless)") from None
    return cv2


def _to_gray_u8(frames: torch.Tensor) -> Any:
    """``(T, 3, H, W)`` [0, 1] → numpy ``(T, H, W)`` uint8 luma (BT.601 weights)."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = (frames.float().cpu() * w).sum(1)
    return (y * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def farneback_flow(frames: torch.Tensor, reference: int = 0, **params: Any) -> torch.Tensor:
    """Dense flow from every frame to the reference frame: ``(T, H, W, 2)`` (dx, dy) pixels.

    ``frame_t(x) ≈ frame_ref(x + flow_t(x))``. ``params`` override the Farneback settings,
    which otherwise scale with the frame size (pyramid levels, window).
    """
    cv2 = _cv2()
    import numpy as np

    t, _, h, w = frames.shape
    side = min(h, w)
    opts = {"pyr_scale": 0.5, "levels": max(1, min(4, int(math.log2(max(side, 16) / 8)))),
            "winsize": max(5, int(round(side / 8)) | 1), "iterations": 3, "poly_n": 5,
            "poly_sigma": 1.1, "flags": 0}
    opts.update(params)
    gray = _to_gray_u8(frames)
    ref = gray[reference]
    out = np.zeros((t, h, w, 2), np.float32)
    for i in range(t):
        if i == reference:
            continue
        out[i] = cv2.calcOpticalFlowFarneback(gray[i], ref, None, opts["pyr_scale"],
                                              opts["levels"], opts["winsize"],
                                              opts["iterations"], opts["poly_n"],
                                              opts["poly_sigma"], opts["flags"])
    return torch.from_numpy(out)


def warp_by_flow(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``out_t(x) = image(x + flow_t(x))``: image ``(3, H, W)`` (or one per frame,
    ``(T, 3, H, W)``), flow ``(T, H, W, 2)`` → ``(T, 3, H, W)`` (bilinear, edge pixels repeated
    outside the image)."""
    t, h, w, _ = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs + flow[..., 0] + 0.5) / w * 2 - 1  # pixel centres, align_corners=False
    gy = (ys + flow[..., 1] + 0.5) / h * 2 - 1
    grid = torch.stack([gx, gy], -1)
    img = image.float()
    if img.dim() == 3:
        img = img.unsqueeze(0).expand(t, -1, -1, -1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border",
                         align_corners=False).clamp_(0, 1)


class FlowWarpBaseline(Method):
    """Warp the target by the source's dense optical flow to its reference frame."""

    name = "flow-warp"

    def __init__(self, **farneback: Any) -> None:
        _cv2()  # fail at construction, so the evaluation can skip it with a note
        self.farneback = farneback

    def __call__(self, source: torch.Tensor, target: torch.Tensor,
                 source_lmk: torch.Tensor | None = None,
                 target_lmk: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(source, target)
        outs = []
        for b in range(source.shape[0]):
            flow = farneback_flow(source[b], 0, **self.farneback)
            outs.append(warp_by_flow(target[b], flow))
        return torch.stack(outs)

    def describe(self) -> dict[str, Any]:
        """Facts for the report, including the OpenCV version."""
        cv2 = _cv2()
        return {**super().describe(), "opencv": cv2.__version__, "reference_frame": 0,
                "flow": "Farneback, frame t -> frame 0, luma", **self.farneback}


class ModelMethod(Method):
    """A DTGAN checkpoint: ASD of the source against its frame 0, generator on the target.

    Frames are resized to the model's resolution when the evaluation runs at another size,
    and the output back to it. A landmark model reads the source's landmarks instead of its
    frames (``dynamics_input = "landmarks"``) and/or the target's (``geowarp``), scaled with
    the frames.
    """

    kind = "model"

    def __init__(self, name: str, model: Any, *, path: str = "", fingerprint: str = "",
                 info: dict[str, Any] | None = None) -> None:
        self.name = name
        self.model = model
        self.path = path
        self.fingerprint = fingerprint or model.fingerprint()
        self.info = dict(info or {})
        self.device = next(model.parameters()).device
        self.resolution = int(model.config.resolution)
        self.source_landmarks = bool(getattr(model.config, "uses_landmarks", False))
        self.target_landmarks = bool(getattr(model.generator, "needs_landmarks", False))
        self.needs_landmarks = self.source_landmarks or self.target_landmarks

    def _points(self, what: str, points: torch.Tensor | None,
                frames: torch.Tensor) -> torch.Tensor:
        """``points`` of ``frames`` at the model's resolution, on its device."""
        if points is None:
            raise UsageError(f"{self.name} is a landmark model and needs the {what}'s landmarks",
                             hint="evaluate it on procedural data (--synth, or a data set "
                                  "that 'dtgan data' wrote), or on real videos with "
                                  "'dtgan eval --real'")
        want = (*frames.shape[:-3], 68, 2)
        if tuple(points.shape) != want:
            raise UsageError(f"{what} landmarks must be {want}, got {tuple(points.shape)}")
        h, w = int(frames.shape[-2]), int(frames.shape[-1])
        return resize_points(points, h, w, self.resolution).to(self.device, torch.float32)

    @torch.inference_mode()
    def __call__(self, source: torch.Tensor, target: torch.Tensor,
                 source_lmk: torch.Tensor | None = None,
                 target_lmk: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(source, target)
        tgt = resize_frames(target, self.resolution)
        t = (tgt.to(self.device, torch.float32) * 2 - 1).contiguous()
        if self.source_landmarks:
            x = self._points("source", source_lmk, source)
        else:
            src = resize_frames(source, self.resolution)
            x = (src.to(self.device, torch.float32) * 2 - 1).contiguous()
        enc = self.model.encoder
        d, _ = enc.step(x, enc.init_state(x[:, 0]))
        if self.target_landmarks:
            y = self.model.generator(t, d, self._points("target", target_lmk, target))
        else:
            y = self.model.generator(t, d)
        out = ((y.float() + 1) * 0.5).clamp_(0, 1).cpu()
        if out.shape != source.shape:
            out = F.interpolate(out.flatten(0, 1), size=tuple(source.shape[-2:]),
                                mode="bilinear", antialias=True,
                                align_corners=False).clamp_(0, 1).reshape(source.shape)
        return out

    def describe(self) -> dict[str, Any]:
        """Facts for the report: path, fingerprint, the model's config."""
        cfg = self.model.config
        return {**super().describe(), "path": self.path, "fingerprint": self.fingerprint,
                "resolution": self.resolution, "generator": cfg.generator,
                "asd_mode": cfg.asd_mode, "config": cfg.to_dict(), **self.info}


BASELINES: dict[str, Callable[[], Method]] = {
    "static": StaticBaseline,
    "flow-warp": FlowWarpBaseline,
    "copy-source": CopySourceBaseline,
}
DEFAULT_BASELINES: tuple[str, ...] = ("static", "flow-warp")


def make_baseline(name: str) -> Method:
    """A baseline by name; unknown → UsageError, missing dependency → BaselineUnavailable."""
    factory = BASELINES.get(name)
    if factory is None:
        import difflib

        close = difflib.get_close_matches(name, list(BASELINES), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(BASELINES)}"
        raise UsageError(f"unknown baseline '{name}'", hint=hint)
    return factory()
