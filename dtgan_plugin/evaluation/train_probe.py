"""Train the motion probe shipped as ``dtgan_plugin/assets/motion_probe.safetensors``.

Run ``python -m dtgan_plugin.evaluation.train_probe [--steps N] [-o PATH]``. It renders a pool of
frames of **training-split** synthfaces identities (world seed ``--seed``, default 0, the
training default), half with per-frame parameters from real expression clips and half with
independently drawn parameters (so the probe cannot read one parameter off another that the
expressions happen to move with it), trains :class:`~dtgan_plugin.evaluation.probe.MotionProbe`
with light blur/noise/resampling augmentation (generated frames are softer than renders), and
reports its accuracy on frames of held-out **test-split** identities with expression clips drawn
from another seed. The held-out numbers are stored in the file's metadata and in ``report.json``
of every evaluation.

A few minutes on a 2-core CPU with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from .probe import PROBE_SIZE, MotionProbe, default_probe_path, identity_targets, save_probe


def _independent_params(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """``(n, k, P)`` parameters drawn independently: each expression parameter active half of
    the time (uniform over its range), head motion uniform over about 3x its clip amplitude."""
    from ..synthfaces import EXPRESSION_PARAMS, PARAM_NAMES, PARAM_RANGES

    p = len(PARAM_NAMES)
    lo = torch.tensor([PARAM_RANGES[name][0] for name in PARAM_NAMES])
    hi = torch.tensor([PARAM_RANGES[name][1] for name in PARAM_NAMES])
    motion_span = {"shift_x": 0.12, "shift_y": 0.08, "roll": 0.18, "nod": 0.8, "scale": 0.08}
    for name, span in motion_span.items():
        i = PARAM_NAMES.index(name)
        lo[i], hi[i] = -span, span
    u = torch.rand(n, k, p, generator=g)
    out = lo + (hi - lo) * u
    ne = len(EXPRESSION_PARAMS)
    active = torch.rand(n, k, ne, generator=g) < 0.5
    out[..., :ne] = torch.where(active, out[..., :ne], torch.zeros(()))
    return out


def _clip_frames(n: int, k: int, g: torch.Generator, frames: int = 16) -> torch.Tensor:
    """``(n, k, P)``: ``k`` random frames of ``k`` random expression clips per identity."""
    from ..synthfaces import sample_dynamics

    params, _ = sample_dynamics(n * k, frames, g, reverse=0.2, speed_change=0.3, concat=0.2)
    pick = torch.randint(frames, (n * k,), generator=g)
    return params[torch.arange(n * k), pick].reshape(n, k, -1)


def render_pool(seed: int, split: str, n_ids: int, per_id: int, g: torch.Generator, *,
                independent: float = 0.5, world_identities: int = 100_000,
                progress: bool = True) -> dict[str, torch.Tensor]:
    """Frames (uint8), their params and identity targets for ``n_ids`` identities of ``split``."""
    from tqdm import tqdm

    from ..synthfaces import identities_for, render, split_of

    ids: list[int] = []
    # random identity indices of the split, so the pool is not just the world's first faces
    while len(ids) < n_ids:
        cand = int(torch.randint(world_identities, (1,), generator=g))
        if split_of(cand) == split and cand not in ids:
            ids.append(cand)
    frames, params, idt = [], [], []
    step = 16
    bar = tqdm(total=n_ids, desc=f"render {split} pool", disable=not progress, leave=False)
    for a in range(0, n_ids, step):
        chunk = ids[a:a + step]
        idn = identities_for(seed, chunk)
        n = len(chunk)
        n_ind = int(round(per_id * independent))
        p = torch.cat([_clip_frames(n, per_id - n_ind, g), _independent_params(n, n_ind, g)], 1)
        x = render(idn, p, PROBE_SIZE)
        frames.append((x * 255).round().to(torch.uint8).reshape(n * per_id, 3, PROBE_SIZE,
                                                                PROBE_SIZE))
        params.append(p.reshape(n * per_id, -1))
        idt.append(identity_targets(idn).repeat_interleave(per_id, 0))
        bar.update(n)
    bar.close()
    return {"frames": torch.cat(frames), "params": torch.cat(params),
            "identity": torch.cat(idt), "ids": torch.tensor(ids)}


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (5x5 taps) with per-image sigma (0 = unchanged)."""
    r = torch.arange(-2, 3, dtype=x.dtype)
    s = sigma.clamp(min=1e-3).view(-1, 1)
    k1 = torch.exp(-(r.view(1, -1) ** 2) / (2 * s * s))
    k1 = k1 / k1.sum(1, keepdim=True)  # (N, 5)
    n, c, h, w = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate")
    # separable, as grouped convs with one kernel per image
    y = y.reshape(1, n * c, h + 4, w + 4)
    kx = k1.repeat_interleave(c, 0).view(n * c, 1, 1, 5)
    ky = k1.repeat_interleave(c, 0).view(n * c, 1, 5, 1)
    y = F.conv2d(F.conv2d(y, kx, groups=n * c), ky, groups=n * c)
    return y.view(n, c, h, w)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur, down-and-up resampling and noise: the softness of generated frames, not identity."""
    n = x.shape[0]
    sigma = torch.rand(n, generator=g) * 1.2 * (torch.rand(n, generator=g) < 0.6)
    x = _gaussian_blur(x, sigma)
    low = torch.rand(n, generator=g) < 0.3
    if bool(low.any()):
        small = F.interpolate(x[low], size=(32, 32), mode="bilinear", antialias=True,
                              align_corners=False)
        x[low] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    noise = torch.rand(n, 1, 1, 1, generator=g) * 0.03
    x = x + noise * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def heldout_accuracy(probe: MotionProbe, seed: int, n_ids: int = 40, per_id: int = 16,
                     dyn_seed: int = 12345) -> dict[str, Any]:
    """Per-parameter correlation/MAE and identity R² on test-split identities, clip dynamics."""
    from ..synthfaces import PARAM_NAMES

    g = torch.Generator().manual_seed(dyn_seed)
    pool = render_pool(seed, "test", n_ids, per_id, g, independent=0.0, progress=False)
    frames = pool["frames"].float() / 255
    pred, emb = probe.predict(frames)
    truth = pool["params"]
    out: dict[str, Any] = {"frames": int(frames.shape[0]), "identities": n_ids,
                           "corr": {}, "mae": {}}
    for j, name in enumerate(PARAM_NAMES):
        a, b = pred[:, j], truth[:, j]
        out["mae"][name] = float((a - b).abs().mean())
        r = torch.corrcoef(torch.stack([a, b]))[0, 1]
        out["corr"][name] = float(r) if torch.isfinite(r) else 0.0
    idt = (pool["identity"] - probe.id_mean) / probe.id_std
    ss_res = float(((emb - idt) ** 2).sum())
    ss_tot = float(((idt - idt.mean(0)) ** 2).sum())
    out["identity_r2"] = 1 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return out


def train_probe(*, steps: int = 2500, batch: int = 64, lr: float = 2e-3, seed: int = 0,
                pool_ids: int = 800, per_id: int = 16, threads: int | None = None,
                progress: bool = True, log: Any = print) -> tuple[MotionProbe, dict[str, Any]]:
    """Render the pool, train the probe, measure it on held-out identities; returns (probe, info)."""
    from tqdm import tqdm

    from ..synthfaces import PARAM_NAMES

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 777)
    t0 = time.time()
    pool = render_pool(seed, "train", pool_ids, per_id, g, progress=progress)
    t_render = time.time() - t0
    log(f"rendered {len(pool['frames'])} frames of {pool_ids} train identities in "
        f"{t_render:.0f} s")
    probe = MotionProbe(len(PARAM_NAMES)).to(memory_format=torch.channels_last)
    probe.param_mean.copy_(pool["params"].mean(0))
    probe.param_std.copy_(pool["params"].std(0).clamp(min=1e-4))
    probe.id_mean.copy_(pool["identity"].mean(0))
    probe.id_std.copy_(pool["identity"].std(0).clamp(min=1e-4))
    pn = (pool["params"] - probe.param_mean) / probe.param_std
    idn = (pool["identity"] - probe.id_mean) / probe.id_std
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    probe.train()
    n = len(pool["frames"])
    bar = tqdm(range(steps), desc="train probe", disable=not progress)
    ema = math.nan
    for step in bar:
        idx = torch.randint(n, (batch,), generator=g)
        x = augment(pool["frames"][idx].float() / 255, g)
        x = x.contiguous(memory_format=torch.channels_last)  # ~25 % faster convs on CPU
        p, i = probe.forward_normalised(x)
        loss = F.smooth_l1_loss(p, pn[idx], beta=0.5) + 0.5 * F.smooth_l1_loss(i, idn[idx],
                                                                                beta=0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        ema = value if math.isnan(ema) else 0.98 * ema + 0.02 * value
        if step % 50 == 0:
            bar.set_postfix(loss=f"{ema:.3f}")
    probe = probe.to(memory_format=torch.contiguous_format).eval()
    t_train = time.time() - t0 - t_render
    acc = heldout_accuracy(probe, seed)
    info = {"seed": seed, "steps": steps, "batch": batch, "lr": lr, "pool_identities": pool_ids,
            "frames_per_identity": per_id, "train_split": "train", "render_seconds": t_render,
            "train_seconds": t_train, "final_loss": ema, "heldout": acc}
    return probe, info


def _summary(acc: dict[str, Any]) -> str:
    from ..synthfaces import EXPRESSION_PARAMS, MOTION_PARAMS

    ce = sum(acc["corr"][p] for p in EXPRESSION_PARAMS) / len(EXPRESSION_PARAMS)
    cm = sum(acc["corr"][p] for p in MOTION_PARAMS) / len(MOTION_PARAMS)
    per = ", ".join(f"{k} {v:.2f}" for k, v in acc["corr"].items())
    return (f"held-out ({acc['frames']} frames, {acc['identities']} test identities): mean corr "
            f"expression {ce:.3f}, motion {cm:.3f}; identity R2 {acc['identity_r2']:.3f}\n"
            f"  per-parameter corr: {per}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m dtgan_plugin.evaluation.train_probe",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(default_probe_path()),
                    help="where to write the probe (default: the shipped asset)")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0, help="world seed of the training identities")
    ap.add_argument("--pool-identities", type=int, default=800)
    ap.add_argument("--frames-per-identity", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 2 or args.pool_identities < 1:
        ap.error("--steps, --batch and --pool-identities must be positive (batch >= 2)")
    probe, info = train_probe(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                              pool_ids=args.pool_identities, per_id=args.frames_per_identity,
                              threads=args.threads, progress=not args.no_progress,
                              log=lambda m: print(m, file=sys.stderr))
    path = save_probe(args.output, probe, info)
    print(_summary(info["heldout"]), file=sys.stderr)
    print(json.dumps({"path": str(path), "bytes": path.stat().st_size,
                      "train_seconds": round(info["train_seconds"], 1),
                      "render_seconds": round(info["render_seconds"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
