"""``geowarp``: a generator conditioned on face geometry (DESIGN.md §12).

Per target (once per video, :meth:`GeoWarpGenerator.encode_target`): the target image, its 68
landmarks and their face frame. Per frame (:meth:`GeoWarpGenerator.render`):

1. **Motion head** — an MLP of the dynamics d_t and the target's canonical landmarks predicts
   each landmark's displacement in the target's face frame, mapped back to pixels. So the
   source's motion is *retargeted* onto the target's face shape, not copied.
2. **Sparse → dense** — a thin-plate spline through the moved landmarks and fixed anchors on
   the frame border says where each output pixel samples the target: exact at the landmarks,
   smooth between them, the background still. (Measured on carphone with the source's own
   retargeted landmarks: a Gaussian-weighted average of the displacements, the cheaper choice,
   kept only 0.66-0.82 of the motion and correlated at 0.66-0.81; the spline 0.89 and 0.87.)
3. **Refinement U-Net** — reads the warped target, the coarse flow and the part heatmaps of
   the moved and the resting landmarks (with FiLM of d_t at the bottleneck), and outputs a
   flow correction, an occlusion mask and a residual that paints what a warp cannot make
   (the inside of an opening mouth, closing eyelids).

frame = tanh(atanh(warp(target, coarse + correction)) + (1 − mask) · residual).

With ``generator_cfg.mouth_cavity`` the spline's warp inside a mouth opened wider than at rest
is replaced (:mod:`.mouth`): the lips' content moves rigidly and the new gap is painted as
the mouth's cavity. ``render(detail=...)`` applies the flow found at the working size to a
larger copy of the target, so an output above 128 px keeps the photo's own detail.
With ``generator_cfg.head_outline`` an outline around the skull and hair joins the spline's
points, moved with the head (:mod:`.head_outline`), so the hair turns with the face. With
``generator_cfg.body_anchors`` anchors below the jaw join them too and keep the neck, collar
and shoulders nearly still (:mod:`.body_anchors`). With ``generator_cfg.eyelids`` an eye the
warp squeezes shut is painted over with its lid's skin (:mod:`.eyelids`).

``identity_at_rest``: the motion head's displacements at d = 0 and the U-Net's correction and
residual for the resting inputs are computed once per target and subtracted, so zero dynamics
render the target itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .face_geometry import (N_POINTS, PARTS, canonical_offsets_to_pixels, check_points,
                            face_frame, part_heatmaps, to_canonical)
from .generators import FeatureBundle
from .head_layer import composite, harden_matte, person_layer, still_background
from .body_anchors import body_points, collar_gaps
from .eyelids import lid_colours, paint_eyelids
from .head_outline import head_outline, moved_outline
from .head_pose import scale_head_pose
from .layers import (LEAK, FiLM, InputShapeError, Up, check_dynamics, check_image, down_conv,
                     expand_frames)
from .mouth import CavityPaint, lips_colour, mouth_interior, paint_cavity

_EPS = 1e-3
#: the spline's regulariser (units of the frame side squared): keeps the system solvable when
#: a landmarker puts two points on one spot (closed lips), well under a pixel of error
_TPS_LAMBDA = 1e-5
#: fixed anchors per side of the frame border
_ANCHORS_PER_SIDE = 4
#: frames warped at once at the detail size: as many as make this many pixels, at least one
#: (:meth:`GeoWarpGenerator._detail`)
_DETAIL_GROUP_PIXELS = 256 * 256
#: the correction head may move pixels by at most this fraction of the half image size
_MAX_CORRECTION = 0.1
#: part heatmaps: Gaussian width in pixels of the half-size map, per 64 px of resolution
_HEAT_SIGMA_64 = 1.0


def _logit(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh(x.clamp(-1.0 + _EPS, 1.0 - _EPS))


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """The thin-plate kernel U = r² log r² of squared distances (exactly 0 at r = 0); the
    real-video baselines' spline uses it too."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp(min=1e-20)), torch.zeros_like(r2))


