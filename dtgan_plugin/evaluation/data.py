"""Evaluation data: held-out clips, produced batch by batch (never a whole data set at once).

* :class:`SynthEvalData` — procedural faces rendered on the fly. Identities are the **test
  split** (index ``i % 10 == 0``) of the synthfaces world ``seed``; training draws only from the
  train split, so these faces are never seen. Dynamics are clip ``j`` of identity ``i`` in the
  counter-based world ``seed + 1000`` (:func:`~dtgan_plugin.synthfaces.clip_dynamics`);
  training draws its motions from torch generators seeded otherwise, so these motions are new
  too. Item ``k`` is clip ``k // n`` of test identity ``k % n`` (so a ``clips`` limit still
  spreads over all identities); its cross-identity target is the neutral face of another test
  identity picked by a generator seeded with ``seed + 2000``.
* :class:`SynthFolderData` — the test split of a folder written by ``dtgan data synth``: the
  clips are decoded from their video files, targets and ground truth re-rendered from the
  identity parameters and per-frame parameters in each clip's JSON.
* :class:`VideoFolderData` — a folder of the user's own videos: no ground truth for other
  identities and no parameters, so only P1 and P5 (on P1's outputs) apply.

Procedural data also carries the renderer's exact 68 iBUG landmarks of every source frame and
target (:func:`~dtgan_plugin.synthfaces.landmarks.landmarks68` + 0.5: a landmarker's continuous
pixel coordinates of the evaluation frames), which landmark models read; a folder of videos has
none (:func:`require_landmarks`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MediaError, UsageError
from .options import SynthSpec

__all__ = ["EvalBatch", "EvalData", "SynthEvalData", "SynthFolderData", "VideoFolderData",
           "open_eval_folder", "first_frames", "require_landmarks", "DYNAMICS_SEED_OFFSET",
           "PAIR_SEED_OFFSET", "VIDEO_EXTENSIONS"]

#: held-out dynamics come from world ``seed + DYNAMICS_SEED_OFFSET`` (never used in training)
DYNAMICS_SEED_OFFSET = 1000
PAIR_SEED_OFFSET = 2000
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".y4m",
                    ".gif", ".nut", ".flv", ".wmv", ".3gp", ".ts")
# frames x pixels of one evaluation batch (a 16 x 16-frame batch at 64 px is 2^20 x 16)


@dataclass
class EvalBatch:
    """Clips of one batch; cross-identity fields are None when the data has no ground truth."""

    source: torch.Tensor                       # (B, T, 3, H, W)
    names: list[str]
    cross_target: torch.Tensor | None = None   # (B, 3, H, W): neutral face of identity B
    cross_truth: torch.Tensor | None = None    # (B, T, 3, H, W): B moving like the source
    params: torch.Tensor | None = None         # (B, T, P): the source's per-frame parameters
    source_lmk: torch.Tensor | None = None     # (B, T, 68, 2): the source's landmarks, pixels
    cross_target_lmk: torch.Tensor | None = None  # (B, 68, 2): cross_target's landmarks

    @property
    def self_target(self) -> torch.Tensor:
        """P1's target: frame 0 of each clip."""
        return self.source[:, 0]

    @property
    def self_target_lmk(self) -> torch.Tensor | None:
        """P1's target's landmarks: those of frame 0 of each clip (None without landmarks)."""
        return None if self.source_lmk is None else self.source_lmk[:, 0]


