"""The dynamics encoder and the appearance-suppressed dynamics (ASD) feature.

E = per-frame CNN φ → Linear → 1-layer LSTM (PAPER.md §2). The ASD of a source clip is

    d_t = h_t(source) − h_t(static),

where *static* is the reference frame repeated, so whatever the LSTM encodes about how the
source looks is present in both terms and cancels. Streaming: :meth:`DynamicsEncoder.init_state`
takes the reference frame once, :meth:`DynamicsEncoder.step` consumes chunks and carries both
LSTM states, so chunked extraction equals whole-clip extraction (to float rounding).

All frame inputs are in [-1, 1], shaped (B, T, 3, H, W) at the config's resolution. A model
whose ``dynamics_input`` is ``landmarks`` takes each frame's 68 landmarks instead, (B, T, 68, 2)
in pixels (any pixel grid, as long as every frame of a clip uses the same one): φ reads them in
the reference frame's face frame (:mod:`.face_geometry`), so the static sequence is the
reference face's own shape and ASD keeps only how the face moves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .config import EncoderConfig, ModelConfig
from .face_geometry import check_points, face_frame, to_canonical
from .landmark_encoder import build_landmark_net
from .layers import LEAK, InputShapeError, check_frames, check_image, down_conv, make_norm


def encoder_widths(cfg: EncoderConfig, resolution: int) -> list[int]:
    """Channels of φ's stride-2 blocks at a resolution (always ending at 4×4)."""
    levels = resolution.bit_length() - 1 - 2
    widths = list(cfg.widths)
    if levels <= len(widths):
        return widths[:levels]
    # higher resolutions get extra, narrow blocks in front: cheap, and φ still ends at 4×4
    return [widths[0]] * (levels - len(widths)) + widths


class FrameCNN(nn.Module):
    """φ: one frame (N, 3, H, W) → a feature vector (N, feature_dim)."""

    def __init__(self, cfg: EncoderConfig, resolution: int) -> None:
        super().__init__()
        widths = encoder_widths(cfg, resolution)
        layers: list[nn.Module] = []
        c_in = 3
        for i, w in enumerate(widths):
            layers.append(down_conv(c_in, w, cfg.kernel_size))
            if i > 0:
                layers.append(make_norm(cfg.norm, w))
            layers.append(nn.LeakyReLU(LEAK, inplace=True))
            c_in = w
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * 16, cfg.feature_dim)
        self.act = nn.LeakyReLU(LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] → (N, feature_dim)."""
        first = self.convs[0].weight
        if first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.convs(x)
        return self.act(self.proj(y.flatten(1)))


@dataclass
class EncoderState:
    """What :meth:`DynamicsEncoder.step` carries from one chunk to the next.

    ``reference`` (B, 3, H, W) and ``phi_ref`` = φ(reference) (B, F) define the static sequence.
    ``hidden``/``cell`` are the LSTM states, (1, 2B, hidden) in ``asd`` mode (rows :B follow the
    source, rows B: the static sequence), (1, B, hidden) in ``raw`` mode, None before the first
    frame (and always in ``cnn_diff`` mode). ``static`` (B,) is True while every frame seen so
    far equals the reference bit for bit. ``frames_seen`` counts frames consumed.
    """

    reference: torch.Tensor
    phi_ref: torch.Tensor
    hidden: torch.Tensor | None
    cell: torch.Tensor | None
    static: torch.Tensor
    frames_seen: int = 0

    @property
    def batch(self) -> int:
        """Number of clips B this state tracks."""
        return int(self.reference.shape[0])

    def detach(self) -> "EncoderState":
        """A copy cut from the autograd graph (truncated back-propagation through time)."""
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach()

        return replace(self, reference=self.reference.detach(), phi_ref=self.phi_ref.detach(),
                       hidden=cut(self.hidden), cell=cut(self.cell))

    def to(self, device: torch.device | str) -> "EncoderState":
        """A copy on another device."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return replace(self, reference=self.reference.to(device),
                       phi_ref=self.phi_ref.to(device), hidden=move(self.hidden),
                       cell=move(self.cell), static=self.static.to(device))