def flow_folds(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a backward ``flow`` (N, 2, H, W) in grid units folds over: per frame, the pixels
    whose sampling map has a Jacobian determinant that is not positive (a bubble or a mirrored
    patch in the picture) (N,), and the smallest determinant (N,) (1 = the identity, in
    pixels² per pixel²)."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device) + 0.5,
                            torch.arange(w, dtype=flow.dtype, device=flow.device) + 0.5,
                            indexing="ij")
    sx, sy = xs + flow[:, 0] * (w / 2), ys + flow[:, 1] * (h / 2)
    det = ((sx[:, :-1, 1:] - sx[:, :-1, :-1]) * (sy[:, 1:, :-1] - sy[:, :-1, :-1])
           - (sy[:, :-1, 1:] - sy[:, :-1, :-1]) * (sx[:, 1:, :-1] - sx[:, :-1, :-1]))
    return (det <= 0).flatten(1).sum(1), det.flatten(1).amin(1)


def _grid_kernel(grid: torch.Tensor, ctrl: torch.Tensor) -> torch.Tensor:
    """U(|grid − ctrl|) for every grid point and control point: (N, G, 2), (N, K, 2) →
    (N, G, K). The squared distances come from one batched matrix product and the kernel is
    formed in place: at a full-size grid this array is the spline's whole cost, and building
    it through ``cdist`` and out-of-place ops took twice the time."""
    r2 = torch.baddbmm((ctrl * ctrl).sum(-1).unsqueeze(1), grid, ctrl.transpose(1, 2),
                       alpha=-2.0)
    r2.add_((grid * grid).sum(-1, keepdim=True)).clamp_min_(1e-20)
    return r2.log().mul_(r2)


def _frames_of(x: torch.Tensor, b: int, t: int, sl: slice) -> torch.Tensor:
    """Frames ``sl`` of the B·T frames of one image per item (``x`` (1 or B, C, H, W)):
    a stride-0 view when one image serves all."""
    n = sl.stop - sl.start
    if x.shape[0] == 1:
        return x.expand(n, -1, -1, -1)
    return x.expand(b, -1, -1, -1)[torch.arange(sl.start, sl.stop, device=x.device) // t]


def _border_anchors(size: int, per_side: int) -> torch.Tensor:
    """``(4 * per_side, 2)`` pixel points around a square frame's border (corners included)."""
    ax = torch.linspace(0.0, float(size), per_side + 1)[:-1]
    far = torch.full_like(ax, float(size))
    zero = torch.zeros_like(ax)
    return torch.cat([torch.stack([ax, zero], 1), torch.stack([far, ax], 1),
                      torch.stack([size - ax, far], 1), torch.stack([zero, size - ax], 1)])


@dataclass
class GeoTargetFeatures(FeatureBundle):
    """What ``geowarp`` keeps of one target: the image (B, 3, H, W) in [-1, 1], its landmarks
    ``points`` (B, 68, 2) in pixels, their canonical form ``canon`` (B, 68, 2), the face
    frame's linear map ``lin`` (B, 2, 2), the resting part heatmaps ``heat`` (B, 6, H/2, W/2)
    and the anchored head outputs at rest (``rest``)."""

    image: torch.Tensor
    points: torch.Tensor
    canon: torch.Tensor
    lin: torch.Tensor
    heat: torch.Tensor
    rest: dict[str, torch.Tensor] = field(default_factory=dict)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "GeoTargetFeatures":
        return GeoTargetFeatures(fn(self.image), fn(self.points), fn(self.canon), fn(self.lin),
                                 fn(self.heat), {k: fn(v) for k, v in self.rest.items()})


class MotionHead(nn.Module):
    """(d_t, canonical target landmarks) → canonical landmark displacements (N, 68, 2)."""

    def __init__(self, dyn_dim: int, hidden: int, init_std: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dyn_dim + 2 * N_POINTS, hidden), nn.LeakyReLU(LEAK),
            nn.Linear(hidden, hidden), nn.LeakyReLU(LEAK),
            nn.Linear(hidden, 2 * N_POINTS))
        last = self.net[-1]
        nn.init.normal_(last.weight, std=init_std)
        nn.init.zeros_(last.bias)

    def forward(self, d: torch.Tensor, canon: torch.Tensor) -> torch.Tensor:
        """d (N, D), canon (N, 68, 2) → (N, 68, 2)."""
        return self.net(torch.cat([d, canon.flatten(1)], 1)).view(-1, N_POINTS, 2)