class EvalData:
    """A source of evaluation clips, produced batch by batch (never all at once)."""

    kind = "?"
    has_truth = False
    #: batches carry the exact landmarks of their sources and cross targets
    has_landmarks = False
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
    has_landmarks = True

    def __init__(self, spec: SynthSpec, *, size: int, seed: int = 0,
                 limit: int | None = None) -> None:
        from ..synthfaces import identities_for, split_identities

        self.spec = spec
        self.size = int(spec.size or size)
        self.frames = spec.frames
        self.seed = int(seed)
        self.dyn_seed = self.seed + DYNAMICS_SEED_OFFSET
        self.ids = split_identities(spec.identities, spec.split)
        if len(self.ids) < 2:
            raise UsageError(f"synth identities={spec.identities} leaves {len(self.ids)} "
                             f"{spec.split} identity; cross-identity pairs need at least 2",
                             hint="use identities >= 11")
        self.total = len(self.ids) * spec.clips
        if limit is not None and limit < 1:
            raise UsageError(f"clips must be >= 1, got {limit}")
        self.n = min(self.total, limit) if limit else self.total
        self.notes = []
        if limit and limit > self.total:
            self.notes.append(f"clips={limit} asked for more clips than the synth set has "
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
        from ..synthfaces import clip_dynamics, neutral_params, render, render_neutral
        from ..synthfaces.landmarks import landmarks68

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
            # the renderer's exact points, from the same (part-kept, retimed) parameters
            source_lmk = landmarks68(src_idn, params, self.size) + 0.5
            target_lmk = landmarks68(tgt_idn, neutral_params(len(tpos)), self.size)[:, 0] + 0.5
            yield EvalBatch(source, names, target, truth, params, source_lmk, target_lmk)

    def describe(self) -> dict[str, Any]:
        """Spec, seeds and identity counts."""
        return {**super().describe(), "spec": self.spec.to_dict(), "frames": self.frames,
                "world_seed": self.seed, "dynamics_seed": self.dyn_seed,
                "pair_seed": self.seed + PAIR_SEED_OFFSET, "split": self.spec.split,
                f"{self.spec.split}_identities": len(self.ids), "available_clips": self.total}


def _keep_part(params: torch.Tensor, part: str) -> torch.Tensor:
    """Per-frame parameters with all but ``part`` held at neutral (0)."""
    from ..synthfaces import EXPRESSION_PARAMS

    if part == "all":
        return params
    n = len(EXPRESSION_PARAMS)
    out = params.clone()
    if part == "expression":
        out[..., n:] = 0
    else:
        out[..., :n] = 0
    return out


def first_frames(path: Path, frames: int) -> torch.Tensor:
    """``(T, 3, H, W)`` float: up to ``frames`` frames from a video's start, chunk by chunk."""
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
    from ..synthfaces import PARAM_NAMES

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
    from ..synthfaces import Identity

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
    # every record has identity and per-frame parameters (open_eval_folder keeps no others),
    # which replay the clip's landmarks as they replay its truth
    has_landmarks = True

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
        self.size = int(first_frames(first[1], 1).shape[-1])
        self.frames = int(self._params[0].shape[0])
        self._targets = self._pick_targets()
        if limit and limit > len(records):
            self.notes.append(f"clips={limit} asked for more clips than {root}/test has "
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
        from ..synthfaces import neutral_params, render, render_neutral
        from ..synthfaces.landmarks import landmarks68

        pending: list[int] = []

        def flush() -> EvalBatch:
            src, tgt, tru, par, names, src_lmk, tgt_lmk = [], [], [], [], [], [], []
            for i in pending:
                p = self._params[i]
                clip = first_frames(self.records[i][1], int(p.shape[0]))
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
                src_lmk.append(landmarks68(self._idn[i], p.unsqueeze(0), self.size)[0] + 0.5)
                tgt_lmk.append(landmarks68(idn_b, neutral_params(1), self.size)[0, 0] + 0.5)
            pending.clear()
            return EvalBatch(torch.stack(src), names, torch.stack(tgt), torch.stack(tru),
                             torch.stack(par), torch.stack(src_lmk), torch.stack(tgt_lmk))

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
                clip = first_frames(path, self.frames)
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


def require_landmarks(models: Sequence[str], data: EvalData) -> None:
    """Refuse landmark models (``models``: their names) on data without exact landmarks."""
    if not models or data.has_landmarks:
        return
    who = f"{models[0]} is a landmark model" if len(models) == 1 else \
        f"{', '.join(models)} are landmark models"
    what = "a folder of videos" if data.kind == "videos" else "this data"
    # no bare "synth" in the text: the CLI rewrites that word into its flag
    raise UsageError(f"{who}: the synthetic protocols need procedural data for its exact "
                     f"landmarks (--synth, or a data set that 'dtgan data' wrote), and {what} "
                     "has none", hint="evaluate landmark models on real videos with "
                                      "'dtgan eval --real SRC:TGT'")


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
        raise UsageError(f"data folder not found: {root}", hint="check the path")
    if not root.is_dir():
        raise UsageError(f"data must be a folder, got the file {root}",
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
        raise UsageError(f"data folder {root} has no videos ({', '.join(VIDEO_EXTENSIONS[:5])} "
                         "...) and no test/ split", hint="point it at a folder of videos or at "
                                                         "one written by 'dtgan data synth'")
    return VideoFolderData(root, files, frames=frames, size=size, limit=limit)

