"""Streaming inference: the model-side halves of the dynamics and transfer stages.

Everything here works on tensors: :class:`DynamicsExtractor` turns source frame chunks into
dynamics vectors (the LSTM state carried across chunks), :class:`Renderer` turns dynamics
vectors into frames of the target. The graph stages, the Python API and the streaming
:class:`~dtgan_plugin.api.Transferer` are thin wrappers around these two.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import OptionError, UsageError
from .stream import DEFAULT_CHUNK

FIT_POLICIES = ("crop", "pad", "stretch")

_cache_lock = threading.Lock()
_model_cache: dict[tuple[str, str], Any] = {}


def load_model(checkpoint: str | Path = "default", device: str | torch.device = "cpu") -> Any:
    """Load (once per process) the checkpoint named or at ``checkpoint`` onto ``device``."""
    from .models.checkpoint import load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(str(checkpoint))
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    key = (str(Path(path).resolve()), str(dev))
    with _cache_lock:
        model = _model_cache.get(key)
        if model is None:
            model = load_checkpoint(path, map_location="cpu").to(dev).eval()
            if dev.type == "cpu":
                # channels_last is measurably faster for these convs on CPU
                model = model.to(memory_format=torch.channels_last)
            for p in model.parameters():
                p.requires_grad_(False)
            _model_cache[key] = model
        return model


def fit_image(image: torch.Tensor, size: int, policy: str = "crop") -> torch.Tensor:
    """Fit ``(C,H,W)`` or ``(T,C,H,W)`` frames to ``size``×``size``.

    ``crop`` (default): scale so the short side is ``size``, then centre-crop — faces stay
    undistorted and fill the frame. ``pad``: scale so the long side is ``size`` and pad with the
    edge colour. ``stretch``: resize both sides, distorting the aspect ratio.
    """
    if policy not in FIT_POLICIES:
        raise UsageError(f"unknown fit policy '{policy}'", hint=f"use one of {', '.join(FIT_POLICIES)}")
    single = image.ndim == 3
    x = image.unsqueeze(0) if single else image
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (h, w) != (size, size):
        if policy == "stretch":
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        elif policy == "crop":
            scale = size / min(h, w)
            nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True,
                              align_corners=False)
            top, left = (nh - size) // 2, (nw - size) // 2
            x = x[..., top:top + size, left:left + size]
        else:
            scale = size / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True,
                              align_corners=False)
            top, left = (size - nh) // 2, (size - nw) // 2
            x = F.pad(x, (left, size - nw - left, top, size - nh - top), mode="replicate")
    x = x.clamp(0, 1).contiguous()
    return x[0] if single else x


def fit_points(points: Any, height: int, width: int, size: int,
               policy: str = "crop") -> torch.Tensor:
    """Landmarks ``(..., 2)`` in pixels of an ``height``×``width`` frame → pixels of the
    ``size``×``size`` frame :func:`fit_image` makes of it (same policy)."""
    p = torch.as_tensor(points, dtype=torch.float32).clone()
    if policy == "stretch":
        return p * torch.tensor([size / width, size / height])
    scale = size / (min(height, width) if policy == "crop" else max(height, width))
    if policy == "crop":
        nh, nw = max(size, round(height * scale)), max(size, round(width * scale))
        shift = torch.tensor([-float((nw - size) // 2), -float((nh - size) // 2)])
    else:
        nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
        shift = torch.tensor([float((size - nw) // 2), float((size - nh) // 2)])
    return p * torch.tensor([nw / width, nh / height]) + shift


class DynamicsExtractor:
    """Source frames in, appearance-suppressed dynamics out; state carried across chunks.

    The reference frame (default 0) forms the static sequence. A later reference frame means
    frames before it are held until it arrives (memory grows only up to that index).

    A landmark model (``model.config.dynamics_input == "landmarks"``) reads each frame's 68
    points: given with the frames (``push(frames, landmarks=...)``, pixels of those frames),
    or found by the ``landmarker`` (face ``face``). Frames where the face is lost are
    interpolated once it is found again, so their dynamics come a little later (``flush``
    returns the last ones).
    """

    def __init__(self, model: Any, *, reference_frame: int = 0, fit: str = "crop",
                 landmarker: Any = "mediapipe", face: int = 0) -> None:
        if reference_frame < 0:
            raise UsageError(f"reference frame must be >= 0, got {reference_frame}")
        self.model = model
        self.reference_frame = reference_frame
        self.fit = fit
        self.size = int(model.config.resolution)
        self.device = next(model.parameters()).device
        self.landmarks = bool(getattr(model.config, "uses_landmarks", False))
        self._landmarker, self._face = landmarker, face
        self._tracker: Any = None
        self._frame_hw: tuple[int, int] | None = None
        self._state: Any = None
        self._pending: list[torch.Tensor] = []
        self._seen = 0
        self.frames_out = 0

    def _prep(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.to(self.device, torch.float32, non_blocking=True)
        frames = fit_image(frames, self.size, self.fit)
        return (frames * 2 - 1).contiguous(memory_format=torch.channels_last)

    def _points(self, frames: torch.Tensor, landmarks: Any) -> torch.Tensor:
        """The model-size landmarks ``(k, 68, 2)`` of the frames settled so far."""
        h, w = int(frames.shape[-2]), int(frames.shape[-1])
        if self._frame_hw is not None and self._frame_hw != (h, w):
            raise UsageError(f"frames changed size from {self._frame_hw[1]}x{self._frame_hw[0]} "
                             f"to {w}x{h} within one stream")
        self._frame_hw = (h, w)
        if landmarks is None:
            if self._tracker is None:
                from .faces.frame_landmarks import FrameLandmarks

                self._tracker = FrameLandmarks(self._landmarker, face=self._face)
            # the tracker may hold frames back while a lost face's gap is open
            return self._fit_points(self._tracker.push(frames))
        pts = torch.as_tensor(landmarks, dtype=torch.float32)
        if pts.ndim != 3 or tuple(pts.shape[1:]) != (68, 2) or len(pts) != len(frames):
            raise UsageError(f"landmarks must be ({len(frames)}, 68, 2) for {len(frames)} "
                             f"frames, got {tuple(pts.shape)}")
        return self._fit_points(pts)

    def _fit_points(self, pts: Any) -> torch.Tensor:
        assert self._frame_hw is not None
        out = fit_points(pts, *self._frame_hw, self.size, self.fit).to(self.device)
        if not bool(torch.isfinite(out).all()):
            raise UsageError("landmarks hold NaN or infinite values")
        return out

    @torch.inference_mode()
    def push(self, frames: torch.Tensor, landmarks: Any = None) -> torch.Tensor:
        """Add ``(T,3,H,W)`` frames in [0,1] (and, for a landmark model, optionally their
        ``(T,68,2)`` landmarks); return the dynamics ``(T',D)`` ready so far."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise UsageError(f"expected frames shaped (T, 3, H, W), got {tuple(frames.shape)}")
        if self.landmarks:
            x = self._points(frames, landmarks)
            if x.shape[0] == 0:
                return torch.empty(0, self.dim, device=self.device)
        else:
            x = self._prep(frames)
        return self._encode(x)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dynamics of the next items (frames or landmarks), held until the reference came."""
        self._seen += int(x.shape[0])
        if self._state is None:
            self._pending.append(x)
            if self._seen <= self.reference_frame:
                return torch.empty(0, self.dim, device=self.device)
            held = torch.cat(self._pending)
            self._pending.clear()
            # held starts at frame 0, so the reference frame's index into it is its own
            self._state = self.model.encoder.init_state(held[self.reference_frame].unsqueeze(0))
            x = held
        d, self._state = self.model.encoder.step(x.unsqueeze(0), self._state)
        self.frames_out += int(d.shape[1])
        return d[0]

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """Finish: the dynamics still held (frames after a lost face); a reference frame past
        the end of the source is an error."""
        out = torch.empty(0, self.dim, device=self.device)
        if self._tracker is not None:
            rest = self._tracker.finish()
            self._tracker.close()
            self._tracker = None
            if len(rest):
                out = self._encode(self._fit_points(rest))
        if self._state is None and self._seen > 0:
            raise UsageError(f"reference frame {self.reference_frame} is past the end of the "
                             f"source ({self._seen} frames)", hint="choose a smaller --reference-frame")
        return out

    @property
    def dim(self) -> int:
        """Width of the dynamics vectors."""
        return int(self.model.config.dyn_dim)


def check_head(model: Any, head: Any) -> None:
    """OptionError unless ``head`` is a number in [0, MAX_HEAD] that ``model`` can apply."""
    from .models.head_pose import MAX_HEAD

    ok = isinstance(head, (int, float)) and not isinstance(head, bool) \
        and math.isfinite(head) and 0.0 <= head <= MAX_HEAD
    if not ok:
        raise OptionError(f"head must be a number from 0 to {MAX_HEAD:g}, got {head!r}",
                          hint="1 keeps the source's head motion, 0 keeps the head still")
    if head != 1.0 and not getattr(getattr(model, "generator", None), "scales_head", False):
        raise OptionError(f"head={head:g} needs a model that moves faces by their landmarks "
                          "(the real-face default, with the torch backend); this model moves "
                          "whole images", hint="leave head at 1, or use --checkpoint default")


class Renderer:
    """Target image + dynamics vectors in, frames of the target moving out.

    A generator conditioned on geometry (``geowarp``) also takes the target's 68 landmarks:
    ``target_landmarks`` (pixels of ``target``), or found by the ``landmarker``.

    With ``out_size`` above the model's resolution, a generator that can (``geowarp``) warps
    the target itself at ``out_size`` by its upsampled flow, so the frames keep the target's
    detail; other generators' frames are upscaled (bicubic).

    ``head`` scales the source's head motion and keeps its expression (1 as the source, 0 the
    head stays put); only a generator that can tell them apart (``geowarp``) takes it.
    """

    def __init__(self, model: Any, target: torch.Tensor, *, fit: str = "crop",
                 out_size: int | None = None, max_batch: int = DEFAULT_CHUNK,
                 landmarker: str = "mediapipe", target_landmarks: Any = None,
                 face: int = 0, head: float = 1.0, target_matte: Any = None) -> None:
        if target.ndim != 3 or target.shape[0] != 3:
            raise UsageError(f"target image must be (3, H, W), got {tuple(target.shape)}")
        check_head(model, head)
        self.head = float(head)
        self.model = model
        self.size = int(model.config.resolution)
        self.out_size = out_size
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        full = target.to(self.device, torch.float32)
        t = fit_image(full, self.size, fit)
        self.target = t
        self._detail: torch.Tensor | None = None
        if out_size and out_size > self.size and getattr(model.generator, "renders_detail",
                                                          False):
            detail = fit_image(full, int(out_size), fit) * 2 - 1
            self._detail = detail.unsqueeze(0).contiguous()
        matte = self._matte(model, target, target_matte)
        self._detail_layers: tuple[torch.Tensor, torch.Tensor] | None = None
        if matte is not None and self._detail is not None:
            big = fit_image(matte, int(out_size), fit).unsqueeze(0)
            self._detail_layers = model.generator.layers(self._detail, big)
        small = None if matte is None else fit_image(matte, self.size, fit).unsqueeze(0)
        del full
        with torch.inference_mode():
            x = (t * 2 - 1).unsqueeze(0).contiguous(memory_format=torch.channels_last)
            if getattr(model.generator, "needs_landmarks", False):
                if target_landmarks is None:
                    from .faces.autocrop import photo_landmarks

                    target_landmarks = photo_landmarks(target, landmarker, face,
                                                       what="the target image")
                pts = fit_points(target_landmarks, int(target.shape[-2]), int(target.shape[-1]),
                                 self.size, fit).to(self.device).unsqueeze(0)
                kw = {} if small is None else {"matte": small}
                self._feats = model.generator.encode_target(x, pts, **kw)
            else:
                self._feats = model.generator.encode_target(x)

    def _matte(self, model: Any, target: torch.Tensor, given: Any) -> torch.Tensor | None:
        """The target's person matte ``(1, H, W)`` for a generator that moves the hair with the
        head as a layer (``generator_cfg.head_outline``): ``given``, else MediaPipe's selfie
        segmenter; None for other generators, or without MediaPipe (the spline then moves the
        hair and bends the background around it)."""
        if not getattr(model.generator, "head_outline", False):
            return None
        if given is not None:
            matte = torch.as_tensor(given, dtype=torch.float32)
            if matte.dim() == 3 and matte.shape[0] == 1:
                matte = matte[0]
            if tuple(matte.shape) != tuple(target.shape[-2:]):
                raise UsageError(f"target_matte must be (H, W) = {tuple(target.shape[-2:])} "
                                 f"like the target, got {tuple(matte.shape)}")
            # a NaN would spread through the composite: read it as background
            return matte.nan_to_num(0.0, 0.0, 0.0).clamp(0, 1)[None].to(self.device)
        from .errors import MissingExtraError
        from .faces.segment import person_matte

        try:
            return person_matte(target)[None].to(self.device)
        except MissingExtraError:
            return None

    @torch.inference_mode()
    def render(self, d: torch.Tensor) -> torch.Tensor:
        """Dynamics ``(T,D)`` → frames ``(T,3,S,S)`` in [0,1] (S = out_size or the model's)."""
        return self.render_with_points(d)[0]

    @torch.inference_mode()
    def render_with_points(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`render`, and where the face's 68 landmarks are in each frame ``(T, 68, 2)``
        (pixels of the frames) for a generator that moves them (``geowarp``), else None."""
        frames, points, _ = self.render_with_geometry(d)
        return frames, points

    @torch.inference_mode()
    def render_with_geometry(self, d: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`render_with_points`, and the moved head outline ``(T, K, 2)`` (pixels of the
        frames) for a generator that moves the hair with the head
        (``generator_cfg.head_outline``), else None."""
        s = self.out_size or self.size
        moves_points = bool(getattr(self.model.generator, "needs_landmarks", False))
        if d.numel() == 0:
            from .models.head_outline import OUTLINE_POINTS

            empty = torch.empty(0, 68, 2, device=self.device) if moves_points else None
            hair = torch.empty(0, OUTLINE_POINTS, 2, device=self.device) \
                if getattr(self.model.generator, "head_outline", False) else None
            return torch.empty(0, 3, s, s, device=self.device), empty, hair
        outs, points, outlines = [], [], []
        for a in range(0, int(d.shape[0]), self.max_batch):
            part = d[a:a + self.max_batch].to(self.device, torch.float32).unsqueeze(0)
            # only what differs from the defaults is passed: pixel generators take neither
            kw: dict[str, Any] = {} if self.head == 1.0 else {"head": self.head}
            if self._detail is not None:
                kw["detail"] = self._detail
                if self._detail_layers is not None:
                    kw["detail_layers"] = self._detail_layers
            if moves_points:
                y, aux = self.model.generator.render(self._feats, part, return_aux=True,
                                                     geometry_only=True, **kw)
                points.append(aux["points"][0])
                if "outline" in aux:
                    outlines.append(aux["outline"][0])
                y = y[0]
            else:
                y = self.model.generator.render(self._feats, part, **kw)[0]
            outs.append(y.add_(1.0).mul_(0.5).clamp_(0, 1))  # in place: y is fresh
        frames = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.out_size and self.out_size != frames.shape[-1]:
            frames = F.interpolate(frames, size=(self.out_size, self.out_size), mode="bicubic",
                                   align_corners=False).clamp_(0, 1)
        # working-size pixels → the frames' (continuous coordinates scale with the side)
        pts = torch.cat(points).float() * (s / self.size) if points else None
        hair = torch.cat(outlines).float() * (s / self.size) if outlines else None
        return frames.contiguous(), pts, hair
