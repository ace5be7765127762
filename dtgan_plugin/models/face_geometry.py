"""Landmark geometry shared by the landmark encoder and the ``geowarp`` generator.

Landmarks are the 68-point iBUG 300-W layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67) in pixels, ``(..., 68, 2)`` as (x, y). A face's *frame* is the similarity that
puts the centre between its eyes at the origin, the eye line horizontal and the interocular
distance (eye centre to eye centre) at 1: the same points of a wide face and a narrow one, a
big crop and a small one, read alike in it. Torch only, differentiable, ONNX-friendly.
"""

from __future__ import annotations

import torch

from .layers import InputShapeError

N_POINTS = 68
#: the six part groups rasterised into heatmaps: jaw, brows, nose, eyes, outer lips, inner lips
PARTS: tuple[tuple[int, int], ...] = ((0, 17), (17, 27), (27, 36), (36, 48), (48, 60), (60, 68))
#: canonical y is measured from this far below the eyes (interocular units), about halfway to
#: the chin, so the heatmap window covers brows to chin evenly
_CENTRE_SHIFT = 0.9
_EPS = 1e-6


def check_points(name: str, x: torch.Tensor, dims: int) -> None:
    """Raise InputShapeError unless ``x`` is ``dims``-D and ends in (68, 2)."""
    if x.dim() != dims or tuple(x.shape[-2:]) != (N_POINTS, 2):
        lead = {3: "(B, 68, 2)", 4: "(B, T, 68, 2)"}.get(dims, "(..., 68, 2)")
        raise InputShapeError(f"{name} must be landmarks shaped {lead}, got {tuple(x.shape)}")


def face_frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The similarity of a face: ``(..., 68, 2)`` → centre ``(..., 2)`` and the linear map
    ``(..., 2, 2)`` that takes a pixel offset from the centre to canonical units."""
    right = points[..., 36:42, :].mean(-2)
    left = points[..., 42:48, :].mean(-2)
    centre = (right + left) * 0.5
    v = left - right
    iod = v.norm(dim=-1).clamp_min(_EPS)
    c, s = v[..., 0] / iod, v[..., 1] / iod
    # rotate by minus the eye line's angle, then scale by 1 / iod
    lin = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2) / iod[..., None, None]
    return centre, lin


def to_canonical(points: torch.Tensor, centre: torch.Tensor, lin: torch.Tensor) -> torch.Tensor:
    """Pixels → canonical units of a face frame (``centre``, ``lin`` from :func:`face_frame`;
    ``points`` ``(B, ..., 68, 2)`` with ``centre`` ``(B, 2)`` and ``lin`` ``(B, 2, 2)``)."""
    extra = points.dim() - 3
    c = centre.reshape(centre.shape[0], *([1] * extra), 1, 2)
    m = lin.reshape(lin.shape[0], *([1] * extra), 1, 2, 2)
    out = ((points - c).unsqueeze(-2) * m).sum(-1)
    shift = torch.tensor([0.0, _CENTRE_SHIFT], dtype=out.dtype, device=out.device)
    return out - shift


def canonical_offsets_to_pixels(offsets: torch.Tensor, lin: torch.Tensor) -> torch.Tensor:
    """Canonical displacements ``(B, ..., 68, 2)`` → pixel displacements (the inverse linear
    map of the face frame ``lin`` ``(B, 2, 2)``)."""
    inv = torch.linalg.inv(lin) if not torch.onnx.is_in_onnx_export() else _inv2(lin)
    extra = offsets.dim() - 3
    m = inv.reshape(inv.shape[0], *([1] * extra), 1, 2, 2)
    return (offsets.unsqueeze(-2) * m).sum(-1)


def _inv2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of 2×2 matrices by the closed form (no Inverse op needed in ONNX)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]


def part_heatmaps(points: torch.Tensor, size: int, extent: float, sigma: float) -> torch.Tensor:
    """Points ``(N, 68, 2)`` → six part maps ``(N, 6, size, size)`` in [0, 1].

    The maps cover the square ``[-extent, extent]²`` of the points' coordinates (so canonical
    points with ``extent`` ≈ 2.4, or pixel points of a crop centred on the origin); each part's
    map is the maximum of Gaussians of width ``sigma`` (same units) around its points.
    """
    ax = torch.linspace(-extent, extent, size, dtype=points.dtype, device=points.device)
    dx = (points[..., 0, None] - ax) ** 2  # (N, 68, size)
    dy = (points[..., 1, None] - ax) ** 2
    inv = -0.5 / (sigma * sigma)
    maps = []
    for a, b in PARTS:
        gx = torch.exp(dx[:, a:b] * inv)  # separable Gaussian: (N, k, size) per axis
        gy = torch.exp(dy[:, a:b] * inv)
        maps.append((gy.unsqueeze(-1) * gx.unsqueeze(-2)).amax(1))
    return torch.stack(maps, 1)


#: iBUG 68 index of each point's mirror image (a horizontal flip swaps left and right)
FLIP_68: tuple[int, ...] = (
    *range(16, -1, -1),                       # jaw
    *range(26, 21, -1), *range(21, 16, -1),   # brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,       # nose bridge, nostrils
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,           # inner lips
)


def lens_frame(points: torch.Tensor, corners: tuple[int, int], upper: tuple[int, ...],
               lower: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """A mouth or an eye as a lens between two parabolas through its ``corners``, per face
    (``points`` ``(N, 68, 2)``): origin (the first corner), unit axis to the other corner, unit
    normal (down the face), the corners' distance, and the heights ``(N,)`` of the parabolas
    fitted to the ``upper`` and ``lower`` points. Robust to a landmarker's jitter, and to shut
    lids whose points cross or bunch, and cheap to evaluate at every pixel."""
    origin = points[:, corners[0]]
    span = points[:, corners[1]] - origin
    length = span.norm(dim=-1).clamp_min(_EPS)
    axis = span / length[:, None]
    normal = torch.stack([-axis[:, 1], axis[:, 0]], -1)

    def height(idx: tuple[int, ...]) -> torch.Tensor:
        rel = points[:, list(idx)] - origin[:, None]
        u = ((rel * axis[:, None]).sum(-1) / length[:, None]).clamp(0.0, 1.0)
        v = (rel * normal[:, None]).sum(-1)
        basis = 4.0 * u * (1.0 - u)  # the parabola through both corners, 1 at the middle
        return (v * basis).sum(-1) / (basis * basis).sum(-1).clamp_min(_EPS)

    return origin, axis, normal, length, height(upper), height(lower)


def colours_at(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``image`` ``(B, C, H, W)`` sampled (bilinear, the border repeated) at pixel ``points``
    ``(B, P, 2)``: ``(B, C, P)``."""
    h, w = image.shape[-2:]
    grid = torch.stack([points[..., 0] / w * 2 - 1, points[..., 1] / h * 2 - 1], -1)
    return torch.nn.functional.grid_sample(image, grid[:, None].to(image.dtype),
                                           mode="bilinear", padding_mode="border",
                                           align_corners=False)[:, :, 0]
