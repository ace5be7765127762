"""The renderer's entry points: identities and per-frame parameters to RGB frames.

Shapes are drawn as signed-distance fields on a coordinate grid and anti-aliased with a
smoothstep across about one pixel, so they stay smooth at any resolution. The identity-only
layers (:mod:`.layers`) are drawn once per identity and warped to each frame's head pose;
the moving features (:mod:`.features`) are drawn per frame inside their bounding boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .dynamics import neutral_params
from .features import _draw_features
from .geometry import _broadcast, _Grid, _Items, _size_hw
from .identity import Identity
from .layers import _head_layer, _static_layers
from .params import _HIGH, _LOW, NUM_PARAMS, _check_int


def _pose_flow(it: _Items, grid: _Grid, extent: tuple[float, float, float, float]) -> Tensor:
    """``grid_sample`` coordinates ``(B, H, W, 2)`` of each output pixel in the head layer."""
    u0, u1, v0, v1 = extent
    uc, uh, vc, vh = (u0 + u1) / 2, (u1 - u0) / 2, (v0 + v1) / 2, (v1 - v0) / 2
    c, s, inv = it.cos, it.sin, 1 / it.scale
    x = grid.xs.view(1, 1, -1) - it.cx
    y = grid.ys.view(1, -1, 1) - it.cy
    flow = torch.empty(len(c), grid.h, grid.w, 2, device=c.device)
    # u = ((x - cx) c + (y - cy) s) / S,  v = ((y - cy) c - (x - cx) s) / S, normalised to
    # [-1, 1] over the layer; each term is small, only the sum is a full-size tensor
    torch.add(x * (c * inv / uh), y * (s * inv / uh) - uc / uh, out=flow[..., 0])
    torch.add(x * (-s * inv / vh), y * (c * inv / vh) - vc / vh, out=flow[..., 1])
    return flow


def _chunks(n: int, t: int, per: int) -> list[tuple[int, int, int, int]]:
    """Split ``n`` clips of ``t`` frames into (n0, n1, t0, t1) blocks of about ``per`` frames:
    whole clips together, or the frames of one clip in pieces."""
    if t <= per:
        k = per // t
        return [(n0, min(n0 + k, n), 0, t) for n0 in range(0, n, k)]
    return [(i, i + 1, t0, min(t0 + per, t)) for i in range(n) for t0 in range(0, t, per)]


def render(identity: Identity, params: Tensor, size: int | tuple[int, int] = 64, *,
           crop: bool = True, chunk_pixels: int = 1 << 19) -> Tensor:
    """Render faces: ``(N, T, 3, H, W)`` float32 in [0, 1].

    ``identity`` has ``N`` faces and ``params`` is ``(N, T, P)`` (either may have ``N = 1``
    and is then broadcast). Frame ``t`` of face ``n`` depends only on ``identity[n]`` and
    ``params[n, t]``, so ``render(B, params_A)`` is B moving exactly like clip A.
    ``crop=False`` evaluates the features on the whole image (slower; same pixels).
    Work goes in blocks of about ``chunk_pixels`` pixels, which bounds the memory used
    beyond the output and keeps the working set in cache.
    """
    identity, params = _broadcast(identity, params)
    h, w = _size_hw(size)
    _check_int("chunk_pixels", chunk_pixels, 1)
    device = identity.device
    n, t = params.shape[:2]
    params = params.to(device=device, dtype=torch.float32)
    params = torch.maximum(torch.minimum(params, _HIGH.to(device)), _LOW.to(device))
    grid = _Grid(h, w, device)
    out = torch.empty(n, t, 3, h, w, device=device)
    cached: tuple[int, int] | None = None
    with torch.no_grad():
        for n0, n1, t0, t1 in _chunks(n, t, max(1, chunk_pixels // (h * w))):
            if cached != (n0, n1):  # identity-only layers, once per identity
                idn = identity[n0:n1]
                bg, shoulders, r0 = _static_layers(idn, grid)
                head, extent = _head_layer(idn, h)
                cached = (n0, n1)
            k, tc = n1 - n0, t1 - t0
            img = out[n0:n1, t0:t1]
            img.copy_(bg.unsqueeze(1).expand(k, tc, 3, h, w))
            face_of = torch.arange(k, device=device).repeat_interleave(tc)
            it = _Items(idn[face_of], params[n0:n1, t0:t1].reshape(k * tc, NUM_PARAMS))
            # the rigid head: one bilinear warp of the identity's layer per frame
            flow = _pose_flow(it, grid, extent)
            warped = F.grid_sample(head, flow.view(k, tc * h, w, 2), mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
            warped = warped.view(k, 4, tc, h, w).transpose(1, 2)
            img.mul_(1 - warped[:, :, 3:]).add_(warped[:, :, :3])
            rows = img[:, :, :, r0:]
            rows.mul_(1 - shoulders[:, None, 3:]).add_(shoulders[:, None, :3])
            _draw_features(img.view(k * tc, 3, h, w), it, grid, crop)
        out.clamp_(0, 1)
    return out


def render_pair(identity_b: Identity, params_a: Tensor, size: int | tuple[int, int] = 64
                ) -> Tensor:
    """Cross-identity ground truth: identity B moving with clip A's params (= ``render``)."""
    return render(identity_b, params_a, size)


def render_neutral(identity: Identity, size: int | tuple[int, int] = 64) -> Tensor:
    """The neutral, at-rest face of each identity: ``(N, 3, H, W)`` (a clip's frame 0)."""
    return render(identity, neutral_params(len(identity)).to(identity.device), size)[:, 0]
