"""Evaluation data, the five protocols, and :func:`run_evaluation` behind ``dtgan eval``.

Data (always held-out identities and held-out dynamics):

* :class:`SynthEvalData` — procedural faces rendered on the fly. Identities are the **test
  split** (index ``i % 10 == 0``) of the synthfaces world ``seed``; training draws only from the
  train split, so these faces are never seen. Dynamics are clip ``j`` of identity ``i`` in the
  counter-based world ``seed + 1000`` (:func:`~dtgan_plugin.training.synthfaces.clip_dynamics`);
  training draws its motions from torch generators seeded otherwise, so these motions are new
  too. Item ``k`` is clip ``k // n`` of test identity ``k % n`` (so a ``--clips`` limit still
  spreads over all identities); its cross-identity target is the neutral face of another test
  identity picked by a generator seeded with ``seed + 2000``.
* :class:`SynthFolderData` — the test split of a folder written by ``dtgan data synth``: the
  clips are decoded from their video files, targets and ground truth re-rendered from the
  identity parameters and per-frame parameters in each clip's JSON.
* :class:`VideoFolderData` — a folder of the user's own videos: no ground truth for other
  identities and no parameters, so only P1 and P5 (on P1's outputs) apply.

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
"""

from __future__ import annotations

import difflib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import MediaError, UsageError
from . import metrics as M
from .baselines import BaselineUnavailable, Method, ModelMethod, make_baseline

__all__ = ["PROTOCOLS", "PROTOCOL_TITLES", "SynthSpec", "parse_synth_spec", "parse_protocols",
           "EvalBatch", "EvalData", "SynthEvalData", "SynthFolderData", "VideoFolderData",
           "open_eval_folder", "evaluate", "run_evaluation", "DYNAMICS_SEED_OFFSET",
           "PAIR_SEED_OFFSET"]

PROTOCOLS: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5")
PROTOCOL_TITLES = {
    "P1": "self-reconstruction", "P2": "cross-identity transfer", "P3": "motion fidelity",
    "P4": "appearance leakage", "P5": "temporal consistency",
}
#: held-out dynamics come from world ``seed + DYNAMICS_SEED_OFFSET`` (never used in training)
DYNAMICS_SEED_OFFSET = 1000
PAIR_SEED_OFFSET = 2000
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".y4m",
                    ".gif", ".nut", ".flv", ".wmv", ".3gp", ".ts")
# frames x pixels of one evaluation batch (a 16 x 16-frame batch at 64 px is 2^20 x 16)
_BATCH_PIXELS = 1 << 24


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

@dataclass
class SynthSpec:
    """``--synth identities=200:clips=8:frames=16:size=64``; ``size=None`` = the model's.

    ``speed`` and ``concat`` are the probabilities of the "arbitrary dynamics" variants of
    :func:`~dtgan_plugin.training.synthfaces.clip_dynamics` (played 0.5-2x faster or slower;
    two expressions one after the other). Reversed clips are not offered: they start at the
    apex, so a neutral target has no defined truth relative to the source's first frame.
    ``split`` picks the identities: ``test`` (reported results) or ``val`` (for choosing
    between checkpoints without looking at the test identities). ``part`` keeps only the
    ``expression`` or only the head-``motion`` parameters of every clip (the others held at
    neutral), to see which kind of motion a method transfers and where its error is.
    """

    identities: int = 200
    clips: int = 8
    frames: int = 16
    size: int | None = None
    speed: float = 0.0
    concat: float = 0.0
    split: str = "test"
    part: str = "all"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {"identities": self.identities, "clips": self.clips, "frames": self.frames,
                "size": self.size, "speed": self.speed, "concat": self.concat,
                "split": self.split, "part": self.part}


_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "split": (("test", "val"), "test for results, val for choosing between checkpoints"),
    "part": (("all", "expression", "motion"),
             "all parameters, or only the expression or head-motion ones"),
}
_SYNTH_LIMITS: dict[str, tuple[Any, Any]] = {
    "identities": (11, 10_000_000), "clips": (1, 100_000), "frames": (2, 4096),
    "size": (16, 1024), "speed": (0.0, 1.0), "concat": (0.0, 1.0)}


