"""Training data: the users' own videos (a folder read with decord), and batch sources.

:class:`VideoFolderClips` samples clips of T frames from every readable video under a folder,
at a fixed stride or resampled to a target fps, and skips unreadable files (counted and
reported). :func:`make_batch_source` gives the trainer one interface over both the procedural
faces and a video folder: ``next_batch(step) -> dict`` of batched tensors, deterministic in
(seed, step, rank) so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DtganError
from .config import TrainConfig

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class VideoFolderClips:
    """Clips of ``frames`` frames at ``size``×``size`` sampled from a folder of videos.

    Self pairs only carry ground truth (the clip itself); a cross pair takes its target from
    another video's first frame and has no pixel truth.
    """

    def __init__(self, folder: str | Path, *, frames: int = 16, size: int = 64,
                 stride: int = 1, fps: float = 0.0, quiet: bool = False) -> None:
        from ..media import open_video

        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"video folder '{root}' does not exist or is not a folder")
        self.frames, self.size, self.stride, self.fps = frames, size, max(1, stride), fps
        self.videos: list[tuple[Path, int, float]] = []
        self.skipped: list[tuple[Path, str]] = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS):
            try:
                with open_video(path) as reader:
                    n, vfps = reader.info.num_frames or 0, reader.info.fps
                if n < self._span(vfps):
                    raise DtganError(f"only {n} frames, need {self._span(vfps)}")
                self.videos.append((path, n, vfps))
            except DtganError as err:
                self.skipped.append((path, str(err)))
        if self.skipped and not quiet:
            print(f"dtgan: skipped {len(self.skipped)} unreadable or too-short video(s) under "
                  f"{root} (first: {self.skipped[0][0].name}: {self.skipped[0][1]})",
                  file=sys.stderr)
        if not self.videos:
            raise ConfigError(f"no usable videos under '{root}' "
                              f"({len(self.skipped)} skipped)", hint="check the folder and formats")

    def _step(self, vfps: float) -> float:
        return vfps / self.fps if self.fps > 0 else float(self.stride)

    def _span(self, vfps: float) -> int:
        return int((self.frames - 1) * self._step(vfps)) + 1

    def __len__(self) -> int:
        return len(self.videos)

    def clip(self, index: int, rng: random.Random) -> torch.Tensor:
        """One clip ``(T,3,S,S)`` in [0,1] from video ``index`` at a random start."""
        from ..inference import fit_image
        from ..media import open_video

        path, n, vfps = self.videos[index % len(self.videos)]
        step = self._step(vfps)
        start = rng.randrange(0, n - self._span(vfps) + 1)
        idx = [min(n - 1, start + int(round(i * step))) for i in range(self.frames)]
        with open_video(path) as reader:
            frames = reader.get_batch(idx)
        return fit_image(frames, self.size, "crop")

    def sample_batch(self, batch_size: int, generator: torch.Generator,
                     cross_fraction: float = 0.5) -> dict[str, torch.Tensor]:
        """A batch of self and cross pairs (cross pairs have ``has_truth`` False)."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = random.Random(seed)
        src, tgt, truth, cross = [], [], [], []
        for _ in range(batch_size):
            i = rng.randrange(len(self.videos))
            clip = self.clip(i, rng)
            is_cross = len(self.videos) > 1 and rng.random() < cross_fraction
            if is_cross:
                j = rng.randrange(len(self.videos) - 1)
                j = j + 1 if j >= i else j
                target = self.clip(j, rng)[0]
            else:
                target = clip[0]
            src.append(clip)
            tgt.append(target)
            truth.append(clip)
            cross.append(is_cross)
        is_cross_t = torch.tensor(cross)
        return {"source": torch.stack(src), "target": torch.stack(tgt),
                "truth": torch.stack(truth), "is_cross": is_cross_t,
                "has_truth": ~is_cross_t}


class BatchSource:
    """Deterministic batches for step ``s`` (and rank ``r``), from synth faces or a folder."""

    def __init__(self, cfg: TrainConfig, *, split: str = "train", rank: int = 0) -> None:
        self.cfg = cfg
        self.rank = rank
        self.split = split
        d = cfg.data
        if d.source == "synth":
            from ..synthfaces import SynthFaceClips

            lmk = (cfg.model.get("dynamics_input") == "landmarks"
                   or cfg.model.get("generator") == "geowarp")
            self.synth: Any = SynthFaceClips(num_identities=d.identities, clips_per_identity=1,
                                             T=d.frames, size=d.size, seed=cfg.run.seed,
                                             split=split, cross_pairs=True, landmarks=lmk)
            self.folder = None
        else:
            self.synth = None
            self.folder = VideoFolderClips(d.folder, frames=d.frames, size=d.size,
                                           stride=d.stride, fps=d.fps)

    @property
    def has_labels(self) -> bool:
        """True when batches carry expression classes and per-frame parameters."""
        return self.synth is not None

    def generator(self, step: int, stream: int = 0) -> torch.Generator:
        """The RNG for a step: a pure function of (seed, split, rank, step, stream)."""
        split_code = {"train": 0, "val": 1, "test": 2}.get(self.split, 3)
        g = torch.Generator()
        g.manual_seed(((self.cfg.run.seed * 1_000_003 + split_code) * 7919 + self.rank) * 1_000_033
                      + step * 31 + stream)
        return g

    def next_batch(self, step: int, batch_size: int | None = None,
                   cross_fraction: float | None = None, stream: int = 0,
                   images: bool = True) -> dict[str, torch.Tensor]:
        """The batch for ``step``: source, target, truth (B,T,3,H,W / B,3,H,W), flags, labels."""
        bs = batch_size or self.cfg.data.batch_size
        cf = self.cfg.data.cross_fraction if cross_fraction is None else cross_fraction
        g = self.generator(step, stream)
        if self.synth is not None:
            batch = self.synth.sample_batch(bs, g, cross_fraction=cf, images=images)
            batch.setdefault("has_truth", torch.ones(bs, dtype=torch.bool))
            return batch
        return self.folder.sample_batch(bs, g, cf)
