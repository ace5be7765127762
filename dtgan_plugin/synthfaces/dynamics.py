"""Expression dynamics: per-frame parameter clips (onset, apex, offset, blinks, head motion)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import OptionError
from .counter import _STREAM_DYNAMICS, _Cols, _hash_uniforms
from .params import (_APEX, _HIGH, _LOW, _PI, CLASS_NAMES, EXPRESSION_PARAMS, MOTION_PARAMS,
                     NUM_PARAMS, _as_index_array, _check_int, _class_index, _prob)

def apex_vectors() -> Tensor:
    """The ``(6, P)`` apex parameters of :data:`CLASS_NAMES` (row order = label)."""
    out = torch.zeros(len(CLASS_NAMES), NUM_PARAMS)
    for c, name in enumerate(CLASS_NAMES):
        for pname, value in _APEX[name].items():
            out[c, _PI[pname]] = value
    return out


def neutral_params(n: int, frames: int = 1) -> Tensor:
    """``(n, frames, P)`` zeros: the neutral face at rest (every parameter's rest value is 0)."""
    return torch.zeros(n, frames, NUM_PARAMS)


def _resolve_classes(classes: Any, n: int) -> Tensor | None:
    if classes is None:
        return None
    if isinstance(classes, (int, str)):
        classes = [classes] * n
    if isinstance(classes, Tensor):
        classes = classes.reshape(-1).tolist()
    out = torch.tensor([_class_index(c) for c in classes], dtype=torch.long)
    if len(out) != n:
        raise OptionError(f"classes has {len(out)} entries for {n} clips",
                          hint="pass one class per clip, or a single class for all")
    return out


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


#: uniforms per clip (see :func:`_dynamics_from_uniforms`); part of the format
_DYN_COLS = 64
_MOTION_MAX = {"shift_x": 0.035, "shift_y": 0.025, "roll": 0.06, "nod": 0.25, "scale": 0.03}


def _envelope(tau: Tensor, t0: Tensor, d_on: Tensor, hold: Tensor, d_off: Tensor) -> Tensor:
    """Onset–apex–offset intensity over time: 0 before ``t0``, 1 at the apex, back to 0."""
    up = _smoothstep((tau - t0) / d_on)
    down = 1 - _smoothstep((tau - t0 - d_on - hold) / d_off)
    return up * down


def _timings(t: Tensor, fit: bool) -> tuple[Tensor, ...]:
    """Onset start, onset, hold and offset durations ``(N, 1)`` each from 4 uniforms per clip."""
    t0 = 0.15 * t[:, 0]
    d_on = 0.15 + 0.25 * t[:, 1]
    hold = 0.10 + 0.25 * t[:, 2]
    d_off = 0.15 + 0.25 * t[:, 3]
    if fit:  # a concatenated half must be back to neutral before the next one starts
        total = t0 + d_on + hold + d_off
        f = torch.where(total > 0.95, 0.95 / total, torch.ones_like(total))
        t0, d_on, hold, d_off = t0 * f, d_on * f, hold * f, d_off * f
    return tuple(x.unsqueeze(1) for x in (t0, d_on, hold, d_off))


def _apex_of(apex: Tensor, lbl: Tensor, strength: Tensor, jit: Tensor) -> Tensor:
    """Per-clip apex parameters: the class apex scaled and jittered, without blinks."""
    a = apex[lbl] * strength.unsqueeze(1)
    a[:, :len(EXPRESSION_PARAMS)] += jit
    a[:, _PI["blink"]] = 0.0  # blinks are drawn separately, as events
    return a


def _add_head_motion(params: Tensor, motion: Tensor, tau: Tensor) -> None:
    """Add smooth head motion to ``params`` in place: two sinusoids per motion parameter,
    anchored at 0 on frame 0."""
    for m, name in enumerate(MOTION_PARAMS):
        amp = _MOTION_MAX[name] * motion[:, m, :, 0]
        freq = 0.3 + 1.2 * motion[:, m, :, 1]
        phase = 2 * math.pi * motion[:, m, :, 2]
        wave = torch.sin(2 * math.pi * freq.unsqueeze(2) * tau.unsqueeze(1)
                         + phase.unsqueeze(2)) - torch.sin(phase).unsqueeze(2)
        params[:, :, _PI[name]] += (amp.unsqueeze(2) * wave).sum(1) * (
            1 - 2 * (motion[:, m, 0, 2] > 0.5).float()).unsqueeze(1)


def _blink_events(blinks: Tensor, n: int, frames: int) -> Tensor:
    """Eyelid closure ``(N, T)`` of up to two blinks per clip."""
    # blinks are events in frames, not clip fractions: a blink lasts ~3-4 frames at 25 fps
    t_idx = torch.arange(frames, dtype=torch.float32).unsqueeze(0)
    blink = torch.zeros(n, frames)
    for b, p_blink in enumerate((0.6, 0.25)):
        present = blinks[:, b, 0] < p_blink
        half = 1.2 + 1.0 * blinks[:, b, 2]
        lo, hi = half + 0.5, torch.full_like(half, frames - 1.0)
        centre = lo + (hi - lo).clamp(min=0) * blinks[:, b, 1]
        ok = present & (hi >= lo)
        prof = _smoothstep(1 - (t_idx - centre.unsqueeze(1)).abs() / half.unsqueeze(1))
        blink = torch.maximum(blink, prof * ok.float().unsqueeze(1))
    return blink


def _dynamics_from_uniforms(u: Tensor, frames: int, classes: Tensor | None, reverse: float,
                            speed_change: float, concat: float
                            ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Map ``(N, _DYN_COLS)`` uniforms to per-frame params ``(N, T, P)`` (fixed columns)."""
    n = u.shape[0]
    c = _Cols(u.float())
    k = len(CLASS_NAMES)
    drawn = (c.take() * k).long().clamp_(max=k - 1)
    labels = drawn if classes is None else classes
    intensity = c.range(0.6, 1.0)
    jitter = 0.08 * (2 * c.take(8) - 1)
    timing = c.take(4)
    motion = c.take(30).reshape(n, 5, 2, 3)
    blinks = c.take(6).reshape(n, 2, 3)
    r_rev, r_speed, speed_u, r_cat, second_u, second_int = (c.take() for _ in range(6))
    timing2 = c.take(4)
    assert c.i <= _DYN_COLS, c.i

    apex = apex_vectors()
    tau = torch.linspace(0, 1, frames) if frames > 1 else torch.zeros(1)
    tau = tau.unsqueeze(0)  # (1, T)

    is_cat = r_cat < concat
    is_speed = r_speed < speed_change
    is_rev = r_rev < reverse
    speed = torch.where(is_speed, torch.exp((2 * speed_u - 1) * math.log(2.0)),
                        torch.ones(n))
    # the second expression of a concatenated clip is always a different class
    second = (labels + 1 + (second_u * (k - 1)).long().clamp_(max=k - 2)) % k
    second = torch.where(is_cat, second, torch.full_like(second, -1))

    t_plain = tau * speed.unsqueeze(1)
    env_plain = _envelope(t_plain, *_timings(timing, fit=False))
    env_a = _envelope(tau * 2 * speed.unsqueeze(1), *_timings(timing, fit=True))
    env_b = _envelope((tau - 0.5).clamp(min=0) * 2 * speed.unsqueeze(1),
                      *_timings(timing2, fit=True))
    env1 = torch.where(is_cat.unsqueeze(1), env_a, env_plain)
    env2 = torch.where(is_cat.unsqueeze(1), env_b, torch.zeros_like(env_b))
    apex1 = _apex_of(apex, labels, intensity, jitter)
    apex2 = _apex_of(apex, second.clamp(min=0), 0.6 + 0.4 * second_int, jitter)
    params = env1.unsqueeze(2) * apex1.unsqueeze(1) + env2.unsqueeze(2) * apex2.unsqueeze(1)
    _add_head_motion(params, motion, tau)
    blink = _blink_events(blinks, n, frames)
    params[:, :, _PI["blink"]] = torch.maximum(params[:, :, _PI["blink"]], blink)

    params = torch.where(is_rev.view(n, 1, 1), params.flip(1), params)
    params = torch.maximum(torch.minimum(params, _HIGH), _LOW)
    meta = {"second_label": second, "reversed": is_rev, "speed": speed, "concat": is_cat}
    return params, labels.clone(), meta


def sample_dynamics(n_clips: int, frames: int, generator: torch.Generator | None = None, *,
                    classes: Sequence[int | str] | Tensor | int | str | None = None,
                    reverse: float | bool = False, speed_change: float | bool = False,
                    concat: float | bool = False, return_meta: bool = False,
                    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Random expression clips: ``(params (N, T, P), labels (N,))``.

    Each clip goes neutral → apex → back (onset, apex, offset at random speeds and apex
    intensities) for one of the six expressions, with random blinks and smooth small head
    motion. Frame 0 is exactly neutral (all zeros) unless the clip is reversed.

    ``classes`` fixes the expression per clip (names or labels; one value for all).
    ``reverse``, ``speed_change`` and ``concat`` are probabilities (``True`` = always) of the
    "arbitrary dynamics" variants: time-reversed, played 0.5–2× faster, and two expressions
    one after the other (``labels`` is then the first one's; ``return_meta=True`` adds a dict
    with ``second_label`` (-1 if none), ``reversed``, ``speed`` and ``concat`` per clip).
    """
    _check_int("n_clips", n_clips, 1)
    _check_int("frames", frames, 1)
    u = torch.rand(n_clips, _DYN_COLS, generator=generator)
    params, labels, meta = _dynamics_from_uniforms(
        u, frames, _resolve_classes(classes, n_clips), _prob("reverse", reverse),
        _prob("speed_change", speed_change), _prob("concat", concat))
    return (params, labels, meta) if return_meta else (params, labels)


def clip_dynamics(seed: int, identity_indices: Sequence[int] | Tensor,
                  clip_indices: Sequence[int] | Tensor, frames: int, *,
                  classes: Sequence[int | str] | Tensor | None = None,
                  reverse: float = 0.0, speed_change: float = 0.0, concat: float = 0.0,
                  ) -> tuple[Tensor, Tensor]:
    """The dynamics of clip ``j`` of identity ``i`` in world ``seed``, for each pair ``(i, j)``.

    Like :func:`sample_dynamics`, but each clip is a pure function of ``(seed, i, j)``.
    Without ``classes`` the class cycles with ``(i + j) % 6`` so every identity shows every
    expression.
    """
    ids, clips = _as_index_array(identity_indices), _as_index_array(clip_indices)
    if len(ids) != len(clips):
        raise OptionError("identity_indices and clip_indices must have the same length")
    _check_int("frames", frames, 1)
    cls = _resolve_classes(classes, len(ids))
    if cls is None:
        cls = torch.from_numpy((ids + clips) % len(CLASS_NAMES)).long()
    u = _hash_uniforms(seed, _STREAM_DYNAMICS, [ids, clips], _DYN_COLS)
    params, labels, _ = _dynamics_from_uniforms(u, frames, cls, _prob("reverse", reverse),
                                                _prob("speed_change", speed_change),
                                                _prob("concat", concat))
    return params, labels
