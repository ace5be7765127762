"""The two-stage trainer: encoder pre-training, then the generator against D_S and D_T.

Every step is a pure function of (weights, optimiser state, seed, step, rank): the batch and the
augmentation RNG are seeded from the step, so a run killed at any moment and resumed from its
last checkpoint continues the same loss curve. Runs under ``torchrun`` with DDP (gloo on CPU,
nccl on CUDA); rank 0 writes logs, samples and checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..atomic import atomic_output
from ..errors import ConfigError
from .augment import ClipAugment
from .landmark_augment import LANDMARK_KEYS, LandmarkClipAugment, jitter_landmarks
from .config import TrainConfig
from .datasets import BatchSource
from .losses import (d_fake_loss, d_loss, feature_matching, g_loss, masked_l1,
                     r1_penalty)

STATE_FILE = "train_state.safetensors"
MODEL_FILE = "model.safetensors"
#: folder of the checkpoints kept along the run (run.keep_checkpoints)
KEPT_DIR = "checkpoints"
LOG_FILE = "log.jsonl"


@dataclass
class DistInfo:
    """Rank, world size and whether DDP is on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0


def _init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def _to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1


@dataclass
class _GanInputs:
    """What one GAN step's losses share: the batch in [-1,1], G's output and D_S's picks."""

    tgt: torch.Tensor  # (B,3,H,W) the target faces
    truth: torch.Tensor  # (B,T,3,H,W) the true clips (the target moved by the source)
    d: torch.Tensor  # the source's dynamics from the encoder
    fake: torch.Tensor  # (B,T,3,H,W) G's output
    has_truth: torch.Tensor  # (B,) clips whose truth counts for the L1 and feature matching
    real_mask: torch.Tensor  # (B,) clips whose truth the discriminators see as real
    rows: torch.Tensor  # (B,1) batch index for D_S's frame picks
    pick: torch.Tensor  # (B,k) the frames D_S sees of each clip
    tgt_lmk: torch.Tensor | None = None  # (B,68,2) target landmarks (landmark models)
    truth_lmk: torch.Tensor | None = None  # (B,T,68,2) the truth's landmarks


class _PretrainNet(torch.nn.Module):
    """Encoder + its heads as one forward, so DDP can wrap stage 1."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B,T,3,H,W) in [-1,1] → (class logits, parameter estimates) per step."""
        h, _ = self.encoder.encode(frames)
        return self.encoder.classify(h), self.encoder.regress(h)


