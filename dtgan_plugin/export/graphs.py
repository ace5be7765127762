"""Export-only modules: the inference pieces as pure tensor-in/tensor-out graphs.

Each module here holds references to the submodules of a loaded :class:`~dtgan_plugin.models.DTGAN`
(the same weights, nothing copied) and recomputes exactly what the model's streaming methods
compute, written so that a tracer sees no Python-side state, no data-dependent control flow and
no op outside stock ONNX:

* :class:`ReferenceGraph` — φ(reference), the static sequence's per-frame feature;
* :class:`EncoderStepGraph` — :meth:`DynamicsEncoder.step` with the LSTM state, the
  static flag and φ(reference) as explicit inputs (``cumprod`` of booleans, which ONNX lacks, is
  a ``cumsum`` of the complement compared with 0: the same prefix test);
* :class:`TargetEncoderGraph` — :meth:`Generator.encode_target` for one target image, its
  :class:`TargetFeatures` flattened into named tensors;
* :class:`RendererGraph` — :meth:`Generator.render` for one target's features and N dynamics
  vectors, the per-target terms added by broadcasting over the N frames.

The parity tests (``tests/test_onnx.py``) check each against the model's own methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.generators import _logit
from ..models.model import DTGAN

#: ASD modes the step graph reproduces (``cnn_diff`` carries no LSTM state to export)
EXPORTABLE_ASD_MODES = ("asd", "raw")


def feature_names(model: DTGAN) -> tuple[list[str], list[int]]:
    """Names of the target-feature tensors, and which trunk skips they carry (non-None ones)."""
    n = model.config.levels
    # skips run coarse → fine; the coarsest decoder level's target term entered at the bottleneck
    skip_ids = [i for i, j in enumerate(range(n - 2, -1, -1)) if j + 1 < n - 1] + [n - 1]
    names = ["target", "bottleneck", *[f"skip{i}" for i in skip_ids]]
    if model.config.generator_cfg.identity_at_rest:
        names += [f"rest_{k}" for k in model.generator.anchored]
    return names, skip_ids


class ReferenceGraph(nn.Module):
    """reference (B, 3, H, W) in [-1, 1] → φ(reference) (B, F)."""

    def __init__(self, model: DTGAN) -> None:
        super().__init__()
        self.cnn = model.encoder.cnn

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        """φ of the reference frame."""
        return self.cnn(reference)


class EncoderStepGraph(nn.Module):
    """One chunk of :meth:`DynamicsEncoder.step`, its state as inputs and outputs.

    Inputs: frames (B, T, 3, H, W), reference (B, 3, H, W), phi_ref (B, F), h and c
    (1, R, D) with R = 2B in ``asd`` mode (rows :B the source, B: the static sequence) and B in
    ``raw`` mode, static (B,) bool. Outputs: dynamics (B, T, D), h, c, static.
    """

    def __init__(self, model: DTGAN) -> None:
        super().__init__()
        self.cnn = model.encoder.cnn
        self.lstm = model.encoder.lstm
        self.mode = model.encoder.mode
        self.size = model.config.resolution

    def forward(self, frames: torch.Tensor, reference: torch.Tensor, phi_ref: torch.Tensor,
                h: torch.Tensor, c: torch.Tensor, static: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dynamics of the chunk and the state to carry to the next one."""
        b, t = frames.shape[0], frames.shape[1]
        phi = self.cnn(frames.reshape(-1, 3, self.size, self.size)).reshape(b, t, -1)
        if self.mode == "raw":
            out, (h2, c2) = self.lstm(phi, (h, c))
            return out, h2, c2, static
        same = (frames == reference.unsqueeze(1)).flatten(2).all(-1)
        out, (h2, c2) = self.lstm(torch.cat([phi, phi_ref.unsqueeze(1).expand_as(phi)], 0),
                                  (h, c))
        h_src, h_static = out[:b], out[b:]
        # cumprod(same) as "no frame so far differed": ONNX has CumSum but no CumProd
        differed = torch.cumsum((~same).to(torch.int64), dim=1)
        prefix = (differed == 0) & static.unsqueeze(1)
        d = (h_src - h_static).masked_fill(prefix.unsqueeze(-1), 0.0)
        still = prefix[:, -1]
        keep = still.reshape(1, -1, 1)
        h_new = torch.cat([torch.where(keep, h2[:, b:], h2[:, :b]), h2[:, b:]], 1)
        c_new = torch.cat([torch.where(keep, c2[:, b:], c2[:, :b]), c2[:, b:]], 1)
        return d, h_new, c_new, still