class DynamicsEncoder(nn.Module):
    """φ → LSTM, with ASD/raw/CNN-difference dynamics and the pre-training heads.

    Example::

        enc = DynamicsEncoder(ModelConfig())
        state = enc.init_state(clip[:, 0])
        for chunk in clip.split(32, dim=1):
            d, state = enc.step(chunk, state)   # (B, t, 256)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        cfg = config.encoder
        self.config = config
        self.resolution = config.resolution
        self.mode = config.asd_mode
        self.landmarks = config.uses_landmarks
        self.skip = config.geometry_skip
        self._dim = config.dyn_dim
        self.cnn: nn.Module = (build_landmark_net(cfg) if self.landmarks
                               else FrameCNN(cfg, config.resolution))
        self.lstm = nn.LSTM(cfg.feature_dim, cfg.hidden, num_layers=1, batch_first=True)
        # only the ablation that needs it owns the projection, so every parameter is trained
        self.diff_proj = (nn.Linear(cfg.feature_dim, cfg.hidden, bias=False)
                          if self.mode == "cnn_diff" else None)
        self.classifier = nn.Linear(cfg.hidden, cfg.n_classes) if cfg.n_classes else None
        self.regressor = nn.Linear(cfg.hidden, cfg.n_params) if cfg.n_params else None

    @property
    def dyn_dim(self) -> int:
        """Size D of one dynamics vector."""
        return self._dim

    def _check_clip(self, frames: torch.Tensor) -> None:
        if self.landmarks:
            check_points("landmarks", frames, 4)
        else:
            check_frames("frames", frames, self.resolution)

    def _check_reference(self, reference: torch.Tensor) -> None:
        if self.landmarks:
            check_points("reference landmarks", reference, 3)
        else:
            check_image("reference", reference, self.resolution)

    def _phi(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """φ of (N, ...) items; landmark models read them in ``reference``'s face frame
        (``reference`` (N, 68, 2), one per item)."""
        if self.landmarks:
            centre, lin = face_frame(reference)
            return self.cnn(to_canonical(x, centre, lin))
        return self.cnn(x)

    def displacements(self, points: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The geometry skip: landmarks (B, T, 68, 2) minus the reference's (B, 68, 2), in the
        reference face's frame → (B, T, 136)."""
        centre, lin = face_frame(reference)
        canon = to_canonical(points, centre, lin)
        return (canon - to_canonical(reference, centre, lin).unsqueeze(1)).flatten(2)

    def features(self, frames: torch.Tensor, reference: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """φ of every frame: (B, T, 3, H, W) or landmarks (B, T, 68, 2) → (B, T, F).

        Landmarks are read in the face frame of ``reference`` (B, 68, 2), by default frame 0.
        """
        self._check_clip(frames)
        b, t = frames.shape[:2]
        if self.landmarks:
            ref = frames[:, 0] if reference is None else reference
            ref = ref.unsqueeze(1).expand(b, t, *ref.shape[1:]).flatten(0, 1)
            return self._phi(frames.flatten(0, 1), ref).unflatten(0, (b, t))
        return self.cnn(frames.flatten(0, 1)).unflatten(0, (b, t))

    def run_lstm(self, x: torch.Tensor,
                 state: tuple[torch.Tensor, torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The LSTM in the weights' precision, even under autocast.

        ASD subtracts two nearly equal LSTM outputs, which bf16 would drown in rounding noise;
        the LSTM is a small share of the encoder's time, so it always runs at full precision.
        """
        dtype = self.lstm.weight_ih_l0.dtype
        with torch.autocast(x.device.type, enabled=False):
            if state is not None:
                state = (state[0].to(dtype), state[1].to(dtype))
            return self.lstm(x.to(dtype), state)

    def encode(self, frames: torch.Tensor,
               state: tuple[torch.Tensor, torch.Tensor] | None = None,
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Raw LSTM outputs h (B, T, D) of a clip and the LSTM state (h, c) to continue from."""
        return self.run_lstm(self.features(frames), state)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Expression logits per time step: h (B, T, D) → (B, T, n_classes)."""
        if self.classifier is None:
            raise InputShapeError("this encoder has no classification head (n_classes = 0)")
        return self.classifier(h)

    def regress(self, h: torch.Tensor) -> torch.Tensor:
        """Per-frame parameter estimates: h (B, T, D) → (B, T, n_params)."""
        if self.regressor is None:
            raise InputShapeError("this encoder has no regression head (n_params = 0)")
        return self.regressor(h)

    def init_state(self, reference: torch.Tensor) -> EncoderState:
        """Start a stream: the reference frame (B, 3, H, W), or its landmarks (B, 68, 2),
        defines the static sequence."""
        self._check_reference(reference)
        phi_ref = self._phi(reference, reference)
        static = torch.ones(reference.shape[0], dtype=torch.bool, device=reference.device)
        return EncoderState(reference=reference, phi_ref=phi_ref, hidden=None, cell=None,
                            static=static)

    def step(self, frames: torch.Tensor,
             state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """Dynamics of the next chunk (B, T, 3, H, W) or (B, T, 68, 2) → (d, new state)."""
        self._check_clip(frames)
        b, t = frames.shape[:2]
        if state.batch != b:
            raise InputShapeError(f"frames have batch {b} but the encoder state tracks "
                                  f"{state.batch} clips; call init_state with matching batch")
        if t == 0:
            return frames.new_zeros(b, 0, self.dyn_dim), state
        phi = self.features(frames, state.reference)
        # which frames equal the reference exactly: their ASD is zero by definition, and we make
        # it zero bit for bit (float rounding differs between batch sizes, so subtraction alone
        # would leave ~1e-7 noise where the maths says 0)
        same = (frames == state.reference.unsqueeze(1)).flatten(2).all(-1)
        skip = self.displacements(frames, state.reference) if self.skip else None
        if self.mode == "cnn_diff":
            assert self.diff_proj is not None
            d = self._with_skip(self.diff_proj(phi - state.phi_ref.unsqueeze(1)), skip)
            d = d.masked_fill(same.unsqueeze(-1), 0.0)
            return d, replace(state, frames_seen=state.frames_seen + t)
        hc = None if state.hidden is None else (state.hidden, state.cell)
        if self.mode == "raw":
            out, (h, c) = self.run_lstm(phi, hc)
            return self._with_skip(out, skip), replace(state, hidden=h, cell=c,
                                                       frames_seen=state.frames_seen + t)
        # source and static sequence through one batched LSTM call
        static_in = state.phi_ref.unsqueeze(1).expand(b, t, phi.shape[-1])
        out, (h, c) = self.run_lstm(torch.cat([phi, static_in], 0), hc)
        h_src, h_static = out[:b], out[b:]
        # a source that has not yet left the reference is the static sequence, so its ASD is 0
        prefix = torch.cumprod(same, dim=1).bool() & state.static.unsqueeze(1)
        d = self._with_skip(h_src - h_static, skip).masked_fill(prefix.unsqueeze(-1), 0.0)
        still = prefix[:, -1]
        # keep the source LSTM state identical to the static one while the clip is static, so
        # the shared computation stays exact across chunk boundaries
        keep = still.view(1, b, 1)
        h = torch.cat([torch.where(keep, h[:, b:], h[:, :b]), h[:, b:]], 1)
        c = torch.cat([torch.where(keep, c[:, b:], c[:, :b]), c[:, b:]], 1)
        return d, replace(state, hidden=h, cell=c, static=still,
                          frames_seen=state.frames_seen + t)

    @staticmethod
    def _with_skip(d: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        return d if skip is None else torch.cat([d, skip.to(d.dtype)], -1)

    def extract(self, frames: torch.Tensor, reference_index: int = 0) -> torch.Tensor:
        """Dynamics of a whole clip (B, T, 3, H, W), or its landmarks (B, T, 68, 2), against
        one of its frames → (B, T, D)."""
        self._check_clip(frames)
        t = frames.shape[1]
        if not -t <= reference_index < t:
            raise InputShapeError(f"reference_index {reference_index} is outside the clip's "
                                  f"{t} frames; pass an index between 0 and {t - 1}")
        d, _ = self.step(frames, self.init_state(frames[:, reference_index]))
        return d
