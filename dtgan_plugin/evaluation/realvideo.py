"""The real-video protocol: transfer on real footage, which has no ground truth.

A *pair* is a source video and a target photo (or ``self``: the source's own frame 0). Both are
cropped to their face: the source to one fixed square box that holds the face over the whole
clip (so head motion stays visible in the crop), the photo to its face box; crops are
``size`` px. Every method animates the target crop with the source crop, and is measured by:

* **motion fidelity** — the landmarker reads the output's 68 points; their signals (mouth
  opening and width, eye opening, brow raise, head shift and roll, each relative to frame 0;
  :mod:`.realvideo_metrics`) are compared with the source's: Pearson correlation and amplitude
  ratio per signal, averaged over the signals that move in the source;
* **identity retention** — the appearance margin (is the output's face crop closer to the target
  than to the source's frame?), the same once both faces are warped onto the target's
  landmarks (pose and expression factored out) and the face-shape margin (jaw and nose
  landmarks);
* **liveliness** — the output's frame-to-frame change over the source's;
* on self pairs, **L1, PSNR and SSIM** against the source's crops.

Per pair, the landmarker's **reading gain** on the target (:mod:`.realvideo_readability`) says
how faithfully it reads each signal there; information only, no score uses it.

Methods are checkpoints (run through :class:`~dtgan_plugin.api.Transferer`, the transfer API)
and the baselines ``static``, ``flow-warp``, ``flow-warp-aligned`` and ``landmark-warp``.
"""

from __future__ import annotations

import difflib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import MediaError, UsageError
from . import metrics as M
from . import realvideo_metrics as RM
from .baselines import BaselineUnavailable, Method, make_baseline
from .realvideo_warps import aligned_flow_warp, retarget_landmarks, thin_plate_warp

__all__ = ["RealPair", "PreparedPair", "RealMethod", "REAL_BASELINES", "parse_real_pair",
           "make_real_method", "prepare_pair", "score_output", "run_realvideo_evaluation"]

REAL_BASELINES: tuple[str, ...] = ("static", "flow-warp", "flow-warp-aligned", "landmark-warp")
SELF = "self"
DEFAULT_SIZE = 128
DEFAULT_FRAMES = 96


@dataclass
class RealPair:
    """A source video and a target photo; ``target=None`` means frame 0 of the source."""

    source: Path
    target: Path | None = None
    name: str = ""

    @property
    def is_self(self) -> bool:
        """The target is the source's frame 0."""
        return self.target is None


def parse_real_pair(text: str) -> RealPair:
    """``SRC:TGT``, ``SRC:self`` or ``SRC`` (self) → :class:`RealPair` (files checked)."""
    raw = text.strip()
    src, sep, tgt = raw.rpartition(":")
    if not sep or not src or (len(src) == 1 and src.isalpha()):  # "C:\..." has no target
        src, tgt = raw, SELF
    tgt = tgt.strip() or SELF
    source = Path(src.strip()).expanduser()
    if not source.is_file():
        raise UsageError(f"source video not found: {source}",
                         hint="write a pair as SOURCE_VIDEO:TARGET_IMAGE or SOURCE_VIDEO:self")
    target = None if tgt.lower() == SELF else Path(tgt).expanduser()
    if target is not None and not target.is_file():
        raise UsageError(f"target image not found: {target}",
                         hint="write a pair as SOURCE_VIDEO:TARGET_IMAGE or SOURCE_VIDEO:self")
    name = f"{source.stem}->{'self' if target is None else target.stem}"
    return RealPair(source, target, name)


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------