class TargetEncoderGraph(nn.Module):
    """target (1, 3, H, W) in [-1, 1] → the tensors of its :class:`TargetFeatures`."""

    def __init__(self, model: DTGAN) -> None:
        super().__init__()
        self.generator = model.generator
        _, self.skip_ids = feature_names(model)

    def forward(self, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(bottleneck, skips…, rest…): :func:`feature_names` after the target itself."""
        feats = self.generator.encode_target(target)
        skips = [feats.skips[i] for i in self.skip_ids]
        assert all(s is not None for s in skips)
        rest = [feats.rest[k] for k in self.generator.anchored] if feats.rest else []
        return (feats.bottleneck, *skips, *rest)  # type: ignore[arg-type]


class RendererGraph(nn.Module):
    """dynamics (N, D) + one target's features → frames (N, 3, H, W) in [-1, 1]."""

    def __init__(self, model: DTGAN) -> None:
        super().__init__()
        self.generator = model.generator
        self.trunk = model.generator.trunk
        names, self.skip_ids = feature_names(model)
        self.rest_names = [n[len("rest_"):] for n in names if n.startswith("rest_")]
        self.levels = model.config.levels

    def forward(self, dynamics: torch.Tensor, target: torch.Tensor, bottleneck: torch.Tensor,
                *extra: torch.Tensor) -> torch.Tensor:
        """Frames of the target moved by each dynamics vector."""
        skips = dict(zip(self.skip_ids, extra[:len(self.skip_ids)]))
        rest = dict(zip(self.rest_names, extra[len(self.skip_ids):]))
        heads = self.generator._heads(*self._decode(dynamics, bottleneck, skips))
        for name, value in rest.items():
            heads[name] = heads[name] + (-value)
        return self._compose(target, heads)

    def _decode(self, d: torch.Tensor, bottleneck: torch.Tensor,
                skips: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`UNetTrunk.decode` for one target (its terms broadcast over the frames)."""
        tr = self.trunk
        dmap = tr.dyn_map(d).reshape(-1, tr.dyn_channels, 4, 4)
        x = tr.bott_norm(tr.bott_dyn(dmap) + bottleneck)
        if tr.films is not None:
            x = tr.films[0](x, d)
        x = tr.act(x)
        for i, j in enumerate(range(self.levels - 2, -1, -1)):
            y = tr.up[j](x)
            if i in skips:
                y = y + skips[i]
            y = tr.up_norms[j](y)
            if tr.films is not None:
                y = tr.films[i + 1](y, d)
            x = tr.act(y)
        return tr.out_up(x) + skips[self.levels - 1], x

    def _compose(self, target: torch.Tensor, heads: dict[str, torch.Tensor]) -> torch.Tensor:
        """The generator's ``_compose`` with the target broadcast over the frames."""
        g = self.generator
        if g.kind == "synth":
            maps = heads["residual"]
            if not g.residual:
                return torch.tanh(maps)
            return torch.tanh(_logit(target) + maps)
        res = g.resolution
        flow = g.max_flow * torch.tanh(heads["flow"])
        flow = F.interpolate(flow, size=(res, res), mode="bilinear", align_corners=False)
        grid = g.base_grid + flow.permute(0, 2, 3, 1)
        image = target.expand(flow.shape[0], -1, -1, -1)
        warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
        mask = torch.sigmoid(heads["mask"])
        return torch.tanh(_logit(warped) + (1.0 - mask) * heads["residual"])