class RefineNet(nn.Module):
    """A small U-Net at the working size: (warped target, coarse flow, heatmaps, d) → maps."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        g = config.generator_cfg
        base = g.base_width
        levels = max(2, min(4, config.levels - 1))
        self.widths = [min(base * 2 ** i, g.max_width) for i in range(levels)]
        w = self.widths
        parts = len(PARTS)
        self.first = down_conv(3 + 2, w[0], 3)                       # → H/2
        self.merge = nn.Conv2d(w[0] + 2 * parts, w[0], 3, padding=1)  # heatmaps join at H/2
        self.down = nn.ModuleList(down_conv(w[i], w[i + 1], 3) for i in range(levels - 1))
        self.film = FiLM(config.dyn_dim, w[-1])
        self.up = nn.ModuleList(Up(w[i + 1], w[i], 3, g.upsample) for i in range(levels - 1))
        # heads: flow correction + mask logit at H/2, residual at full size
        self.half_head = nn.Conv2d(w[0], 3, 3, padding=1)
        self.residual = Up(w[0], 3, 4, g.upsample)
        self.act = nn.LeakyReLU(LEAK)
        for layer in (self.half_head, self.residual.conv):
            nn.init.normal_(layer.weight, std=g.head_init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, warped: torch.Tensor, flow: torch.Tensor, heat: torch.Tensor,
                d: torch.Tensor) -> dict[str, torch.Tensor]:
        """All (N, ...) at the working size H → correction (N, 2, H/2, W/2), mask logit
        (N, 1, H/2, W/2) and residual (N, 3, H, W)."""
        x = self.act(self.first(torch.cat([warped, flow], 1)))
        x = self.act(self.merge(torch.cat([x, heat], 1)))
        skips = [x]
        for conv in self.down:
            x = self.act(conv(x))
            skips.append(x)
        x = self.act(self.film(x, d))
        for i in range(len(self.up) - 1, -1, -1):
            x = self.act(self.up[i](x) + skips[i])
        half = self.half_head(x)
        return {"correction": half[:, :2], "mask": half[:, 2:3], "residual": self.residual(x)}


class GeoWarpGenerator(nn.Module):
    """Landmark-conditioned warp generator (same interface as the pixel generators, plus the
    target's landmarks)."""

    kind = "geowarp"
    needs_landmarks = True
    #: ``render(detail=...)`` warps a larger copy of the target (sharp output above 128 px)
    renders_detail = True
    #: ``render(head=...)`` scales the head's motion apart from the expression
    scales_head = True
    anchored = ("correction", "residual")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        g = config.generator_cfg
        self.config = config
        self.resolution = config.resolution
        self.dyn_dim = config.dyn_dim
        self.at_rest = g.identity_at_rest
        self.motion = MotionHead(config.dyn_dim, g.motion_hidden, g.head_init_std)
        # with the geometry skip the dynamics end with the source's canonical landmark
        # displacements: the motion head corrects them rather than inventing the motion
        self.skip_from = config.encoder.hidden if config.geometry_skip else None
        # without the skip the head is the whole motion, so it is always on then
        self.correct = g.motion_correction or self.skip_from is None
        self.flow_correction = g.flow_correction
        self.mouth_cavity = g.mouth_cavity
        self.head_outline = g.head_outline
        self.body_anchors = g.body_anchors
        self.eyelids = g.eyelids
        self.refine = RefineNet(config)
        res = config.resolution
        eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        self.register_buffer("base_grid", F.affine_grid(eye, [1, 3, res, res],
                                                        align_corners=False), persistent=False)
        self._grids: dict[tuple[tuple[int, int], str], torch.Tensor] = {}  # _detail_grid's
        # pixel-centre coordinates of the half-size grid the spline is evaluated on (the
        # kernel costs grid points x landmarks). Measured on carphone at 128 px: a quarter-size
        # grid kept the correlation but blurred the small local motions (eye opening's
        # amplitude 0.73 → astronaut, 0.48 self; half size 0.81, 0.58; full size 0.84, 0.63);
        # the full size costs four times the half's (README: speed)
        q = max(8, res // 2)
        ax = (torch.arange(q, dtype=torch.float32) + 0.5) * (res / q)
        ys, xs = torch.meshgrid(ax, ax, indexing="ij")
        self.register_buffer("coarse_xy", torch.stack([xs, ys], -1).reshape(1, q * q, 2),
                             persistent=False)
        self.coarse = q
        self.register_buffer("anchors", _border_anchors(res, _ANCHORS_PER_SIDE).unsqueeze(0),
                             persistent=False)

    # -- per target -----------------------------------------------------------------------

    def encode_target(self, target: torch.Tensor, landmarks: torch.Tensor | None = None,
                      matte: torch.Tensor | None = None) -> GeoTargetFeatures:
        """Target image (B, 3, H, W) in [-1, 1] and its landmarks (B, 68, 2) in pixels; with
        ``generator_cfg.head_outline``, ``matte`` (B, 1, H, W) in [0, 1] (the person 1) makes
        the person a layer over a still background (:mod:`.head_layer`)."""
        check_image("target", target, self.resolution)
        if landmarks is None:
            raise InputShapeError("the geowarp generator needs the target's landmarks "
                                  "(B, 68, 2) in pixels of the target image")
        check_points("target landmarks", landmarks, 3)
        points = landmarks.to(target.dtype)
        centre, lin = face_frame(points)
        feats = GeoTargetFeatures(image=target, points=points,
                                  canon=to_canonical(points, centre, lin), lin=lin,
                                  heat=self._heat(points))
        if self.mouth_cavity:
            feats.rest["lips"] = lips_colour(target, points)
        if self.eyelids:
            feats.rest["lids"] = lid_colours(target, points)
        if self.body_anchors:
            feats.rest["body_gaps"] = collar_gaps(target, points)
        if self.head_outline:
            # per target, like the landmarks it is made from (float64, as the spline reads it)
            feats.rest["outline"] = head_outline(points)
            # where the landmarks' own spline takes it, linear in the moved landmarks
            feats.rest["outline_weights"] = self.landmark_spline_weights(points,
                                                                         feats.rest["outline"])
            if matte is not None:
                check_image("matte", matte, self.resolution, channels=1)
                feats.rest["layer"], feats.rest["still"] = self.layers(target, matte)
        if self.at_rest:
            zero = target.new_zeros(target.shape[0], self.dyn_dim)
            feats.rest["offsets"] = self._offsets(zero, feats.canon)
            rest = self.refine(target, target.new_zeros(target.shape[0], 2, *target.shape[-2:]),
                               torch.cat([feats.heat, feats.heat], 1), zero)
            feats.rest.update({k: rest[k] for k in self.anchored})
        return feats

    @staticmethod
    def layers(image: torch.Tensor, matte: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An image (B, 3, H, W) and its soft person matte (B, 1, H, W) → the person's layer
        (B, 4, H, W) that ``render`` warps and the still background it composites it over
        (:mod:`.head_layer`; for ``detail`` too)."""
        hard = harden_matte(matte.to(image.dtype))
        still = still_background(image, hard)
        return person_layer(image, hard, still), still

    def _heat(self, points: torch.Tensor) -> torch.Tensor:
        """Part heatmaps at half size of pixel points (N, 68, 2)."""
        half = self.resolution // 2
        # pixel → half-size map coordinates centred on the map, so part_heatmaps' window fits
        centred = points * 0.5 - half / 2.0
        sigma = _HEAT_SIGMA_64 * self.resolution / 64.0
        return part_heatmaps(centred, half, (half - 1) / 2.0, sigma)

    # -- per frame ------------------------------------------------------------------------

    def moved_points(self, feats: GeoTargetFeatures, d: torch.Tensor) -> torch.Tensor:
        """Target landmarks moved by dynamics d (N, D) → (N, 68, 2) pixels (N = B·T)."""
        frames = d.shape[0] // feats.batch
        canon = expand_frames(feats.canon, frames)
        offsets = self._offsets(d, canon)
        if "offsets" in feats.rest:
            offsets = offsets - expand_frames(feats.rest["offsets"], frames)
        pix = canonical_offsets_to_pixels(offsets, expand_frames(feats.lin, frames))
        return expand_frames(feats.points, frames) + pix

    def _offsets(self, d: torch.Tensor, canon: torch.Tensor) -> torch.Tensor:
        """Canonical landmark displacements (N, 68, 2): the skip's exact ones plus the head's
        correction (``motion_correction``; the head alone without the skip)."""
        out = self.motion(d, canon) if self.correct else d.new_zeros(len(d), N_POINTS, 2)
        if self.skip_from is not None:
            out = out + d[:, self.skip_from:].reshape(-1, N_POINTS, 2)
        return out

    def points_for(self, landmarks: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Where dynamics d (B, T, D) move a target's landmarks (B, 68, 2): (B, T, 68, 2).

        The motion head alone (no image work): training's landmark loss uses it.
        """
        check_points("target landmarks", landmarks, 3)
        b, t = d.shape[:2]
        centre, lin = face_frame(landmarks)
        canon = to_canonical(landmarks, centre, lin)
        offsets = self._offsets(d.reshape(b * t, -1), expand_frames(canon, t))
        if self.at_rest:
            offsets = offsets - expand_frames(self._offsets(d.new_zeros(b, d.shape[-1]), canon), t)
        pix = canonical_offsets_to_pixels(offsets, expand_frames(lin, t))
        return (expand_frames(landmarks, t) + pix).unflatten(0, (b, t))

    def _anchored(self, points: torch.Tensor) -> torch.Tensor:
        """Pixel ``points`` (N, P, 2) followed by the frame's border anchors, float64."""
        return torch.cat([points.double(),
                          self.anchors.double().expand(points.shape[0], -1, -1)], 1)

    def _spline_system(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The thin-plate spline's system matrix (N, K + 3, K + 3) through points ``src``
        (N, P, 2) pixels and the frame's border anchors, and those control points (N, K, 2),
        both in units of the frame side (float64: the kernel matrix is ill-conditioned in
        float32). The matrix is symmetric."""
        n = src.shape[0]
        ctrl = self._anchored(src) / self.resolution
        k = ctrl.shape[1]
        kmat = tps_kernel(torch.cdist(ctrl, ctrl).square())
        ones = torch.ones(n, k, 1, dtype=ctrl.dtype, device=ctrl.device)
        p = torch.cat([ones, ctrl], 2)
        top = torch.cat([kmat + _TPS_LAMBDA * torch.eye(k, dtype=ctrl.dtype,
                                                         device=ctrl.device), p], 2)
        bottom = torch.cat([p.transpose(1, 2), ctrl.new_zeros(n, 3, 3)], 2)
        return torch.cat([top, bottom], 1), ctrl

    def _spline(self, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The spline taking points ``src`` to ``dst`` (N, P, 2) pixels, the border still: its
        coefficients (N, K + 3, 2) and control points (N, K, 2), in units of the frame side."""
        system, ctrl = self._spline_system(src)
        rhs = torch.cat([self._anchored(dst) / self.resolution,
                         ctrl.new_zeros(src.shape[0], 3, 2)], 1)
        return torch.linalg.solve(system, rhs), ctrl

    def landmark_spline_weights(self, points: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The spline through the landmarks alone at ``query`` (N, Q, 2) pixels, as weights
        (N, Q, 68 + anchors) float64: the spline that takes the rest ``points`` (N, 68, 2) to
        moved positions puts the query points at ``weights @ [moved; anchors]``
        (:meth:`landmark_spline_at`). The spline is linear in where the points move, so the
        weights depend on the rest alone: solved once per target (``encode_target``), not per
        frame."""
        system, ctrl = self._spline_system(points)
        k = ctrl.shape[1]
        q = query.double() / self.resolution
        basis = torch.cat([tps_kernel(torch.cdist(q, ctrl).square()),
                           torch.ones_like(q[..., :1]), q], 2)          # (N, Q, K + 3)
        # basis · system⁻¹ (the system is symmetric), restricted to the values' rows
        return torch.linalg.solve(system, basis.transpose(1, 2)).transpose(1, 2)[..., :k]

    def landmark_spline_at(self, weights: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Where the spline through the landmarks moved to ``moved`` (N, 68, 2) puts the query
        points of ``weights`` (:meth:`landmark_spline_weights`): (N, Q, 2) float64 pixels. It
        is how the face's own motion reaches a point that nothing anchors (what the hair-still
        spline does there)."""
        return weights @ self._anchored(moved)

    def dense_flow(self, points: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Backward flow (N, 2, H, W) in grid units: where each output pixel samples the target,
        from the landmarks' rest ``points`` and ``moved`` positions (N, P, 2) pixels (the 68
        landmarks, and the head's outline where it moves with the head).

        A thin-plate spline through the moved landmarks (plus fixed anchors on the frame
        border, which keep the background still) maps every output pixel to where it came from:
        exact at the landmarks, smooth between them. It is evaluated on a half-size grid and
        upsampled.
        """
        res = self.resolution
        n = points.shape[0]
        coef, ctrl = self._spline(moved, points)
        coef = coef.to(points.dtype)
        k = ctrl.shape[1]
        grid = self.coarse_xy.to(points.dtype).expand(n, -1, -1) / res
        u = _grid_kernel(grid, ctrl.to(points.dtype))
        mapped = u @ coef[:, :k] + coef[:, k:k + 1] + grid @ coef[:, k + 1:]
        q = self.coarse
        flow = (mapped - grid).view(n, q, q, 2).permute(0, 3, 1, 2) * 2.0
        return F.interpolate(flow, size=(res, res), mode="bilinear", align_corners=False)

    def render(self, feats: GeoTargetFeatures, d: torch.Tensor, *,
               return_aux: bool = False, detail: torch.Tensor | None = None,
               head: float = 1.0,
               detail_layers: tuple[torch.Tensor, torch.Tensor] | None = None,
               geometry_only: bool = False,
               ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Dynamics (B, T, D) → frames (B, T, 3, H, W) in [-1, 1] (+ maps, ``points``, and
        ``outline`` with ``generator_cfg.head_outline``: the moved head outline, :mod:`.head_outline`).

        ``detail`` (B or 1, 3, H', W') in [-1, 1] is the same target framed the same way at a
        higher resolution: the flow found at the working size (in grid units, which do not
        depend on the size) warps it, and what the mask and residual painted is added
        upsampled, so the output has its size and its sharpness. The aux maps ``flow`` and
        ``warped`` are then at that size, the others at the working size.

        ``head`` scales the head's motion (its travel, tilt and zoom) and keeps the
        expression (:func:`.head_pose.scale_head_pose`): 1 as the dynamics say, 0 none.

        A target encoded with a person matte is warped as a layer over its still background;
        ``detail_layers`` (:meth:`layers` of ``detail`` and its matte) does the same at the
        detail size.

        ``geometry_only`` with ``return_aux``: the aux holds ``points`` (and ``outline``) alone,
        so the detail size's flow and warped frames are neither kept nor made whole.
        """
        check_dynamics(d, self.dyn_dim)
        b, t = d.shape[:2]
        feats = feats.expand(b)
        res = self.resolution
        if detail is not None:
            check_image("detail", detail, None)
        if t == 0:
            hw = (res, res) if detail is None else tuple(detail.shape[-2:])
            empty = d.new_zeros(b, 0, 3, *hw)
            return (empty, {}) if return_aux else empty
        dd = d.reshape(b * t, self.dyn_dim).to(feats.image.dtype)
        moved = self.moved_points(feats, dd)
        rest_points = expand_frames(feats.points, t)
        if head != 1.0:
            moved = scale_head_pose(rest_points, moved, float(head))
        outline = None
        # the spline's points: the landmarks, then the head's outline and the body's anchors
        spline_rest, spline_moved = [rest_points], [moved]
        if self.head_outline:
            # the hair moves with the head: its outline joins the spline's points
            rest_outline = expand_frames(feats.rest["outline"], t)
            # near the border the outline fades to where the face's own spline takes it
            base = self.landmark_spline_at(expand_frames(feats.rest["outline_weights"], t), moved)
            outline = moved_outline(rest_outline, rest_points, moved, (0.0, 0.0, float(res)),
                                    base=base).to(moved.dtype)
            spline_rest.append(rest_outline.to(moved.dtype))
            spline_moved.append(outline)
        if self.body_anchors:
            # the neck, collar and shoulders stay nearly still under a moving head
            body_rest, body_moved = body_points(rest_points, moved,
                                                expand_frames(feats.rest["body_gaps"], t))
            spline_rest.append(body_rest.to(moved.dtype))
            spline_moved.append(body_moved.to(moved.dtype))
        coarse = self.dense_flow(torch.cat(spline_rest, 1), torch.cat(spline_moved, 1))
        paint = None
        if self.mouth_cavity:
            coarse, paint = mouth_interior(coarse, rest_points, moved)
        layered = "layer" in feats.rest
        # with a person matte the person's layer is warped, and composited over the still
        # background (the premultiplied layer holds the target's colours)
        image = expand_frames(feats.rest["layer"] if layered else feats.image, t)
        still = feats.rest.get("still")
        warped0 = self._warp(image, coarse)
        if layered:
            warped0 = composite(warped0, expand_frames(still, t))
        heat = torch.cat([self._heat(moved), expand_frames(feats.heat, t)], 1)
        maps = self.refine(warped0, coarse, heat, dd)
        for name in self.anchored:
            if name in feats.rest:
                maps[name] = maps[name] - expand_frames(feats.rest[name], t)
        if self.flow_correction:
            corr = _MAX_CORRECTION * torch.tanh(maps["correction"])
            flow = coarse + F.interpolate(corr, size=(res, res), mode="bilinear",
                                          align_corners=False)
            warped = self._warp(image, flow)
            if layered:
                warped = composite(warped, expand_frames(still, t))
        else:
            # the same flow warps the same image: the refinement's input is the frame
            flow, warped = coarse, warped0
        mask = torch.sigmoid(F.interpolate(maps["mask"], size=(res, res), mode="bilinear",
                                           align_corners=False))
        residual = maps["residual"]
        out = torch.tanh(_logit(warped) + (1.0 - mask) * residual)
        lips = expand_frames(feats.rest["lips"], t) if paint is not None else None
        if detail is not None:
            out, warped, flow = self._detail(detail, flow, out, warped, b, t,
                                             detail_layers if layered else None, paint, lips,
                                             maps=return_aux and not geometry_only)
        elif paint is not None:
            out = paint_cavity(out, paint, lips)
        if self.eyelids:
            # the lids' skin over eyes the warp squeezed shut (at the frames' own size)
            out = paint_eyelids(out, rest_points, moved, expand_frames(feats.rest["lids"], t),
                                out.shape[-1] / res)
        out = out.unflatten(0, (b, t))
        if not return_aux:
            return out
        aux = {"points": moved} if geometry_only else \
            {"flow": flow, "mask": mask, "residual": residual, "warped": warped, "points": moved}
        if outline is not None:
            aux["outline"] = outline
        return out, {k: v.unflatten(0, (b, t)) for k, v in aux.items()}

    def _detail(self, detail: torch.Tensor, flow: torch.Tensor, out: torch.Tensor,
                warped: torch.Tensor, b: int, t: int,
                layers: tuple[torch.Tensor, torch.Tensor] | None = None,
                paint: CavityPaint | None = None, lips: torch.Tensor | None = None,
                maps: bool = True,
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The large target warped by the upsampled flow, plus what the mask and residual
        painted at the working size (``out - warped``, upsampled), the mouth's cavity painted
        on top → (frames, warped, flow) at the detail size (warped and flow None unless
        ``maps``). Adding the painted difference, rather than composing in logit space per
        large pixel, keeps the large-size work to two resamplings: the frames equal the
        working-size ones, upsampled, wherever the target has no finer detail.

        A frame at a time (:data:`_DETAIL_GROUP_PIXELS`): a call's large temporaries are tens
        to hundreds of MB, each a fresh allocation whose pages fault in on first touch, and
        which no cache holds; a frame's (3.5 MB at 420 px) stay in the allocator's heap, under
        the CLI's 8 MiB mmap threshold, and in cache. Measured at 420 px on one thread, the
        whole render in groups of 4 frames against 32: 25–29 against 38–43 ms a frame.
        """
        size = (int(detail.shape[-2]), int(detail.shape[-1]))
        n = b * t
        still = None
        if layers is not None:
            detail, still = layers[0].to(detail.dtype), layers[1]
        delta = out - warped
        if paint is not None:
            paint = paint.resized(size)
        group = max(1, _DETAIL_GROUP_PIXELS // (size[0] * size[1]))
        # with autograd, out= writes are not allowed: the frames are gathered instead
        grad = torch.is_grad_enabled() and any(
            v.requires_grad for v in (flow, delta, detail) + (() if still is None else (still,)))
        result = None if grad else out.new_empty(n, out.shape[1], *size)
        parts: list[torch.Tensor] = []
        # the maps are for inspection (return_aux without geometry_only): kept per frame
        warped_parts: list[torch.Tensor] = []
        flow_parts: list[torch.Tensor] = []
        for lo in range(0, n, group):
            sl = slice(lo, min(n, lo + group))
            both = F.interpolate(torch.cat([flow[sl], delta[sl]], 1), size=size,
                                 mode="bilinear", align_corners=False)
            # one target for every frame: a stride-0 view, not B·T copies of a large image
            part = self._warp(_frames_of(detail, b, t, sl), both[:, :2])
            if still is not None:
                part = composite(part, _frames_of(still, b, t, sl))
            if maps:
                warped_parts.append(part)
                flow_parts.append(both[:, :2])
            if result is None:
                frames = torch.add(part, both[:, 2:]).clamp(-1.0, 1.0)
            else:
                frames = torch.add(part, both[:, 2:], out=result[sl]).clamp_(-1.0, 1.0)
            if paint is not None:
                # painted at the output's size: the warp under a cavity repeats the lips'
                # edge, whose fine detail must not show through (in place without autograd)
                frames = paint_cavity(frames, paint.frames(sl), lips[sl])
            parts.append(frames)
        big_warped = torch.cat(warped_parts) if maps else None
        big_flow = torch.cat(flow_parts) if maps else None
        return (torch.cat(parts) if result is None else result), big_warped, big_flow

    def _warp(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        base = self.base_grid
        if tuple(flow.shape[-2:]) != tuple(base.shape[1:3]):
            base = self._detail_grid(tuple(flow.shape[-2:]), flow.device)
        grid = base.to(flow.dtype) + flow.permute(0, 2, 3, 1)
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)

    def _detail_grid(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The identity sampling grid (1, H, W, 2) at a detail size, made once per size (the
        detail is warped a frame at a time: rebuilding it per frame was a tenth of the
        render)."""
        key = (size, str(device))
        grid = self._grids.get(key)
        if grid is None:
            eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], device=device)
            grid = F.affine_grid(eye, [1, 3, *size], align_corners=False)
            self._grids = {key: grid}  # one size at a time: a Renderer keeps to one
        return grid

    def forward(self, target: torch.Tensor, d: torch.Tensor,
                landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """Target (B, 3, H, W) + dynamics (B, T, D) + target landmarks → frames."""
        out = self.render(self.encode_target(target, landmarks), d)
        assert isinstance(out, torch.Tensor)
        return out