class Trainer:
    """Trains a DTGAN from a :class:`TrainConfig`; ``run()`` returns a summary dict."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        from ..system import resolve_device
        from ..models import build_discriminators, build_model
        from ..models.config import ModelConfig

        self.cfg = cfg
        self.progress = progress
        self._t0: float | None = None  # when run() started (the "time" LR schedule)
        if cfg.run.num_threads:
            torch.set_num_threads(cfg.run.num_threads)
        device = resolve_device(cfg.run.device)
        self.dist = _init_distributed(device)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        self.out = Path(cfg.run.out_dir)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        model_dict = dict(cfg.model)
        model_dict.setdefault("resolution", cfg.data.size)
        if cfg.data.source == "synth":
            # the regression head predicts the renderer's per-frame parameters
            from ..synthfaces import NUM_PARAMS

            enc = dict(model_dict.get("encoder", {}))
            enc.setdefault("n_params", NUM_PARAMS)
            model_dict["encoder"] = enc
        self.model_cfg = ModelConfig.from_dict(model_dict)
        if self.model_cfg.resolution != cfg.data.size:
            raise ConfigError(f"model.resolution {self.model_cfg.resolution} differs from "
                              f"data.size {cfg.data.size}")
        torch.manual_seed(cfg.run.seed)
        self.model = build_model(self.model_cfg).to(device)
        self.discs = build_discriminators(self.model_cfg).to(device)
        self.d_s, self.d_t = self.discs.frame, self.discs.clip
        self.pre_net = _PretrainNet(self.model.encoder)
        o = cfg.optim
        e_params = list(self.model.encoder.parameters())
        if hasattr(self.model.generator, "points_for") and self.model_cfg.uses_landmarks:
            # a landmark model pre-trains its motion head with the encoder, on geometry alone
            e_params += list(self.model.generator.motion.parameters())
        self.opt_e = torch.optim.Adam(e_params, lr=cfg.pretrain.lr)
        g_params = list(self.model.generator.parameters())
        if not cfg.pretrain.freeze:
            g_params += list(self.model.encoder.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=o.lr_g, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam(self.discs.parameters(), lr=o.lr_d,
                                      betas=(o.beta1, o.beta2))
        # batches carry landmarks when the model reads any; the encoder reads them when its
        # dynamics input is landmarks
        self.landmarks = self.model_cfg.needs_landmarks
        self.lmk_dynamics = self.model_cfg.uses_landmarks
        if self.landmarks and cfg.data.source != "synth":
            raise ConfigError("a model that reads landmarks trains on procedural faces (their "
                              "exact landmarks); set data.source = \"synth\"",
                              hint="or train a pixels model: model.dynamics_input = \"pixels\" "
                                   "and a warp or synth generator")
        self.augment = ClipAugment(cfg.augment).to(device)
        self.augment_lmk = LandmarkClipAugment(cfg.augment).to(device)
        self.data = BatchSource(cfg, split="train", rank=self.dist.rank)
        self.val_data = (BatchSource(cfg, split="val", rank=0) if cfg.data.source == "synth"
                         else None)
        self.step = 0
        self.total_steps = cfg.pretrain.steps + o.steps
        self.amp = cfg.run.amp and device.type == "cuda"
        if cfg.run.init_from and not resume:
            self._init_from(Path(cfg.run.init_from))
        self._wrap_ddp()
        if resume:
            self._resume()

    # -- set-up helpers ---------------------------------------------------------------------

    def _wrap_ddp(self) -> None:
        self.g_train: Any = self.model.generator
        self.e_train: Any = self.pre_net
        self.ds_train: Any = self.d_s
        self.dt_train: Any = self.d_t
        if not self.dist.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.g_train = DDP(self.model.generator, device_ids=ids)
        self.e_train = DDP(self.pre_net, device_ids=ids)
        self.ds_train = DDP(self.d_s, device_ids=ids)
        self.dt_train = DDP(self.d_t, device_ids=ids)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.model.encoder, "generator": self.model.generator,
                "discriminators": self.discs}

    def _optims(self) -> dict[str, torch.optim.Optimizer]:
        return {"e": self.opt_e, "g": self.opt_g, "d": self.opt_d}

    def _resume(self) -> None:
        from .state import load_state

        path = self.out / STATE_FILE
        if not path.exists():
            raise ConfigError(f"--resume: no checkpoint at '{path}'",
                              hint="run without --resume to start a new run")
        meta = load_state(path, self._modules(), self._optims())
        if meta.get("config") != self.cfg.to_dict():
            raise ConfigError(f"--resume: '{path}' was written with a different config",
                              hint="resume with the same config file, or choose another out_dir")
        self.step = int(meta["step"])
        if self.dist.main:
            self._truncate_log(self.step)

    def _init_from(self, path: Path) -> None:
        """Fine-tuning: take the weights of another run's training state, not its optimisers."""
        from .state import load_state

        if not path.exists():
            raise ConfigError(f"run.init_from: '{path}' does not exist",
                              hint="point it at another run's train_state.safetensors")
        # the discriminators are not shipped: a fine-tune may change their options
        meta = load_state(path, self._modules(), {}, widen=frozenset({"discriminators"}))
        if meta["widened"] and self.dist.main:
            print(f"run.init_from: {len(meta['widened'])} discriminator tensors did not fit "
                  f"and start fresh or widened: {', '.join(meta['widened'])}", file=sys.stderr)

    def _truncate_log(self, step: int) -> None:
        # entries logged after the checkpoint will be produced again, identically
        log = self.out / LOG_FILE
        if not log.exists():
            return
        keep = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
        with atomic_output(log) as tmp:
            tmp.write_text("".join(x + "\n" for x in keep))

    # -- the steps --------------------------------------------------------------------------

    def _lr_factor(self, gan_step: int) -> float:
        o = self.cfg.optim
        if o.schedule == "time" and self._t0 is not None:
            # the fraction of the run done: of its steps or of its time, whichever is further
            done = max(gan_step / max(1, o.steps),
                       (time.time() - self._t0) / self.cfg.run.time_limit_s)
            if done < o.decay_start or o.decay_start >= 1.0:
                return 1.0
            return max(0.0, 1.0 - (done - o.decay_start) / (1.0 - o.decay_start))
        start = int(o.steps * o.decay_start)
        if gan_step < start or o.steps <= start:
            return 1.0
        return max(0.0, 1.0 - (gan_step - start) / max(1, o.steps - start))

    def _seed_step(self) -> None:
        torch.manual_seed((self.cfg.run.seed * 100_003 + self.dist.rank) * 1_000_003 + self.step)

    def _batch(self, batch_size: int | None = None,
               images: bool = True) -> dict[str, torch.Tensor]:
        b = self.data.next_batch(self.step, batch_size, images=images)
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                for k, v in b.items()}

    def _pretrain_step(self) -> dict[str, float]:
        if not self.data.has_labels:
            raise ConfigError("encoder pre-training needs labelled data (data.source = 'synth')",
                              hint="set pretrain.steps = 0 and pretrain.freeze = false for "
                                   "label-free joint training on your own videos")
        if self.lmk_dynamics:
            b = self._batch(self.cfg.pretrain.batch_size, images=False)
            lm = self.augment_lmk.points_only({k: b[k] for k in LANDMARK_KEYS},
                                              self.cfg.data.size)
            enc_in = jitter_landmarks(lm["source_lmk"], self.cfg.augment.landmark_noise)
        else:
            b = self._batch(self.cfg.pretrain.batch_size)
            _, src, _ = self.augment(b["target"], b["source"], b["truth"])
            enc_in = _to_model_range(src)
        self.e_train.train()
        logits, params = self.e_train(enc_in)
        t = logits.shape[1]
        # the expression is ambiguous at the neutral onset: weight later steps more
        w = torch.linspace(0.2, 1.0, t, device=logits.device)
        ce = F.cross_entropy(logits.flatten(0, 1), b["label"].repeat_interleave(t),
                             reduction="none").view(-1, t)
        loss_c = (ce * w).sum(1).div(w.sum()).mean()
        loss_p = F.mse_loss(params, b["params"].float())
        loss = self.cfg.pretrain.weight_class * loss_c + self.cfg.pretrain.weight_params * loss_p
        logs: dict[str, float] = {}
        if self.lmk_dynamics and hasattr(self.model.generator, "points_for") \
                and self.cfg.loss.w_landmarks > 0:
            # the motion head learns to retarget the source's motion onto the target's face
            d = self._asd(enc_in, grad=True)
            points = self.model.generator.points_for(lm["target_lmk"], d)
            lmk = (points - lm["truth_lmk"]).abs().mean()
            loss = loss + self.cfg.loss.w_landmarks * lmk
            logs["pre_lmk_px"] = lmk.item()
        self.opt_e.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_e.step()
        acc = (logits[:, -1].argmax(-1) == b["label"]).float().mean()
        return {"pre_class": loss_c.item(), "pre_params": loss_p.item(), "pre_acc": acc.item(),
                **logs}

    def _augment_landmarks(self, b: dict[str, torch.Tensor]) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return self.augment_lmk(b["target"], b["source"], b["truth"],
                                {k: b[k] for k in LANDMARK_KEYS})

    def _generate(self, gen: Any, tgt: torch.Tensor, d: torch.Tensor,
                  tgt_lmk: torch.Tensor | None) -> torch.Tensor:
        """G's frames; a geometry-conditioned generator also gets the target's landmarks."""
        if getattr(self.model.generator, "needs_landmarks", False):
            return gen(tgt, d, tgt_lmk)
        return gen(tgt, d)

    def _asd(self, frames: torch.Tensor, grad: bool = False) -> torch.Tensor:
        enc = self.model.encoder
        with torch.set_grad_enabled(grad):
            state = enc.init_state(frames[:, 0])
            d, _ = enc.step(frames, state)
        return d

    def _set_lrs(self, factor: float) -> None:
        """Scale G's and D's base learning rates by the schedule's ``factor``."""
        for opt, lr in ((self.opt_g, self.cfg.optim.lr_g), (self.opt_d, self.cfg.optim.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def _gan_forward(self, ac: torch.autocast) -> _GanInputs:
        """Augment a batch, take the source's dynamics and run G; pick D_S's frames."""
        cfg, L = self.cfg, self.cfg.loss
        b = self._batch()
        lm: dict[str, torch.Tensor] = {}
        if self.landmarks:
            tgt, src, truth, lm = self._augment_landmarks(b)
        else:
            tgt, src, truth = self.augment(b["target"], b["source"], b["truth"])
        tgt, src, truth = _to_model_range(tgt), _to_model_range(src), _to_model_range(truth)
        cross_ok = torch.tensor(L.cross_truth, device=self.device)
        has_truth = b["has_truth"] & (~b["is_cross"] | cross_ok)
        if cfg.pretrain.freeze:
            self.model.encoder.eval()
        enc_in = (jitter_landmarks(lm["source_lmk"], cfg.augment.landmark_noise)
                  if self.lmk_dynamics else src)
        d = self._asd(enc_in, grad=not cfg.pretrain.freeze)
        with ac:
            fake = self._generate(self.g_train, tgt, d, lm.get("target_lmk"))
        bsz, t = fake.shape[:2]
        k = min(L.ds_frames, t)
        # one randperm per clip, in batch order: the draws are part of the step's RNG stream
        pick = torch.stack([torch.randperm(t, device=self.device)[:k] for _ in range(bsz)])
        rows = torch.arange(bsz, device=self.device)[:, None]
        return _GanInputs(tgt, truth, d, fake, has_truth, b["has_truth"], rows, pick,
                          lm.get("target_lmk"), lm.get("truth_lmk"))

    def _ds_loss(self, x: _GanInputs, logs: dict[str, float]) -> torch.Tensor:
        """D_S's loss on (target, true frame) against (target, output frame), plus R1."""
        L, m = self.cfg.loss, x.real_mask
        real_in = x.truth[x.rows, x.pick][m]
        tg = x.tgt[m]
        real_in = real_in.detach().requires_grad_(L.r1 > 0)
        r_logit = self.ds_train(tg, real_in)
        f_logit = self.ds_train(x.tgt, x.fake[x.rows, x.pick].detach())
        ld = d_loss(r_logit.float(), f_logit.float(), L.gan)
        if L.r1 > 0:
            ld = ld + 0.5 * L.r1 * r1_penalty(r_logit.float(), real_in)
        logs["d_s"] = ld.item()
        return ld

    def _dt_loss(self, x: _GanInputs, logs: dict[str, float]) -> torch.Tensor:
        """D_T's loss on (true clip, dynamics) against (output clip, dynamics), plus mismatch."""
        L, m = self.cfg.loss, x.real_mask
        r_clips, r_dyn = x.truth[m], x.d[m].detach()
        r_logit = self.dt_train(r_clips, r_dyn)
        f_logit = self.dt_train(x.fake.detach(), x.d.detach())
        ld = d_loss(r_logit.float(), f_logit.float(), L.gan)
        if L.dt_mismatch > 0 and r_clips.shape[0] > 1:
            # each real clip with its neighbour's dynamics: real-looking
            # motion that does not match the source must score as fake
            m_logit = self.dt_train(r_clips, r_dyn.roll(1, 0))
            lm = d_fake_loss(m_logit.float(), L.gan)
            ld = ld + L.dt_mismatch * lm
            logs["d_t_mismatch"] = lm.item()
        logs["d_t"] = ld.item()
        return ld

    def _d_step(self, x: _GanInputs, ac: torch.autocast, logs: dict[str, float]) -> None:
        """One update of the enabled discriminators (real = the truth clip)."""
        L = self.cfg.loss
        with ac:
            loss_d = x.fake.new_zeros(())
            if L.use_ds:
                loss_d = loss_d + self._ds_loss(x, logs)
            if L.use_dt:
                loss_d = loss_d + self._dt_loss(x, logs)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

    def _g_adv_loss(self, x: _GanInputs, loss: torch.Tensor,
                    logs: dict[str, float]) -> torch.Tensor:
        """``loss`` plus G's adversarial and feature-matching terms (D's weights frozen)."""
        L = self.cfg.loss
        # D's weights need no gradients in G's step; saves a third of the backward
        for p in [*self.d_s.parameters(), *self.d_t.parameters()]:
            p.requires_grad_(False)
        if L.use_ds:
            # the unwrapped D: its weights get no update here, so DDP must not sync them
            f_logit = self.d_s(x.tgt, x.fake[x.rows, x.pick])
            adv_s = g_loss(f_logit.float(), L.gan)
            loss = loss + L.w_spatial * adv_s
            logs["g_s"] = adv_s.item()
        if L.use_dt:
            adv_t = g_loss(self.d_t(x.fake, x.d.detach()).float(), L.gan)
            loss = loss + L.w_temporal * adv_t
            logs["g_t"] = adv_t.item()
        if L.w_fm > 0 and bool(x.has_truth.any()):
            fm = self._feature_matching(x.tgt, x.fake, x.truth, x.d, x.has_truth, x.rows,
                                        x.pick, logs)
            loss = loss + L.w_fm * fm
        return loss

    def _g_loss(self, x: _GanInputs, ac: torch.autocast, adv_on: bool,
                logs: dict[str, float]) -> torch.Tensor:
        """G's total loss: reconstruction, adversarial terms and dynamics consistency."""
        L = self.cfg.loss
        with ac:
            loss_g = x.fake.new_zeros(()).float()
            rec = masked_l1(x.fake.float(), x.truth.float(), x.has_truth)
            loss_g = loss_g + L.w_rec * rec
            logs["l1"] = rec.item()
            if adv_on:
                # added term by term to loss_g: the float sum's order is part of the result
                loss_g = self._g_adv_loss(x, loss_g, logs)
            points = None
            if x.tgt_lmk is not None and (L.w_landmarks > 0 or (L.w_dyn > 0
                                                               and self.lmk_dynamics)):
                points = self.model.generator.points_for(x.tgt_lmk, x.d)
            if points is not None and L.w_landmarks > 0 and x.truth_lmk is not None:
                # L1 in pixels of the working size, over the clips with ground truth
                err = (points - x.truth_lmk).abs().mean((1, 2, 3))
                lmk = (err * x.has_truth).sum() / x.has_truth.sum().clamp_min(1)
                loss_g = loss_g + L.w_landmarks * lmk
                logs["lmk_px"] = lmk.item()
            if L.w_dyn > 0:
                # the output's own dynamics: re-encoded from its frames, or for a landmark
                # model from the landmarks the generator moved the target's to
                d_fake = self._asd(x.fake.float() if points is None else points, grad=True)
                dyn = F.mse_loss(d_fake, x.d.detach())
                loss_g = loss_g + L.w_dyn * dyn
                logs["dyn"] = dyn.item()
        return loss_g

    def _g_update(self, loss_g: torch.Tensor) -> None:
        """Backward G's loss, sync the joint encoder's grads, clip, step; unfreeze D."""
        cfg = self.cfg
        frozen = cfg.pretrain.freeze
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.dist.enabled and not frozen:
            # joint mode: the encoder is outside G's DDP wrapper, so average its grads here
            import torch.distributed as dist

            for p in self.model.encoder.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.dist.world
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.generator.parameters(), cfg.optim.grad_clip)
        self.opt_g.step()
        for p in [*self.d_s.parameters(), *self.d_t.parameters()]:
            p.requires_grad_(True)
        if frozen:
            for p in self.model.encoder.parameters():
                p.grad = None

    def _gan_step(self) -> dict[str, float]:
        """One stage-2 step: the discriminator update(s), then the generator's."""
        cfg, L = self.cfg, self.cfg.loss
        gan_step = self.step - cfg.pretrain.steps
        factor = self._lr_factor(gan_step)
        self._set_lrs(factor)
        adv_on = gan_step >= L.adv_start and (L.use_ds or L.use_dt)
        ac = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)
        x = self._gan_forward(ac)
        logs: dict[str, float] = {}
        if adv_on and bool(x.real_mask.any()):
            for _ in range(cfg.optim.d_steps):
                self._d_step(x, ac, logs)
        loss_g = self._g_loss(x, ac, adv_on, logs)
        self._g_update(loss_g)
        logs["g_total"] = loss_g.item()
        logs["lr"] = cfg.optim.lr_g * factor
        return logs

    def _feature_matching(self, tgt: torch.Tensor, fake: torch.Tensor, truth: torch.Tensor,
                          d: torch.Tensor, has_truth: torch.Tensor, rows: torch.Tensor,
                          pick: torch.Tensor, logs: dict[str, float]) -> torch.Tensor:
        """L1 between each enabled D's hidden features of the output and of its true clip.

        A learned perceptual loss: D_T's features carry motion (and, with
        ``clip_input="frames+diff"``, frame differences), so matching them asks for the true
        clip's motion, not only for plausible motion.
        """
        L, m = self.cfg.loss, has_truth
        dm = d[m].detach()
        # (log name, discriminator, its inputs for the output, the same for the truth)
        pairs: list[tuple[str, Any, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]] = []
        if L.use_ds:
            pairs.append(("fm_s", self.d_s, (tgt[m], fake[rows, pick][m]),
                          (tgt[m], truth[rows, pick][m])))
        if L.use_dt:
            pairs.append(("fm_t", self.d_t, (fake[m], dm), (truth[m], dm)))
        total = fake.new_zeros((), dtype=torch.float32)
        for name, disc, fake_in, real_in in pairs:
            with torch.no_grad():
                real_f = disc.features(*real_in)
            fm = feature_matching(disc.features(*fake_in), real_f)
            logs[name] = fm.item()
            total = total + fm
        return total

    # -- outputs ----------------------------------------------------------------------------

    def save(self) -> None:
        """Write the training state and the inference checkpoint (rank 0, atomically)."""
        if not self.dist.main:
            return
        from ..models.checkpoint import save_checkpoint
        from .state import save_state

        meta = {"step": self.step, "config": self.cfg.to_dict()}
        save_state(self.out / STATE_FILE, self._modules(), self._optims(), meta)
        extra = {"step": self.step, "train_config": self.cfg.to_dict()}
        save_checkpoint(self.out / MODEL_FILE, self.model, extra=extra)
        if self.cfg.run.keep_checkpoints:
            kept = self.out / KEPT_DIR
            kept.mkdir(exist_ok=True)
            save_checkpoint(kept / f"model_{self.step:06d}.safetensors", self.model, extra=extra)

    @torch.no_grad()
    def validate(self, batches: int = 2) -> dict[str, float]:
        """L1 on held-out identities (self and cross pairs) vs the static baseline."""
        if self.val_data is None:
            return {}
        self.model.eval()
        l1 = base = 0.0
        for i in range(batches):
            b = self.val_data.next_batch(10_000 + i, batch_size=8, cross_fraction=0.5)
            tgt = _to_model_range(b["target"].to(self.device))
            truth = b["truth"].to(self.device)
            fake = (self._generate_eval(b, tgt) + 1) / 2
            l1 += float((fake - truth).abs().mean())
            base += float((b["target"].to(self.device).unsqueeze(1) - truth).abs().mean())
        self.model.train()
        return {"val_l1": l1 / batches, "val_static_l1": base / batches}

    def _generate_eval(self, b: dict[str, torch.Tensor], tgt: torch.Tensor) -> torch.Tensor:
        """G's output for an unaugmented batch (the exact landmarks for a landmark model)."""
        if self.lmk_dynamics:
            enc_in = b["source_lmk"].to(self.device)
        else:
            enc_in = _to_model_range(b["source"].to(self.device))
        lmk = b["target_lmk"].to(self.device) if self.landmarks else None
        return self._generate(self.model.generator, tgt, self._asd(enc_in), lmk)

    @torch.no_grad()
    def write_samples(self) -> None:
        """Grid PNG and GIF of target | source | output | truth on held-out identities."""
        if not self.dist.main:
            return
        from .visuals import save_sample_gif, save_sample_grid

        data = self.val_data or self.data
        b = data.next_batch(20_000, batch_size=4, cross_fraction=0.5)
        self.model.eval()
        tgt = b["target"].to(self.device)
        src = b["source"].to(self.device)
        fake = (self._generate_eval(b, _to_model_range(tgt)) + 1) / 2
        self.model.train()
        samples = self.out / "samples"
        samples.mkdir(exist_ok=True)
        args = (tgt.cpu(), src.cpu(), fake.float().cpu(), b["truth"])
        save_sample_grid(samples / f"step_{self.step:06d}.png", *args)
        save_sample_gif(samples / f"step_{self.step:06d}.gif", *args, fps=8)
        save_sample_grid(self.out / "samples_latest.png", *args)

    def _log(self, row: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.out / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train until the configured steps (or time limit) are done; returns a summary."""
        from tqdm import tqdm

        cfg = self.cfg
        t0 = self._t0 = time.time()
        start_step = self.step
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="it",
                   disable=not (self.progress and self.dist.main), dynamic_ncols=True)
        self.model.train()
        last: dict[str, float] = {}
        stopped_early = False
        while self.step < self.total_steps:
            self._seed_step()
            pre = self.step < cfg.pretrain.steps
            logs = self._pretrain_step() if pre else self._gan_step()
            self.step += 1
            bar.update(1)
            last = logs
            if self.step == cfg.pretrain.steps and cfg.pretrain.steps and cfg.pretrain.freeze:
                self.model.encoder.requires_grad_(False)
            if self.step % cfg.run.log_every == 0 or self.step == self.total_steps:
                row = {"step": self.step, "stage": "pretrain" if pre else "gan", **logs,
                       "elapsed_s": round(time.time() - t0, 3)}
                if not pre and self.step % cfg.run.sample_every == 0:
                    row.update(self.validate())
                self._log(row)
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()
                                 if k in ("l1", "pre_class", "d_s", "g_s")})
            if self.step % cfg.run.sample_every == 0 and not pre:
                self.write_samples()
            if self.step % cfg.run.checkpoint_every == 0:
                self.save()
            if cfg.run.time_limit_s and time.time() - t0 > cfg.run.time_limit_s:
                stopped_early = self.step < self.total_steps
                break
        bar.close()
        self.save()
        final = self.validate(batches=4)
        if self.dist.main:
            self.write_samples()
            from .visuals import plot_losses

            plot_losses(self.out / LOG_FILE, self.out / "losses.png")
        elapsed = time.time() - t0
        steps_done = self.step - start_step
        summary = {"steps": self.step, "steps_this_run": steps_done, "seconds": elapsed,
                   "it_per_s": steps_done / elapsed if elapsed > 0 else math.nan,
                   "stopped_early": stopped_early, "last": last, **final,
                   "out_dir": str(self.out)}
        if self.dist.main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train from a config; returns the summary written to ``summary.json``."""
    trainer = Trainer(cfg, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        if trainer.dist.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
