"""Write the procedural faces to disk as a dataset folder (``dtgan data synth``).

Layout of a written folder (``DIR``)::

    DIR/index.json                      settings, splits, counts; "complete": true when done
    DIR/manifest.jsonl                  one line per clip (paths relative to DIR)
    DIR/<split>/id000012/neutral.png    the identity's neutral face (a transfer target)
    DIR/<split>/id000012/clip003.mkv    lossless FFV1 video of clip 3 of identity 12
    DIR/<split>/id000012/clip003.json   its identity, class and per-frame parameters

Clip ``j`` of identity ``i`` is exactly clip ``j`` of identity ``i`` of
:class:`~dtgan_plugin.synthfaces.SynthFaceClips` with the same seed, so on-the-fly and
on-disk data agree. Every file is written under a temporary name and renamed when complete (a
clip's JSON after its video), so a killed run leaves no half-written clip under its final
name, and running the same command again resumes where it stopped.

This module stays light to import (torch is loaded when data is written); the ``dtgan data``
command itself is :mod:`dtgan_plugin.cli.data`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_output, clean_stale
from ..errors import OptionError, UsageError

FORMAT = "dtgan-synthfaces"
FORMAT_VERSION = 1
#: frames rendered per call while writing a clip (bounds memory for long clips)
_RENDER_CHUNK = 64
#: settings that must match to resume into an existing folder
_SETTINGS = ("seed", "identities", "clips", "size", "frames", "fps")


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise OptionError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _identity_dir(split: str, identity: int) -> str:
    return f"{split}/id{identity:06d}"


def _clip_stem(split: str, identity: int, clip: int) -> str:
    return f"{_identity_dir(split, identity)}/clip{clip:03d}"


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (synced to disk) to a temporary file beside ``path``, then rename it."""
    with atomic_output(path) as tmp, open(tmp, "x", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _write_json(path: Path, obj: Any) -> None:
    _write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def _check_out_dir(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse folders that are not ours or were made with other settings; return an index."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"output '{out}' exists and is not a folder",
                         hint="choose a new or empty folder with -o")
    index_path = out / "index.json"
    if not out.exists():
        return None
    if not index_path.exists():
        if any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise UsageError(f"output folder '{out}' is not empty and holds no synthfaces "
                             "dataset", hint="choose a new or empty folder with -o")
        return None
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read '{index_path}': {err}",
                         hint="remove the folder or choose another one with -o") from None
    if index.get("format") != FORMAT:
        raise UsageError(f"'{out}' holds something other than a synthfaces dataset",
                         hint="choose a new or empty folder with -o")
    theirs = {k: index.get(k) for k in _SETTINGS}
    if theirs != settings:
        diff = ", ".join(f"{k}={theirs[k]} (asked {settings[k]})" for k in _SETTINGS
                         if theirs[k] != settings[k])
        raise UsageError(f"'{out}' holds a synthfaces dataset made with other settings: {diff}",
                         hint="use the same settings to resume, or another folder with -o")
    return index


def _remove_stale_partials(out: Path) -> int:
    """Delete temporary files left by killed runs (their writer's process is gone)."""
    return sum(len(clean_stale(Path(root))) for root, _, _ in os.walk(out))


def _check_args(identities: int, clips: int, size: int, frames: int, seed: int, fps: float,
                jobs: int) -> None:
    """Raise an OptionError for the first setting out of its range."""
    _check_int("identities", identities, 1, 1_000_000)
    _check_int("clips", clips, 1, 1000)
    _check_int("size", size, 8, 2048)
    _check_int("frames", frames, 1, 100_000)
    _check_int("seed", seed, 0, 2**63 - 1)
    _check_int("jobs", jobs, 1, 64)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise OptionError(f"fps must be a number in (0, 1000], got {fps!r}")