def parse_synth_spec(text: str | None) -> SynthSpec:
    """Parse ``key=value:key=value`` (identities, clips, frames, size, speed, concat, split,
    part)."""
    spec = SynthSpec()
    if not text or not text.strip():
        return spec
    usage = "use e.g. --synth identities=200:clips=8:frames=16:size=64"
    for part in text.split(":"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UsageError(f"--synth option '{part}' is not key=value", hint=usage)
        key, value = (s.strip() for s in part.split("=", 1))
        if key in _CHOICES:
            choices, hint = _CHOICES[key]
            if value not in choices:
                raise UsageError(f"--synth {key} must be one of {', '.join(choices)}, "
                                 f"got '{value}'", hint=hint)
            setattr(spec, key, value)
            continue
        if key not in _SYNTH_LIMITS:
            close = difflib.get_close_matches(key, list(_SYNTH_LIMITS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                f"known keys: {', '.join([*_SYNTH_LIMITS, *_CHOICES])}"
            raise UsageError(f"unknown --synth key '{key}'", hint=hint)
        kind = float if isinstance(_SYNTH_LIMITS[key][0], float) else int
        try:
            number = kind(value)
        except ValueError:
            what = "a probability" if kind is float else "an integer"
            raise UsageError(f"--synth {key} must be {what}, got '{value}'",
                             hint=usage) from None
        lo, hi = _SYNTH_LIMITS[key]
        if not lo <= number <= hi:
            why = " (each held-out split is every 10th identity and P2 needs two of them)" \
                if key == "identities" else ""
            raise UsageError(f"--synth {key} must be between {lo} and {hi}, got {number}{why}")
        setattr(spec, key, number)
    return spec


def parse_protocols(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"P1,P3"`` (case-insensitive, or a list) → ordered, de-duplicated protocol names."""
    if text is None:
        return PROTOCOLS
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = set()
    for raw in items:
        name = raw.strip().upper()
        if not name:
            continue
        if name == "ALL":
            chosen.update(PROTOCOLS)
            continue
        if name not in PROTOCOLS:
            raise UsageError(f"unknown protocol '{raw.strip()}'",
                             hint=f"use a comma-separated subset of {','.join(PROTOCOLS)}")
        chosen.add(name)
    if not chosen:
        raise UsageError("no protocol selected", hint=f"pass e.g. --protocols {','.join(PROTOCOLS)}")
    return tuple(p for p in PROTOCOLS if p in chosen)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass
class EvalBatch:
    """Clips of one batch; cross-identity fields are None when the data has no ground truth."""

    source: torch.Tensor                       # (B, T, 3, H, W)
    names: list[str]
    cross_target: torch.Tensor | None = None   # (B, 3, H, W): neutral face of identity B
    cross_truth: torch.Tensor | None = None    # (B, T, 3, H, W): B moving like the source
    params: torch.Tensor | None = None         # (B, T, P): the source's per-frame parameters

    @property
    def self_target(self) -> torch.Tensor:
        """P1's target: frame 0 of each clip."""
        return self.source[:, 0]


class EvalData:
    """A source of evaluation clips, produced batch by batch (never all at once)."""

    kind = "?"
    has_truth = False
    size = 0

    def __len__(self) -> int:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[EvalBatch]:
        """Batches of at most ``batch_size`` clips."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the report."""
        return {"kind": self.kind, "clips": len(self), "size": self.size,
                "has_truth": self.has_truth}

    notes: list[str] = []


def _pair_offsets(seed: int, total: int, n_ids: int) -> np.ndarray:
    rng = np.random.default_rng(seed + PAIR_SEED_OFFSET)
    return 1 + rng.integers(0, max(n_ids - 1, 1), size=total)


class SynthEvalData(EvalData):
    """Held-out procedural clips rendered on the fly (see the module docstring)."""

    kind = "synth"
    has_truth = True

    def __init__(self, spec: SynthSpec, *, size: int, seed: int = 0,
                 limit: int | None = None) -> None:
        from ..training.synthfaces import identities_for, split_identities

        self.spec = spec
        self.size = int(spec.size or size)
        self.frames = spec.frames
        self.seed = int(seed)
        self.dyn_seed = self.seed + DYNAMICS_SEED_OFFSET
        self.ids = split_identities(spec.identities, spec.split)
        if len(self.ids) < 2:
            raise UsageError(f"--synth identities={spec.identities} leaves {len(self.ids)} "
                             f"{spec.split} identity; cross-identity pairs need at least 2",
                             hint="use identities >= 11")
        self.total = len(self.ids) * spec.clips
        if limit is not None and limit < 1:
            raise UsageError(f"--clips must be >= 1, got {limit}")
        self.n = min(self.total, limit) if limit else self.total
        self.notes = []
        if limit and limit > self.total:
            self.notes.append(f"--clips {limit} asked for more clips than the synth set has "
                              f"({len(self.ids)} test identities x {spec.clips} clips); "
                              f"evaluated all {self.total}")
        self._idn = identities_for(self.seed, self.ids)
        self._offsets = _pair_offsets(self.seed, self.total, len(self.ids))

    def __len__(self) -> int:
        return self.n

    def items(self, index: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source position, clip index, target position) of items ``index``."""
        k = np.asarray(index, dtype=np.int64)
        n_ids = len(self.ids)
        pos = k % n_ids
        clip = k // n_ids
        tpos = (pos + self._offsets[k]) % n_ids
        return pos, clip, tpos

    def batches(self, batch_size: int) -> Iterator[EvalBatch]:
        """Render and yield batches."""
        from ..training.synthfaces import clip_dynamics, render, render_neutral

        ids = np.asarray(self.ids, dtype=np.int64)
        for a in range(0, self.n, batch_size):
            pos, clip, tpos = self.items(range(a, min(a + batch_size, self.n)))
            params, _ = clip_dynamics(self.dyn_seed, ids[pos], clip, self.frames,
                                      speed_change=self.spec.speed, concat=self.spec.concat)
            params = _keep_part(params, self.spec.part)
            src_idn = self._idn[torch.from_numpy(pos)]
            tgt_idn = self._idn[torch.from_numpy(tpos)]
            source = render(src_idn, params, self.size)
            truth = render(tgt_idn, params, self.size)
            target = render_neutral(tgt_idn, self.size)
            names = [f"id{ids[p]}/clip{c}->id{ids[q]}" for p, c, q in zip(pos, clip, tpos)]
            yield EvalBatch(source, names, target, truth, params)

    def describe(self) -> dict[str, Any]:
        """Spec, seeds and identity counts."""
        return {**super().describe(), "spec": self.spec.to_dict(), "frames": self.frames,
                "world_seed": self.seed, "dynamics_seed": self.dyn_seed,
                "pair_seed": self.seed + PAIR_SEED_OFFSET, "split": self.spec.split,
                f"{self.spec.split}_identities": len(self.ids), "available_clips": self.total}


def _keep_part(params: torch.Tensor, part: str) -> torch.Tensor:
    """Per-frame parameters with all but ``part`` held at neutral (0)."""
    from ..training.synthfaces import EXPRESSION_PARAMS

    if part == "all":
        return params
    n = len(EXPRESSION_PARAMS)
    out = params.clone()
    if part == "expression":
        out[..., n:] = 0
    else:
        out[..., :n] = 0
    return out


def _first_frames(path: Path, frames: int) -> torch.Tensor:
    """Up to ``frames`` frames from the start of a video, reading chunk by chunk."""
    from ..media.video import open_video

    got: list[torch.Tensor] = []
    n = 0
    reader = open_video(str(path))
    try:
        for chunk in reader.chunks(min(frames, 64)):
            got.append(chunk.frames[:frames - n].float().cpu())
            n += int(got[-1].shape[0])
            if n >= frames:
                break
    finally:
        reader.close()
    if not got:
        raise MediaError(f"{path} has no frames", hint="check the file")
    return torch.cat(got)


def _find_video(record_path: Path, record: Mapping[str, Any]) -> Path | None:
    for key in ("video", "file", "path", "clip_file", "filename"):
        value = record.get(key)
        if isinstance(value, str):
            for base in (record_path.parent, record_path.parent.parent, record_path.parents[2]
                         if len(record_path.parents) > 2 else record_path.parent):
                cand = base / value
                if cand.is_file():
                    return cand
    for ext in VIDEO_EXTENSIONS:
        cand = record_path.with_suffix(ext)
        if cand.is_file():
            return cand
    return None


def _record_params(record: Mapping[str, Any]) -> torch.Tensor | None:
    from ..training.synthfaces import PARAM_NAMES

    for key in ("params", "per_frame_params", "dynamics", "frame_params"):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            if "values" in value:
                value = value["values"]
            elif all(n in value for n in PARAM_NAMES):
                return torch.tensor([value[n] for n in PARAM_NAMES], dtype=torch.float32).T
        t = torch.as_tensor(value, dtype=torch.float32)
        if t.ndim == 2 and t.shape[1] == len(PARAM_NAMES):
            return t
    return None


def _record_identity(record: Mapping[str, Any]) -> Any:
    from ..training.synthfaces import Identity

    for key in ("identity_params", "identity"):
        value = record.get(key)
        if isinstance(value, Mapping):
            return Identity.from_dict(dict(value))
    return None


def _record_identity_index(record: Mapping[str, Any]) -> Any:
    for key in ("identity_index", "identity_id", "source_id", "id"):
        value = record.get(key)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return value
    ident = record.get("identity")
    if isinstance(ident, (int, str)) and not isinstance(ident, bool):
        return ident
    return None


class SynthFolderData(EvalData):
    """The test split of a ``dtgan data synth`` folder: decoded clips + JSON ground truth."""

    kind = "synth-folder"
    has_truth = True

    def __init__(self, root: Path, records: list[tuple[Path, Path, dict[str, Any]]], *,
                 seed: int = 0, limit: int | None = None) -> None:
        self.root = root
        self.records = records[:limit] if limit else records
        self.seed = seed
        self.notes = []
        self._idn = [_record_identity(r) for _, _, r in self.records]
        self._params = [_record_params(r) for _, _, r in self.records]
        keys = [_record_identity_index(r) for _, _, r in self.records]
        # identities keyed by their index when the JSON has one, else by their parameters
        self._key = [k if k is not None else json.dumps(self._idn[i].to_dict(0), sort_keys=True)
                     for i, k in enumerate(keys)]
        distinct = sorted(set(map(str, self._key)))
        if len(distinct) < 2:
            raise UsageError(f"{root}/test has clips of only one identity; cross-identity "
                             "pairs need at least two", hint="write it with more identities")
        first = records[0]
        self.size = int(_first_frames(first[1], 1).shape[-1])
        self.frames = int(self._params[0].shape[0])
        self._targets = self._pick_targets()
        if limit and limit > len(records):
            self.notes.append(f"--clips {limit} asked for more clips than {root}/test has "
                              f"({len(records)}); evaluated all of them")

    def _pick_targets(self) -> list[int]:
        """For each clip, the index of a clip of another identity (whose identity is target B)."""
        rng = np.random.default_rng(self.seed + PAIR_SEED_OFFSET)
        keys = [str(k) for k in self._key]
        out = []
        for i, k in enumerate(keys):
            others = [j for j, kk in enumerate(keys) if kk != k]
            out.append(others[int(rng.integers(len(others)))])
        return out

    def __len__(self) -> int:
        return len(self.records)

    def batches(self, batch_size: int) -> Iterator[EvalBatch]:
        """Decode, render targets and truth, and yield batches of equal-length clips."""
        from ..training.synthfaces import render, render_neutral

        pending: list[int] = []

        def flush() -> EvalBatch:
            src, tgt, tru, par, names = [], [], [], [], []
            for i in pending:
                p = self._params[i]
                clip = _first_frames(self.records[i][1], int(p.shape[0]))
                if clip.shape[0] != p.shape[0]:
                    raise MediaError(f"{self.records[i][1]} has {clip.shape[0]} frames but its "
                                     f"JSON lists {p.shape[0]}", hint="re-write the data set")
                j = self._targets[i]
                idn_b = self._idn[j]
                src.append(clip)
                tru.append(render(idn_b, p.unsqueeze(0), self.size)[0])
                tgt.append(render_neutral(idn_b, self.size)[0])
                par.append(p)
                names.append(f"{self.records[i][1].stem}->{self._key[j]}")
            pending.clear()
            return EvalBatch(torch.stack(src), names, torch.stack(tgt), torch.stack(tru),
                             torch.stack(par))

        for i in range(len(self.records)):
            if pending and (len(pending) >= batch_size or
                            self._params[pending[0]].shape[0] != self._params[i].shape[0]):
                yield flush()
            pending.append(i)
        if pending:
            yield flush()

    def describe(self) -> dict[str, Any]:
        """Folder, clip count, pairing seed."""
        return {**super().describe(), "folder": str(self.root), "split": "test",
                "frames": self.frames, "pair_seed": self.seed + PAIR_SEED_OFFSET,
                "test_identities": len(set(map(str, self._key)))}


class VideoFolderData(EvalData):
    """A folder of the user's own videos: the first ``frames`` frames of each, for P1 and P5."""

    kind = "videos"
    has_truth = False

    def __init__(self, root: Path, files: list[Path], *, frames: int, size: int,
                 limit: int | None = None, fit: str = "crop") -> None:
        self.root = root
        self.files = files[:limit] if limit else files
        self.frames = frames
        self.size = size
        self.fit = fit
        self.notes = ["P2, P3 and P4 need ground truth for another identity and per-frame "
                      "parameters, which only the synthetic data has: a folder of your own "
                      "videos supports P1 and P5 (on P1's outputs) only"]
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[EvalBatch]:
        """Read the start of each video, fit it to ``size``, batch clips of equal length."""
        from ..errors import DtganError
        from ..inference import fit_image

        pending: list[tuple[str, torch.Tensor]] = []
        for path in self.files:
            try:
                clip = _first_frames(path, self.frames)
            except DtganError as err:
                self.skipped.append(f"{path.name}: {err}")
                continue
            if clip.shape[0] < 2:
                self.skipped.append(f"{path.name}: fewer than 2 frames")
                continue
            clip = fit_image(clip, self.size, self.fit)
            if pending and (len(pending) >= batch_size or pending[0][1].shape[0] != clip.shape[0]):
                yield EvalBatch(torch.stack([c for _, c in pending]), [n for n, _ in pending])
                pending = []
            pending.append((str(path.relative_to(self.root)), clip))
        if pending:
            yield EvalBatch(torch.stack([c for _, c in pending]), [n for n, _ in pending])

    def describe(self) -> dict[str, Any]:
        """Folder, file count, frames per clip, skipped files."""
        return {**super().describe(), "folder": str(self.root), "frames": self.frames,
                "fit": self.fit, "skipped": list(self.skipped)}


def _test_records(root: Path) -> list[Path]:
    """The test split's clip JSON files: from ``manifest.jsonl`` when ``index.json`` names
    a ``dtgan data synth`` folder (manifest order), else every JSON under ``test/``."""
    try:
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = None
    if isinstance(index, dict) and str(index.get("format", "")).startswith("dtgan-synthfaces"):
        if not index.get("complete", True):
            raise UsageError(f"the data set in {root} is incomplete",
                             hint="rerun the same 'dtgan data synth' command to finish it")
        manifest = root / str(index.get("manifest", "manifest.jsonl"))
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            return [root / r["meta"] for r in rows
                    if r.get("split") == "test" and (root / r["meta"]).is_file()]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # fall back to scanning the folder
    return sorted((root / "test").rglob("*.json"))


def open_eval_folder(path: str | os.PathLike[str], *, frames: int, size: int, seed: int = 0,
                     limit: int | None = None) -> EvalData:
    """A ``dtgan data synth`` folder (its ``test/`` split) or a folder of videos."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UsageError(f"--data folder not found: {root}", hint="check the path")
    if not root.is_dir():
        raise UsageError(f"--data must be a folder, got the file {root}",
                         hint="pass the folder written by 'dtgan data synth' or a folder of videos")
    test = root / "test"
    if test.is_dir():
        records = []
        for rec_path in _test_records(root):
            try:
                rec = json.loads(rec_path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(rec, dict) or _record_params(rec) is None or \
                    _record_identity(rec) is None:
                continue
            video = _find_video(rec_path, rec)
            if video is not None:
                records.append((rec_path, video, rec))
        if records:
            return SynthFolderData(root, records, seed=seed, limit=limit)
        raise UsageError(f"{test} has no clips with per-frame and identity parameters",
                         hint="pass a folder written by 'dtgan data synth', or a folder of videos "
                              "without a test/ subfolder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and
                   p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise UsageError(f"--data folder {root} has no videos ({', '.join(VIDEO_EXTENSIONS[:5])} "
                         "...) and no test/ split", hint="point it at a folder of videos or at "
                                                         "one written by 'dtgan data synth'")
    return VideoFolderData(root, files, frames=frames, size=size, limit=limit)


# --------------------------------------------------------------------------------------------
# The protocols
# --------------------------------------------------------------------------------------------

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
    from ..training.synthfaces import EXPRESSION_PARAMS, MOTION_PARAMS

    corr, mae = acc.corr(), acc.mae()

    def mean(d: dict[str, float], keys: Sequence[str]) -> float:
        vals = [d[k] for k in keys if not math.isnan(d[k])]
        return sum(vals) / len(vals) if vals else math.nan

    names = list(corr)
    return {"corr_mean": mean(corr, names), "corr_expr": mean(corr, EXPRESSION_PARAMS),
            "corr_motion": mean(corr, MOTION_PARAMS), "mae_expr": mean(mae, EXPRESSION_PARAMS),
            "mae_motion": mean(mae, MOTION_PARAMS), "frames": acc.n,
            "per_param": {k: {"corr": corr[k], "mae": mae[k]} for k in names}}


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

    from ..training.synthfaces import PARAM_NAMES

    protocols = parse_protocols(list(protocols))
    notes = list(notes) + list(getattr(data, "notes", []))
    active = set(protocols)
    if not data.has_truth:
        active -= {"P2", "P3", "P4"}
    if probe is None and ({"P3", "P4"} & active):
        active -= {"P3", "P4"}
        if not any(n.startswith("P3 and P4 skipped") for n in notes):
            notes.append("P3 and P4 skipped: no motion probe was given")
    need_cross = data.has_truth and bool({"P2", "P3", "P4", "P5"} & active)
    need_self = "P1" in active or ("P5" in active and not data.has_truth)
    states = [_MethodState(m) for m in methods]
    for st in states:
        if "P3" in active:
            st.p3 = M.CorrAccumulator(PARAM_NAMES)
    ceiling = M.CorrAccumulator(PARAM_NAMES) if "P3" in active else None
    ex: dict[str, Any] = {"source": [], "target": [], "truth": [], "names": [],
                          "outputs": {m.name: [] for m in methods}}
    n_clips = 0
    t_start = time.perf_counter()
    bar = tqdm(total=len(data), desc="eval", unit="clip", disable=not progress)
    for batch in data.batches(batch_size):
        b = int(batch.source.shape[0])
        n_clips += b
        emb_truth = emb_src = None
        if need_cross and probe is not None and ({"P3", "P4"} & active):
            frames_truth = batch.cross_truth.flatten(0, 1)
            p_truth, emb_truth = probe.predict(frames_truth)
            if ceiling is not None:
                ceiling.add(p_truth.view_as(batch.params), batch.params)
            if "P4" in active:
                emb_src = probe.predict(batch.source.flatten(0, 1))[1]
        want_ex = max(0, examples - len(ex["names"]))
        if want_ex:
            k = min(want_ex, b)
            ex["names"] += batch.names[:k]
            ex["source"].append(batch.source[:k])
            if need_cross:
                ex["target"].append(batch.cross_target[:k])
                ex["truth"].append(batch.cross_truth[:k])
            else:
                ex["target"].append(batch.self_target[:k])
                ex["truth"].append(batch.source[:k])
        for st in states:
            m = st.method
            if need_self:
                t0 = time.perf_counter()
                out = m(batch.source, batch.self_target)
                st.seconds += time.perf_counter() - t0
                st.frames += out.shape[0] * out.shape[1]
                if "P1" in active:
                    st.add("P1", "l1", M.l1(out, batch.source))
                    st.add("P1", "psnr", M.psnr(out, batch.source))
                    st.add("P1", "ssim", M.ssim(out, batch.source))
                if "P5" in active and not data.has_truth:
                    _temporal(st, out, batch.source)
                if want_ex and not need_cross:
                    ex["outputs"][m.name].append(out[:min(want_ex, b)])
            if need_cross:
                t0 = time.perf_counter()
                out = m(batch.source, batch.cross_target)
                st.seconds += time.perf_counter() - t0
                st.frames += out.shape[0] * out.shape[1]
                truth = batch.cross_truth
                if "P2" in active:
                    st.add("P2", "l1", M.l1(out, truth))
                    st.add("P2", "psnr", M.psnr(out, truth))
                    st.add("P2", "ssim", M.ssim(out, truth))
                if "P5" in active:
                    _temporal(st, out, truth)
                if probe is not None and ({"P3", "P4"} & active):
                    p_out, emb_out = probe.predict(out.flatten(0, 1))
                    if st.p3 is not None:
                        st.p3.add(p_out.view_as(batch.params), batch.params)
                    if "P4" in active:
                        leak = M.leakage(emb_out, emb_truth, emb_src)
                        st.add("P4", "leakage", leak.view(b, -1).mean(1))
                        st.add("P4", "identity_distance",
                               (emb_out - emb_truth).norm(dim=1).view(b, -1).mean(1))
                if want_ex:
                    ex["outputs"][m.name].append(out[:min(want_ex, b)])
        bar.update(b)
    bar.close()
    elapsed = time.perf_counter() - t_start
    results: dict[str, Any] = {"methods": {}, "protocols": [p for p in protocols if p in active],
                               "requested_protocols": list(protocols), "clips": n_clips,
                               "notes": notes}
    for st in states:
        entry: dict[str, Any] = {**st.method.describe()}
        entry.update(st.summaries())
        if st.p3 is not None:
            entry["P3"] = _p3_summary(st.p3)
        # every per-clip value, in clip order, for statistics of your own (a few floats a clip)
        entry["per_clip"] = {f"{proto}.{metric}": vals
                             for (proto, metric), vals in st.per_clip.items()}
        entry["timing"] = {"seconds": st.seconds, "frames": st.frames,
                           "frames_per_second": st.frames / st.seconds if st.seconds else None}
        results["methods"][st.method.name] = entry
    if ceiling is not None:
        results["probe_ceiling"] = _p3_summary(ceiling)
    if paired_with is not None and len(states) > 1:
        results["paired"] = _paired(states, paired_with)
    results["timing"] = {"seconds": elapsed, "clips_per_second": n_clips / elapsed if elapsed
                         else None}
    cat = lambda xs: torch.cat(xs) if xs else None  # noqa: E731
    results["examples"] = {"names": ex["names"], "source": cat(ex["source"]),
                           "target": cat(ex["target"]), "truth": cat(ex["truth"]),
                           "cross": need_cross,
                           "outputs": {k: cat(v) for k, v in ex["outputs"].items() if v}}
    return results


def _temporal(st: _MethodState, out: torch.Tensor, truth: torch.Tensor) -> None:
    st.add("P5", "temporal_error", M.temporal_error(out, truth))
    st.add("P5", "excess_jitter", M.excess_jitter(out, truth))
    st.add("P5", "background_drift", M.background_drift(out, truth))


# --------------------------------------------------------------------------------------------
# The whole command
# --------------------------------------------------------------------------------------------

def _checkpoint_name(spec: str, taken: set[str]) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` → (name, path); the name defaults to the file or run folder."""
    raw = spec.strip()
    if not raw:
        raise UsageError("empty --checkpoint", hint="pass a .safetensors path or NAME=PATH")
    if "=" in raw and not Path(raw).expanduser().exists():
        name, path = (s.strip() for s in raw.split("=", 1))
        if not name or not path:
            raise UsageError(f"--checkpoint '{raw}' is not NAME=PATH",
                             hint="e.g. --checkpoint noDT=runs/noDT/model.safetensors")
    else:
        path = raw
        p = Path(raw)
        name = p.parent.name if p.stem in ("model", "checkpoint") and p.parent.name else p.stem
        name = name or raw
    if name in taken or name in ("static", "flow-warp", "copy-source"):
        raise UsageError(f"two methods are called '{name}'",
                         hint="name checkpoints with NAME=PATH so every row is distinct")
    return name, path


def _paired_reference(choice: str | None, models: Sequence[str],
                      baselines: Sequence[str]) -> str | None:
    """The method to pair the others with: ``""`` picks the first checkpoint (if any)."""
    if choice is None or choice.lower() == "none":
        return None
    if choice == "":
        return models[0] if models else None
    known = [*models, *baselines]
    if choice not in known:
        lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(choice.lower(), list(lower), n=1)
        raise UsageError(f"--paired-with '{choice}' is not one of the methods "
                         f"({', '.join(known)})",
                         hint=f"did you mean '{lower[close[0]]}'?" if close else
                         "name a --checkpoint (NAME=PATH) or a baseline, or pass 'none'")
    return choice


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
    from ..inference import load_model, resolve_device
    from ..models.checkpoint import read_checkpoint_metadata, resolve_checkpoint
    from .baselines import DEFAULT_BASELINES
    from .probe import ProbeMissingError, load_probe
    from .report import write_report

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    protos = parse_protocols(protocols)
    if (data is None) == (synth is None):
        raise UsageError("pass exactly one of --data DIR and --synth OPTIONS")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if frames < 2:
        raise UsageError(f"--frames must be >= 2, got {frames}")
    if examples < 0:
        raise UsageError(f"--examples must be >= 0, got {examples}")
    if clips is not None and clips < 1:
        raise UsageError(f"--clips must be >= 1, got {clips}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file", hint="pass a folder for the report")
    spec = parse_synth_spec(synth) if synth is not None else None
    baseline_names = list(DEFAULT_BASELINES if baselines is None else baselines)
    dev = resolve_device(device)

    # resolve and validate every checkpoint before any work, so a typo fails in a second
    named: list[tuple[str, Path, dict[str, Any]]] = []
    taken: set[str] = set()
    for spec_str in checkpoints:
        name, path = _checkpoint_name(spec_str, taken)
        resolved = resolve_checkpoint(path)
        meta = read_checkpoint_metadata(resolved)
        named.append((name, resolved, meta))
        taken.add(name)
    from .baselines import BASELINES

    for bname in baseline_names:
        if bname not in BASELINES:
            make_baseline(bname)  # raises the did-you-mean usage error
    if not named and not baseline_names:
        raise UsageError("nothing to evaluate", hint="pass --checkpoint or --baselines")
    reference = _paired_reference(paired_with, [n for n, _, _ in named], baseline_names)
    # the evaluation runs at the first model's resolution (64 px with baselines only)
    size = int(named[0][2]["config"]["resolution"]) if named else 64
    if spec is not None:
        dataset: EvalData = SynthEvalData(spec, size=size, seed=seed, limit=clips)
    else:
        dataset = open_eval_folder(data, frames=frames, size=size, seed=seed, limit=clips)
    methods: list[Method] = []
    notes: list[str] = []
    for name, path, meta in named:
        model = load_model(path, dev)
        methods.append(ModelMethod(name, model, path=str(path), fingerprint=meta["fingerprint"],
                                   info={"extra": meta.get("extra", {}),
                                         "size_bytes": meta.get("size_bytes")}))
    for bname in dict.fromkeys(baseline_names):  # unique, in order
        try:
            methods.append(make_baseline(bname))
        except BaselineUnavailable as err:
            notes.append(str(err))
            say(str(err))
    if not methods:
        raise UsageError("nothing to evaluate: every baseline is unavailable",
                         hint="install opencv-python-headless or pass --checkpoint")
    for m in methods:
        if isinstance(m, ModelMethod) and m.resolution != dataset.size:
            notes.append(f"{m.name} works at {m.resolution} px; its inputs were resized from "
                         f"and its outputs back to the evaluation size {dataset.size} px")
    probe = None
    probe_info: dict[str, Any] = {}
    if {"P3", "P4"} & set(protos) and dataset.has_truth:
        try:
            probe = load_probe(probe_path, device="cpu")
            probe_info = dict(probe.meta)
        except ProbeMissingError as err:
            notes.append(f"P3 and P4 skipped: {err}")
            say(f"P3 and P4 skipped: {err}")
    # a batch's frames are bounded in pixels, so 256 px clips do not take 16x the memory
    bs = _batch_limit(batch_size, (getattr(dataset, "frames", 16), 3, dataset.size, dataset.size))
    results = evaluate(methods, dataset, protocols=protos, probe=probe, batch_size=bs,
                       examples=examples, progress=progress, notes=notes,
                       paired_with=reference if any(m.name == reference for m in methods)
                       else None)
    if results["clips"] == 0:
        first = dataset.skipped[0] if isinstance(dataset, VideoFolderData) and \
            dataset.skipped else "no clips"
        raise MediaError(f"no clip of {data or 'the data'} could be evaluated (first problem: "
                         f"{first})", hint="check the videos with 'ffprobe' or re-encode them")
    if isinstance(dataset, VideoFolderData) and dataset.skipped:
        results["notes"].append(f"{len(dataset.skipped)} video(s) skipped; first: "
                                f"{dataset.skipped[0]}")
    import platform

    from .. import __version__

    report = {
        "format": "dtgan-eval-report", "format_version": "1", "dtgan_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
        "config": {"protocols": list(protos), "baselines": baseline_names, "seed": seed,
                   "device": str(dev), "batch_size": batch_size, "clips": clips,
                   "frames": frames if spec is None else spec.frames, "examples": examples,
                   "synth": spec.to_dict() if spec else None, "data": str(data) if data else None},
        "data": dataset.describe(),
        "checkpoints": {n: {"path": str(p), "fingerprint": meta["fingerprint"],
                            "config": meta["config"], "extra": meta.get("extra", {})}
                        for n, p, meta in named},
        "probe": probe_info,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "machine": platform.machine()},
        **{k: v for k, v in results.items() if k != "examples"},
    }
    report["timing"]["total_seconds"] = time.perf_counter() - t0
    write_report(out, report, results["examples"])
    return report