class RealMethod:
    """``method(source, target, source_pts, target_pts) -> output`` on one pair's crops.

    Shapes: source ``(T, 3, S, S)``, target ``(3, S, S)``, landmarks ``(T, 68, 2)`` and
    ``(68, 2)`` in crop pixels; output ``(T, 3, S, S)`` float in [0, 1].
    """

    name = ""
    kind = "baseline"

    def __call__(self, source: torch.Tensor, target: torch.Tensor, source_pts: np.ndarray,
                 target_pts: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for the report."""
        return {"name": self.name, "kind": self.kind}


class PlainMethod(RealMethod):
    """A landmark-blind :class:`~.baselines.Method` (``static``, ``flow-warp``)."""

    def __init__(self, method: Method) -> None:
        self.method = method
        self.name, self.kind = method.name, method.kind

    def __call__(self, source: torch.Tensor, target: torch.Tensor, source_pts: np.ndarray,
                 target_pts: np.ndarray) -> torch.Tensor:
        return self.method(source[None], target[None])[0]

    def describe(self) -> dict[str, Any]:
        """Facts for the report."""
        return self.method.describe()


class FlowWarpAligned(RealMethod):
    """The source's optical flow, carried onto the target's face by the faces' similarity."""

    name = "flow-warp-aligned"

    def __init__(self) -> None:
        make_baseline("flow-warp")  # needs OpenCV: BaselineUnavailable when missing

    def __call__(self, source: torch.Tensor, target: torch.Tensor, source_pts: np.ndarray,
                 target_pts: np.ndarray) -> torch.Tensor:
        return aligned_flow_warp(source, target, source_pts[0], target_pts)

    def describe(self) -> dict[str, Any]:
        """Facts for the report."""
        return {**super().describe(), "flow": "Farneback, frame t -> frame 0, luma",
                "alignment": "similarity between the faces' frame-0 68 landmarks"}


class LandmarkWarp(RealMethod):
    """The target warped (thin-plate spline) by the source's landmark displacements."""

    name = "landmark-warp"

    def __call__(self, source: torch.Tensor, target: torch.Tensor, source_pts: np.ndarray,
                 target_pts: np.ndarray) -> torch.Tensor:
        moved = retarget_landmarks(source_pts, target_pts)
        return thin_plate_warp(target, target_pts, moved)

    def describe(self) -> dict[str, Any]:
        """Facts for the report."""
        return {**super().describe(), "warp": "thin-plate spline, 68 points + 16 border anchors",
                "retarget": "displacements from frame 0 through the faces' similarity"}


class TransferMethod(RealMethod):
    """A checkpoint through the transfer API (:class:`~dtgan_plugin.api.Transferer`)."""

    kind = "model"

    def __init__(self, name: str, checkpoint: str, device: str = "auto",
                 head: float = 1.0) -> None:
        from ..models.checkpoint import read_checkpoint_metadata, resolve_checkpoint

        self.name = name
        self.path = resolve_checkpoint(checkpoint)
        self.meta = read_checkpoint_metadata(self.path)
        self.device = device
        self.head = head  # Transferer's: how much of the source's head motion to keep

    def __call__(self, source: torch.Tensor, target: torch.Tensor, source_pts: np.ndarray,
                 target_pts: np.ndarray) -> torch.Tensor:
        from ..api import Transferer

        size = int(source.shape[-1])
        landmark_model = bool(self.meta.get("config", {}).get("dynamics_input") == "landmarks"
                              or self.meta.get("config", {}).get("generator") == "geowarp")
        # a landmark model reads the very points every method gets (found on these crops)
        tr = Transferer(target, str(self.path), device=self.device, size=size,
                        target_landmarks=target_pts if landmark_model else None,
                        head=self.head)
        outs = [tr.push(source, source_pts if landmark_model else None), tr.flush()]
        return torch.cat([o for o in outs if o.shape[0]]).float().cpu().clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        """Facts for the report."""
        cfg = self.meta.get("config", {})
        return {**super().describe(), "path": str(self.path),
                "fingerprint": self.meta.get("fingerprint"),
                "resolution": cfg.get("resolution"), "generator": cfg.get("generator")}


def make_real_method(spec: str | RealMethod | Method, device: str = "auto",
                     taken: set[str] | None = None) -> RealMethod:
    """A baseline name, ``NAME=CHECKPOINT``, a checkpoint path or name, or a method object."""
    from .loading import _checkpoint_name

    if isinstance(spec, RealMethod):
        return spec
    if isinstance(spec, Method):
        return PlainMethod(spec)
    name = spec.strip()
    if name == "flow-warp-aligned":
        return FlowWarpAligned()
    if name == "landmark-warp":
        return LandmarkWarp()
    if name in ("static", "flow-warp", "copy-source"):
        return PlainMethod(make_baseline(name))
    if "=" not in name and not Path(name).expanduser().exists():
        close = difflib.get_close_matches(name, [*REAL_BASELINES, "copy-source"], n=1)
        if close:  # a typo of a baseline, not a checkpoint name
            raise UsageError(f"unknown baseline '{name}'", hint=f"did you mean '{close[0]}'?")
    label, path = _checkpoint_name(name, set(taken or ()))
    return TransferMethod(label, path, device)


# --------------------------------------------------------------------------------------------
# Pairs: read, find the faces, crop
# --------------------------------------------------------------------------------------------

@dataclass
class PreparedPair:
    """One pair's face crops and their landmarks (crop pixels)."""

    name: str
    source: torch.Tensor         # (T, 3, S, S)
    target: torch.Tensor         # (3, S, S)
    source_pts: np.ndarray       # (T, 68, 2)
    target_pts: np.ndarray       # (68, 2)
    is_self: bool
    info: dict[str, Any] = field(default_factory=dict)


def _to_u8(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float [0, 1] → ``(T, H, W, 3)`` uint8, what landmarkers take."""
    out = (frames.detach().float().clamp(0, 1) * 255).round_().to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy())


def track_landmarks(landmarker: Any, frames: torch.Tensor, face: int = 0,
                    what: str = "the video") -> tuple[np.ndarray, int]:
    """``(T, 68, 2)`` points of face ``face`` on every frame, and how many frames were filled
    from their neighbours (the face not found); MediaError when no frame has a face."""
    from ..faces.track import track_faces

    if hasattr(landmarker, "reset"):
        landmarker.reset()
    per_frame: list[list[Any]] = []
    for a in range(0, int(frames.shape[0]), 32):  # the landmarker sees small chunks
        per_frame += landmarker.detect(_to_u8(frames[a:a + 32]))
    pts, filled = track_faces(per_frame, face=face, what=what)
    return np.asarray(pts, np.float64), int(filled)


def _clip_box(pts: np.ndarray, height: int, width: int, scale: float) -> np.ndarray:
    """One square box ``(cx, cy, side)`` holding every frame's face box (head travel included)."""
    from ..faces.crop import clamp_box, face_box

    boxes = face_box(pts, scale)
    half = boxes[:, 2:3] / 2
    lo = (boxes[:, :2] - half).min(0)
    hi = (boxes[:, :2] + half).max(0)
    side = float((hi - lo).max())
    return clamp_box(np.array([*((lo + hi) / 2), side]), height, width)


def _crop(frames: torch.Tensor, box: np.ndarray, size: int) -> torch.Tensor:
    from ..faces.crop import crop_frames

    return crop_frames(frames, np.repeat(box[None], frames.shape[0], 0), size)


def _read_target(path: Path) -> torch.Tensor:
    from ..media.image import read_image

    return read_image(path, alpha="composite")


def prepare_pair(pair: RealPair, landmarker: Any, *, frames: int = DEFAULT_FRAMES,
                 size: int = DEFAULT_SIZE, face: int = 0, scale: float | None = None
                 ) -> PreparedPair:
    """Read the pair, find the faces, crop both to ``size`` px and landmark the crops."""
    from ..faces.crop import DEFAULT_SCALE, clamp_box, face_box
    from .data import first_frames

    scale = DEFAULT_SCALE if scale is None else float(scale)
    clip = first_frames(pair.source, frames)
    if clip.shape[0] < 2:
        raise MediaError(f"{pair.source} has fewer than 2 frames", hint="use a longer video")
    h, w = clip.shape[-2:]
    full, lost_full = track_landmarks(landmarker, clip, face, str(pair.source))
    box = _clip_box(full, h, w, scale)
    src = _crop(clip, box, size)
    del clip
    src_pts, lost_src = track_landmarks(landmarker, src, 0, f"the face crop of {pair.source}")
    info: dict[str, Any] = {"source": str(pair.source), "frames": int(src.shape[0]),
                            "source_size": [int(h), int(w)], "source_box": box.tolist(),
                            "source_lost_frames": lost_full, "source_crop_lost_frames": lost_src}
    if pair.is_self:
        tgt, tgt_pts = src[0].clone(), src_pts[0].copy()
        info["target"] = SELF
    else:
        photo = _read_target(pair.target)
        ph, pw = photo.shape[-2:]
        photo_pts, _ = track_landmarks(landmarker, photo[None], face, str(pair.target))
        tbox = clamp_box(face_box(photo_pts[0], scale), ph, pw)
        tgt = _crop(photo[None], tbox, size)[0]
        tgt_pts = track_landmarks(landmarker, tgt[None], 0,
                                  f"the face crop of {pair.target}")[0][0]
        info.update(target=str(pair.target), target_size=[int(ph), int(pw)],
                    target_box=tbox.tolist())
    return PreparedPair(pair.name, src, tgt, src_pts, tgt_pts, pair.is_self, info)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def score_output(prep: PreparedPair, output: torch.Tensor, landmarker: Any,
                 moves_std: float = RM.MOVES_STD) -> dict[str, Any]:
    """Every real-video metric of one method's output on one pair."""
    t = int(prep.source.shape[0])
    if tuple(output.shape) != tuple(prep.source.shape):
        raise MediaError(f"a method returned {tuple(output.shape)} for a source of "
                         f"{tuple(prep.source.shape)}")
    try:
        out_pts, lost = track_landmarks(landmarker, output, 0, "the output")
    except MediaError:
        out_pts, lost = np.full((t, 68, 2), np.nan), t
    src_sig = RM.landmark_signals(prep.source_pts)
    out_sig = RM.landmark_signals(out_pts) if lost < t else \
        {k: np.full(t, np.nan) for k in RM.SIGNALS}
    agree = RM.signal_agreement(src_sig, out_sig, moves_std)
    summary = RM.summarise_agreement(agree)
    scores: dict[str, Any] = {
        "motion_corr": summary["corr_mean"], "amplitude": summary["amplitude_mean"],
        "amplitude_log2_error": summary["amplitude_log2_error"],
        # on a self pair the target is the source's own frame: no identity to tell apart
        "identity_margin": math.nan if prep.is_self else
        RM.mean_finite(RM.identity_margin(output, prep.target, prep.source)),
        # the same with pose and expression factored out: both faces warped onto the target's
        "aligned_identity_margin": math.nan if prep.is_self or lost >= t else
        RM.mean_finite(RM.aligned_identity_margin(output, prep.target, prep.source, out_pts,
                                                  prep.target_pts, prep.source_pts)),
        "shape_margin": math.nan if prep.is_self or lost >= t else
        RM.mean_finite(RM.shape_margin(out_pts, prep.target_pts, prep.source_pts)),
        "liveliness": RM.liveliness(output, prep.source),
        "lost_frames": float(lost)}
    # NaN on cross pairs keeps every per-clip list in pair order
    scores.update(self_l1=math.nan, self_psnr=math.nan, self_ssim=math.nan)
    if prep.is_self:
        o, s = output[None], prep.source[None]
        scores.update(self_l1=float(M.l1(o, s)[0]), self_psnr=float(M.psnr(o, s)[0]),
                      self_ssim=float(M.ssim(o, s)[0]))
    return {"scores": scores, "signals": agree, "moving": summary["moving"]}


def _evaluate_pairs(pairs: Sequence[RealPair], methods: Sequence[RealMethod], landmarker: Any,
                    opts: dict[str, Any], say: Callable[[str], None]
                    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every method on every pair: per-method per-clip values, pair facts, examples."""
    from .realvideo_readability import reading_gain  # it imports this module

    per_method: dict[str, Any] = {m.name: {"per_clip": {}, "signals": [], "seconds": 0.0,
                                           "frames": 0} for m in methods}
    pair_facts: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for pair in pairs:
        prep = prepare_pair(pair, landmarker, frames=opts["frames"], size=opts["size"],
                            face=opts["face"])
        say(f"{prep.name}: {prep.source.shape[0]} frames at {opts['size']} px")
        # information only, no score uses it: which signals the landmarker can read here
        t0 = time.perf_counter()
        reading = reading_gain(prep.target, prep.target_pts, landmarker)
        reading_seconds = time.perf_counter() - t0
        outputs: dict[str, torch.Tensor] = {}
        moving: list[str] = []
        for m in methods:
            t0 = time.perf_counter()
            out = m(prep.source, prep.target, prep.source_pts, prep.target_pts)
            entry = per_method[m.name]
            entry["seconds"] += time.perf_counter() - t0
            entry["frames"] += int(out.shape[0])
            res = score_output(prep, out, landmarker, opts["moves_std"])
            moving = res["moving"]
            for key, value in res["scores"].items():
                entry["per_clip"].setdefault(key, []).append(value)
            entry["signals"].append(res["signals"])
            if len(examples) < opts["examples"]:
                outputs[m.name] = out
        pair_facts.append({"name": prep.name, "self": prep.is_self, "moving_signals": moving,
                           **prep.info, "reading_gain": reading,
                           "reading_gain_seconds": reading_seconds})
        if len(examples) < opts["examples"]:
            examples.append({"name": prep.name, "source": prep.source, "target": prep.target,
                             "outputs": outputs})
    return per_method, pair_facts, examples


# --------------------------------------------------------------------------------------------
# The whole protocol
# --------------------------------------------------------------------------------------------

def _resolve_landmarker(landmarker: Any) -> tuple[Any, str]:
    """A landmarker object, or one built from its registered name."""
    if isinstance(landmarker, str):
        from ..faces.registry import get_landmarker

        return get_landmarker(landmarker), landmarker
    if not callable(getattr(landmarker, "detect", None)):
        raise UsageError(f"landmarker must be a registered name or have detect(frames), got "
                         f"{type(landmarker).__name__}")
    return landmarker, str(getattr(landmarker, "name", type(landmarker).__name__))


def _build_methods(methods: Sequence[Any], device: str, notes: list[str],
                   say: Callable[[str], None]) -> list[RealMethod]:
    """Every method spec as a :class:`RealMethod`; unavailable baselines become notes."""
    built: list[RealMethod] = []
    taken: set[str] = set()
    for spec in methods:
        try:
            m = make_real_method(spec, device, taken)
        except BaselineUnavailable as err:
            notes.append(f"{spec}: {err}")
            say(str(err))
            continue
        if m.name in taken:
            raise UsageError(f"two methods are called '{m.name}'",
                             hint="name checkpoints with NAME=PATH so every row is distinct")
        taken.add(m.name)
        built.append(m)
    if not built:
        raise UsageError("nothing to evaluate", hint="pass a checkpoint or a baseline "
                         f"({', '.join(REAL_BASELINES)})")
    return built


def run_realvideo_evaluation(pairs: Sequence[str | RealPair], methods: Sequence[Any],
                             landmarker: Any, out_dir: str | os.PathLike[str], *,
                             size: int = DEFAULT_SIZE, frames: int = DEFAULT_FRAMES,
                             face: int = 0, moves_std: float = RM.MOVES_STD,
                             examples: int = 4, device: str = "auto", command: str = "",
                             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate methods on real pairs and write ``report.json``, ``report.md`` and pictures.

    ``pairs``: ``"SRC:TGT"`` / ``"SRC:self"`` strings or :class:`RealPair`. ``methods``: baseline
    names (:data:`REAL_BASELINES`), checkpoints (``NAME=PATH``, a path or ``default``) or
    method objects. ``landmarker``: a registered name (``"mediapipe"``) or an object with
    ``detect``. Crops are ``size`` px, sources cut to their first ``frames`` frames; a signal
    "moves" when its std in the source exceeds ``moves_std``. Returns the report dict.
    """
    from .protocols import report_header
    from .realvideo_report import summarise_methods, write_real_report

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    for pname, value, low in (("size", size, 16), ("frames", frames, 2), ("face", face, 0),
                              ("examples", examples, 0)):
        if value < low:
            raise UsageError(f"{pname} must be >= {low}, got {value}")
    if not moves_std > 0:
        raise UsageError(f"moves_std must be > 0, got {moves_std}")
    parsed = [p if isinstance(p, RealPair) else parse_real_pair(p) for p in pairs]
    if not parsed:
        raise UsageError("no pair to evaluate", hint="pass SOURCE_VIDEO:TARGET_IMAGE")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output folder {out} is a file", hint="pass a folder")
    lm, lm_name = _resolve_landmarker(landmarker)
    notes: list[str] = []
    built = _build_methods(methods, device, notes, say)
    opts = {"frames": frames, "size": size, "face": face, "moves_std": moves_std,
            "examples": examples}
    per_method, pair_facts, ex = _evaluate_pairs(parsed, built, lm, opts, say)
    for m in built:
        per_method[m.name]["describe"] = m.describe()
    config = {"pairs": [f"{p.source}:{p.target or SELF}" for p in parsed],
              "methods": [m.name for m in built], "landmarker": lm_name, "size": size,
              "frames": frames, "face": face, "moves_std": moves_std, "examples": examples,
              "device": device}
    report = {**report_header(command, config), "protocol": "real-video", "pairs": pair_facts,
              "methods": summarise_methods(per_method), "notes": notes}
    report["format"] = "dtgan-eval-real-report"
    report["timing"] = {"total_seconds": time.perf_counter() - t0}
    write_real_report(out, report, ex)
    return report