def _prepare_folder(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Check or create ``out``, write its incomplete index and clear stale temporaries.

    Returns the index (``complete`` false) that :func:`_finish_index` completes.
    """
    from .. import synthfaces as sf

    previous = _check_out_dir(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    splits = {s: sf.split_identities(settings["identities"], s) for s in sf.SPLITS}
    index = {"format": FORMAT, "version": FORMAT_VERSION, **settings,
             "param_names": list(sf.PARAM_NAMES), "class_names": list(sf.CLASS_NAMES),
             "splits": splits, "manifest": "manifest.jsonl", "complete": False}
    if previous is None or not previous.get("complete"):
        _write_json(out / "index.json", index)
    if previous is not None:
        _remove_stale_partials(out)
    return index


@dataclass(frozen=True)
class _ClipTask:
    """One clip still to write (and the identity's neutral image, if it is missing)."""

    split: str
    identity: int
    clip: int
    label: int
    idn: Any  # the identity's synthfaces.Identity
    params: Any  # (1,T,P) tensor of the clip's per-frame parameters
    stem: str  # path of the clip's files relative to the folder, without suffix
    neutral: Path | None  # the identity's neutral.png to write first, or None


def _plan_clips(out: Path, settings: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                               list[_ClipTask]]:
    """The manifest rows of every clip and the tasks of those not yet on disk.

    Creates the identity folders; an identity whose clips are all there but whose neutral
    image is not gets the image written here.
    """
    from ..media import write_image
    from .. import synthfaces as sf

    seed, clips, frames = settings["seed"], settings["clips"], settings["frames"]
    rows: list[dict[str, Any]] = []
    todo: list[_ClipTask] = []
    for i in range(settings["identities"]):
        split = sf.split_of(i)
        idn = sf.identities_for(seed, [i])
        folder = out / _identity_dir(split, i)
        folder.mkdir(parents=True, exist_ok=True)
        # the identity's first pending task also writes its neutral image if it is missing
        neutral = folder / "neutral.png"
        pending_neutral = neutral if not neutral.exists() else None
        params, labels = sf.clip_dynamics(seed, [i] * clips, list(range(clips)), frames)
        for j in range(clips):
            stem = _clip_stem(split, i, j)
            label = int(labels[j])
            rows.append({"split": split, "identity": i, "clip": j, "label": label,
                         "class": sf.CLASS_NAMES[label], "frames": frames,
                         "video": f"{stem}.mkv", "meta": f"{stem}.json",
                         "target": f"{_identity_dir(split, i)}/neutral.png"})
            if not ((out / f"{stem}.json").exists() and (out / f"{stem}.mkv").exists()):
                todo.append(_ClipTask(split, i, j, label, idn, params[j:j + 1], stem,
                                      pending_neutral))
                pending_neutral = None
        if pending_neutral is not None:  # every clip is there but the image is not
            write_image(pending_neutral, sf.render_neutral(idn, settings["size"])[0])
    return rows, todo


def _write_clip(out: Path, settings: dict[str, Any], task: _ClipTask) -> None:
    """Render one clip into its video, then its JSON (whose presence marks it complete)."""
    from ..media import VideoWriter, write_image
    from .. import synthfaces as sf

    size, frames, fps = settings["size"], settings["frames"], settings["fps"]
    if task.neutral is not None:
        write_image(task.neutral, sf.render_neutral(task.idn, size)[0])
    with VideoWriter(out / f"{task.stem}.mkv", fps=fps, width=size, height=size,
                     codec="ffv1") as writer:
        for t0 in range(0, frames, _RENDER_CHUNK):
            chunk = sf.render(task.idn, task.params[:, t0:t0 + _RENDER_CHUNK], size)
            writer.write(chunk[0])
    # the JSON goes last: its presence marks the clip as complete
    j = task.clip
    _write_json(out / f"{task.stem}.json", {
        "format": f"{FORMAT}-clip", "version": FORMAT_VERSION, "seed": settings["seed"],
        "split": task.split, "identity": task.identity, "clip": j, "label": task.label,
        "class": sf.CLASS_NAMES[task.label], "fps": fps, "size": [size, size],
        "frames": frames, "video": f"clip{j:03d}.mkv", "target": "neutral.png",
        "identity_params": task.idn.to_dict(0), "param_names": list(sf.PARAM_NAMES),
        "params": task.params[0].tolist()})


def _write_clips(out: Path, settings: dict[str, Any], todo: list[_ClipTask], total: int,
                 jobs: int, progress: bool) -> None:
    """Write every pending clip, ``jobs`` at once, with a progress bar over all ``total``."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=total - len(todo), desc="synth", unit="clip",
               disable=not progress, file=sys.stderr)
    try:
        if jobs == 1:
            for task in todo:
                _write_clip(out, settings, task)
                bar.update(1)
        else:
            # several ffmpeg encoders in flight hide their start-up time; each clip is
            # independent, so the output is the same whatever the order of completion
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_write_clip, out, settings, task) for task in todo]
                try:
                    for future in as_completed(futures):
                        future.result()
                        bar.update(1)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()


def _finish_index(out: Path, index: dict[str, Any], num_clips: int) -> dict[str, int]:
    """Write the index again, complete with its counts; return identities per split."""
    from ..synthfaces import SPLITS

    counts = {s: len(ids) for s, ids in index["splits"].items()}
    index.update(complete=True, counts={s: counts[s] * index["clips"] for s in SPLITS},
                 num_clips=num_clips)
    _write_json(out / "index.json", index)
    return counts


def write_dataset(out_dir: str | os.PathLike, *, identities: int, clips: int, size: int,
                  frames: int, seed: int, fps: float = 25, progress: bool = True,
                  jobs: int = 4) -> dict[str, Any]:
    """Render ``identities`` × ``clips`` clips into ``out_dir`` (see the module docstring).

    ``jobs`` clips are encoded at once (ffmpeg processes), which hides their start-up time.

    Returns a summary: ``out_dir``, ``clips`` (total), ``written`` and ``skipped`` (already
    there from an interrupted run), ``splits`` (identities per split), ``seconds``.
    """
    _check_args(identities, clips, size, frames, seed, fps, jobs)
    out = Path(os.fspath(out_dir))
    settings = {"seed": seed, "identities": identities, "clips": clips, "size": size,
                "frames": frames, "fps": fps}
    index = _prepare_folder(out, settings)
    start = time.perf_counter()
    rows, todo = _plan_clips(out, settings)
    _write_clips(out, settings, todo, len(rows), jobs, progress)
    written, skipped = len(todo), len(rows) - len(todo)
    # the manifest before the complete index: a folder marked complete has its manifest
    _write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    seconds = time.perf_counter() - start
    counts = _finish_index(out, index, len(rows))
    return {"out_dir": str(out), "clips": len(rows), "written": written, "skipped": skipped,
            "splits": counts, "seconds": round(seconds, 3)}


class SynthFolder:
    """Read back a folder written by :func:`write_dataset` (a map-style torch dataset).

    Item ``k`` is the ``k``-th clip of ``split`` in manifest order: a dict with ``source``
    ``(T,3,H,W)`` (decoded with decord), ``target`` ``(3,H,W)`` (the identity's neutral PNG),
    ``params`` ``(T,P)``, ``label``, ``identity``, ``clip``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        from ..synthfaces import SPLITS

        self.root = Path(os.fspath(root))
        if split not in SPLITS:
            raise OptionError(f"unknown split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
        index_path = self.root / "index.json"
        try:
            self.index = json.loads(index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"'{self.root}' has no index.json: not a synthfaces dataset",
                             hint="write one with 'dtgan data synth -o DIR'") from None
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read '{index_path}': {err}") from None
        if self.index.get("format") != FORMAT:
            raise UsageError(f"'{self.root}' is not a synthfaces dataset")
        if not self.index.get("complete"):
            raise UsageError(f"the dataset in '{self.root}' is incomplete",
                             hint="rerun the same 'dtgan data synth' command to finish it")
        manifest = self.root / self.index.get("manifest", "manifest.jsonl")
        lines = manifest.read_text(encoding="utf-8").splitlines()
        self.rows = [r for r in (json.loads(line) for line in lines if line.strip())
                     if r["split"] == split]
        self.split = split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> dict[str, Any]:
        import torch

        from ..media import open_video, read_image

        if not -len(self) <= k < len(self):
            raise IndexError(f"clip {k} out of range for {len(self)} clips")
        row = self.rows[k]
        meta = json.loads((self.root / row["meta"]).read_text(encoding="utf-8"))
        with open_video(self.root / row["video"]) as reader:
            source = reader.get_batch(list(range(row["frames"])))
        return {"source": source, "target": read_image(self.root / row["target"]),
                "params": torch.tensor(meta["params"], dtype=torch.float32),
                "label": int(row["label"]), "identity": int(row["identity"]),
                "clip": int(row["clip"])}


__all__ = ["write_dataset", "SynthFolder", "FORMAT", "FORMAT_VERSION"]
