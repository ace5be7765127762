"""Clips of procedural faces as a torch dataset, with exact cross-identity ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import OptionError
from .counter import _STREAM_PAIR, _hash_uniforms
from .dynamics import clip_dynamics, neutral_params, sample_dynamics
from .geometry import _size_hw
from .identity import Identity, identities_for
from .params import _as_index_array, _check_int, _class_index, _prob
from .renderer import render
from .splits import split_identities


class SynthFaceClips(torch.utils.data.Dataset):
    """Clips of procedural faces, rendered on the fly, with exact cross-identity truth.

    Item ``k`` is clip ``k % clips_per_identity`` of the ``k // clips_per_identity``-th
    identity of ``split`` (identities are split 80/10/10 by :func:`split_of`, so held-out
    faces never appear in training). Each item is a dict:

    * ``source`` ``(T,3,H,W)``: the clip; ``params`` ``(T,P)``; ``label``: expression class;
    * ``target`` ``(3,H,W)``: for a cross pair the neutral face of another identity of the
      same split, for a self pair frame 0 of the clip;
    * ``truth`` ``(T,3,H,W)``: the target identity moving like the source (= ``source`` for
      self pairs) — exact, rendered from the same params;
    * ``source_id``, ``target_id``, ``clip``, ``is_cross``, ``has_truth`` (always True).

    Everything is a pure function of ``(seed, index)``. ``cross_pairs`` is a bool or the
    fraction of cross pairs (True = 0.5). ``reverse``, ``speed_change`` and ``concat`` are
    probabilities of "arbitrary dynamics" variants (see :func:`sample_dynamics`).
    With ``landmarks=True`` items also hold the renderer's exact 68 points (pixels, pixel
    ``(i, j)`` covering ``[i, i+1) x [j, j+1)`` as a landmarker's points do):
    ``source_lmk`` ``(T,68,2)``, ``target_lmk`` ``(68,2)`` and ``truth_lmk`` ``(T,68,2)``.
    For training, :meth:`sample_batch` renders a whole batch in one vectorised call;
    ``device`` is where rendering happens and the returned tensors live.
    """

    def __init__(self, num_identities: int, clips_per_identity: int = 6, T: int = 16,
                 size: int | tuple[int, int] = 64, seed: int = 0, split: str = "train",
                 cross_pairs: bool | float = True, *, classes: Sequence[int | str] | None = None,
                 reverse: float = 0.0, speed_change: float = 0.0, concat: float = 0.0,
                 device: str | torch.device = "cpu", landmarks: bool = False) -> None:
        _check_int("num_identities", num_identities, 1)
        _check_int("clips_per_identity", clips_per_identity, 1)
        _check_int("T", T, 1)
        _check_int("seed", seed, 0)
        self.size = _size_hw(size)
        self.num_identities, self.clips_per_identity, self.T = num_identities, clips_per_identity, T
        self.seed, self.split = seed, split
        self.ids = split_identities(num_identities, split)
        if not self.ids:
            need = {"test": 1, "val": 2, "train": 3}[split]
            raise OptionError(f"split '{split}' has no identities among {num_identities}",
                              hint=f"use num_identities >= {need}")
        self.cross_fraction = (0.5 if cross_pairs is True else
                               _prob("cross_pairs", float(cross_pairs)))
        self.classes = (None if classes is None else
                        [_class_index(c) for c in classes])
        if self.classes is not None and not self.classes:
            raise OptionError("classes is empty", hint="pass None for all six expressions")
        self.variants = {"reverse": _prob("reverse", reverse),
                         "speed_change": _prob("speed_change", speed_change),
                         "concat": _prob("concat", concat)}
        self.device = torch.device(device)
        self.landmarks = bool(landmarks)
        self._idn = identities_for(seed, self.ids).to(self.device)
        self._pos = {i: p for p, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids) * self.clips_per_identity

    @property
    def identities(self) -> Identity:
        """The identities of this split, in the order of :attr:`ids`."""
        return self._idn

    def _labels_for(self, src: np.ndarray, clip: np.ndarray) -> Tensor | None:
        if self.classes is None:
            return None
        return torch.tensor([self.classes[(i + j) % len(self.classes)]
                             for i, j in zip(src.tolist(), clip.tolist())], dtype=torch.long)

    def _pairs(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source ids, target ids, is_cross) of dataset items, a function of (seed, index)."""
        n = len(self.ids)
        pos = index // self.clips_per_identity
        u = _hash_uniforms(self.seed, _STREAM_PAIR, [index], 2).numpy()
        cross = (u[:, 0] < self.cross_fraction) & (n > 1)
        offset = 1 + np.minimum((u[:, 1] * max(n - 1, 1)).astype(np.int64), max(n - 2, 0))
        tpos = np.where(cross, (pos + offset) % n, pos)
        ids = np.asarray(self.ids, dtype=np.int64)
        return ids[pos], ids[tpos], cross

    def get_batch(self, indices: Sequence[int] | Tensor) -> dict[str, Tensor]:
        """Items ``indices`` rendered together, as batched tensors (the collated items)."""
        index = _as_index_array(indices)
        if len(index) == 0:
            raise OptionError("get_batch needs at least one index")
        if index.min() < -len(self) or index.max() >= len(self):
            raise IndexError(f"index out of range for a dataset of {len(self)} clips")
        index = index % len(self)
        src, tgt, cross = self._pairs(index)
        clip = index % self.clips_per_identity
        params, labels = clip_dynamics(self.seed, src, clip, self.T,
                                       classes=self._labels_for(src, clip), **self.variants)
        return self._assemble(src, tgt, torch.from_numpy(cross), params, labels,
                              torch.from_numpy(clip))

    def _assemble(self, src: np.ndarray, tgt: np.ndarray, cross: Tensor, params: Tensor,
                  labels: Tensor, clip: Tensor, images: bool = True) -> dict[str, Tensor]:
        pos_s = torch.tensor([self._pos[int(i)] for i in src], dtype=torch.long)
        pos_t = torch.tensor([self._pos[int(i)] for i in tgt], dtype=torch.long)
        if not images:
            # geometry only (pre-training a landmark encoder): no pixels rendered
            out = {"label": labels, "params": params, "is_cross": cross, "clip": clip,
                   **self._landmarks(pos_s, pos_t, cross, params),
                   "has_truth": torch.ones(len(src), dtype=torch.bool)}
            return {k: v.to(self.device) for k, v in out.items()}
        source = render(self._idn[pos_s], params, self.size)
        truth = source.clone()
        target = source[:, 0].clone()
        if bool(cross.any()):
            sel = cross.nonzero().reshape(-1)
            # one call renders the neutral target (frame 0) and the truth, so the target's
            # identity layers are drawn once
            idn_t = self._idn[pos_t[sel]]
            both = render(idn_t, torch.cat([neutral_params(len(sel), 1), params[sel]], 1),
                          self.size)
            target[sel] = both[:, 0]
            truth[sel] = both[:, 1:]
        out = {"source": source, "target": target, "truth": truth, "label": labels,
               **(self._landmarks(pos_s, pos_t, cross, params) if self.landmarks else {}),
               "params": params, "source_id": torch.from_numpy(src.copy()),
               "target_id": torch.from_numpy(tgt.copy()), "clip": clip, "is_cross": cross,
               "has_truth": torch.ones(len(src), dtype=torch.bool)}
        return {k: v.to(self.device) for k, v in out.items()}

    def _landmarks(self, pos_s: Tensor, pos_t: Tensor, cross: Tensor,
                   params: Tensor) -> dict[str, Tensor]:
        """The exact 68 points of the source, the target and the truth (pixels)."""
        from .landmarks import landmarks68

        # + 0.5: the renderer's pixel centres are whole numbers, a landmarker's are at i + 0.5
        # (faces.mediapipe_landmarker.PIXEL_CENTRE); training speaks the latter
        src = landmarks68(self._idn[pos_s], params, self.size) + 0.5
        truth = src.clone()
        target = src[:, 0].clone()
        if bool(cross.any()):
            sel = cross.nonzero().reshape(-1)
            both = landmarks68(self._idn[pos_t[sel]],
                               torch.cat([neutral_params(len(sel), 1), params[sel]], 1),
                               self.size) + 0.5
            target[sel] = both[:, 0]
            truth[sel] = both[:, 1:]
        return {"source_lmk": src, "target_lmk": target, "truth_lmk": truth}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"dataset index must be an int, got {type(index).__name__}")
        batch = self.get_batch([int(index)])
        return {k: v[0] for k, v in batch.items()}

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None, *,
                     cross_fraction: float | None = None, fresh: bool = True,
                     images: bool = True) -> dict[str, Tensor]:
        """A random batch, rendered in one vectorised call (keys as :meth:`get_batch`).

        With ``fresh=True`` (default, for training) every clip gets new random dynamics from
        ``generator`` on a random identity of the split, so the motions never repeat; with
        ``fresh=False`` it draws dataset items. ``clip`` is -1 for fresh clips. ``images=False``
        (with ``landmarks=True``) skips rendering: labels, params and landmarks only.
        """
        _check_int("batch_size", batch_size, 1)
        if not fresh:
            return self.get_batch(torch.randint(len(self), (batch_size,), generator=generator))
        cf = self.cross_fraction if cross_fraction is None else _prob("cross_fraction",
                                                                      cross_fraction)
        n = len(self.ids)
        pos = torch.randint(n, (batch_size,), generator=generator)
        cross = (torch.rand(batch_size, generator=generator) < cf) & (n > 1)
        off = 1 + torch.randint(max(n - 1, 1), (batch_size,), generator=generator)
        tpos = torch.where(cross, (pos + off) % n, pos)
        classes = None
        if self.classes is not None:
            pick = torch.randint(len(self.classes), (batch_size,), generator=generator)
            classes = torch.tensor(self.classes)[pick]
        params, labels = sample_dynamics(batch_size, self.T, generator, classes=classes,
                                         **self.variants)
        ids = np.asarray(self.ids, dtype=np.int64)
        return self._assemble(ids[pos.numpy()], ids[tpos.numpy()], cross, params, labels,
                              torch.full((batch_size,), -1, dtype=torch.long),
                              images=images or not self.landmarks)
