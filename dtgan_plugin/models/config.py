"""Model configuration: every size and choice of the Dynamics Transfer GAN as a config value.

PAPER.md explains which choices are the paper's and which are ours ([I] items); each of ours is
a field here so it can be changed if the paper's real values become known. A config travels
inside every checkpoint as JSON (``ModelConfig.to_dict()``) and is validated on the way back
(``ModelConfig.from_dict``): an unknown key or a bad value raises :class:`ConfigError` naming
the key, e.g. ``generator_cfg.base_width``.

Speed-driven defaults (measured on the project's 2-core AMD EPYC CPU, fp32, see
``benchmarks/test_bench_generator.py``):

* generator base width 32 (pix2pix uses 64), 3×3 stride-2 convs and transposed convs below
  full size (4×4 costs 1.6× the FLOPs, measured ~1.25× slower; the full-size output layer keeps
  4×4 so no checkerboard reaches the frames), no normalisation in the generator (FiLM carries
  the dynamics; GroupNorm/InstanceNorm measured 15–30 % slower on CPU), transposed-conv
  upsampling (nearest + conv is ~2× slower);
* encoder LSTM hidden size 256 (PAPER.md's guess is 512). Either meets the speed targets; 512
  measured ~10–20 % slower for the encoder (the generator barely notices) and adds ~1.6 M
  parameters, so the smaller one is the default. D = 256 is then the dynamics dimension.

Example::

    cfg = ModelConfig(resolution=128, generator="synth")
    cfg2 = ModelConfig.from_dict(cfg.to_dict())
    assert cfg2 == cfg
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError

NORMS = ("none", "batch", "group", "instance")
GENERATORS = ("warp", "synth", "geowarp")
DYNAMICS_INPUTS = ("pixels", "landmarks")
LANDMARK_ENCODINGS = ("coords", "heatmap")
ASD_MODES = ("asd", "raw", "cnn_diff")
CLIP_KINDS = ("lstm", "conv3d")
CLIP_SCORES = ("mean", "last")
CLIP_INPUTS = ("frames", "frames+diff")
UPSAMPLES = ("deconv", "nearest")
MIN_RESOLUTION = 32
MAX_RESOLUTION = 1024


def _fail(key: str, why: str) -> None:
    raise ConfigError(f"model config '{key}' {why}")


def _check_int(key: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, f"must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        _fail(key, f"must be {rng}, got {value}")


def _check_float(key: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(key, f"must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        _fail(key, f"must be between {lo} and {hi}, got {value}")


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(key, f"must be one of {', '.join(choices)}, got {value!r}")


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(key, f"must be true or false, got {value!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """The dynamics encoder: per-frame CNN φ → Linear → 1-layer LSTM, plus pre-training heads.

    ``widths`` are the channels of the stride-2 conv blocks at 64×64 (four blocks take 64 → 4);
    at higher resolutions extra blocks of ``widths[0]`` channels are prepended so the CNN always
    ends at 4×4. ``feature_dim`` is φ's output size, ``hidden`` the LSTM size and therefore the
    dynamics dimension D. ``n_classes``/``n_params`` size the expression-classification and
    per-frame-parameter regression heads (0 disables a head). ``landmark_encoding`` is how φ
    reads landmarks when the model's ``dynamics_input`` is ``landmarks``: ``coords`` (an MLP
    over the 68 points in the reference face's frame) or ``heatmap`` (the points rasterised
    into six part maps and read by a small CNN, the paper's kind of input). With
    ``geometry_skip`` a landmark model's dynamics vector also carries the source's landmark
    displacements from the reference frame, in the reference face's frame (136 numbers after
    the LSTM's ASD): the exact geometric part of the motion, which the generator's motion head
    starts from and corrects (see :mod:`~dtgan_plugin.models.geowarp`).
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    kernel_size: int = 4
    norm: str = "none"
    feature_dim: int = 256
    hidden: int = 256
    n_classes: int = 6
    n_params: int = 10
    landmark_encoding: str = "coords"
    geometry_skip: bool = True

    def validate(self, prefix: str = "encoder") -> None:
        """Raise ConfigError (naming the key) if a value is out of range."""
        if not isinstance(self.widths, (tuple, list)) or len(self.widths) != 4:
            _fail(f"{prefix}.widths", f"must be a list of 4 channel counts, got {self.widths!r}")
        for i, w in enumerate(self.widths):
            _check_int(f"{prefix}.widths[{i}]", w, 1, 4096)
        _check_int(f"{prefix}.kernel_size", self.kernel_size, 3, 4)
        _check_choice(f"{prefix}.norm", self.norm, NORMS)
        _check_int(f"{prefix}.feature_dim", self.feature_dim, 1, 65536)
        _check_int(f"{prefix}.hidden", self.hidden, 1, 65536)
        _check_int(f"{prefix}.n_classes", self.n_classes, 0, 100000)
        _check_int(f"{prefix}.n_params", self.n_params, 0, 100000)
        _check_choice(f"{prefix}.landmark_encoding", self.landmark_encoding, LANDMARK_ENCODINGS)
        _check_bool(f"{prefix}.geometry_skip", self.geometry_skip)


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator trunk (U-Net over the target image) and its heads.

    Widths double from ``base_width`` per down-block up to ``max_width``; the number of blocks is
    log2(resolution) − 2 so the bottleneck is always 4×4. ``kernel_size`` (3 or 4) is that of the
    stride-2 convs and transposed convs below full size. ``dyn_channels`` is the size of the
    dynamics map concatenated at the bottleneck (Linear(D → 4·4·dyn_channels)); ``film`` also
    modulates every decoder scale with the dynamics. ``max_flow`` bounds the warp generator's
    displacement (fraction of the half image size, i.e. normalised grid units), and
    ``synth_residual`` makes the synth generator predict a residual over the target (identity at
    init) instead of a plain tanh image (the paper's plain U-Net; measured much worse).
    ``head_init_std`` is the weight scale of the output heads: small, so each generator starts
    as (nearly) the identity map, but not zero, so gradients reach every layer from step one.
    ``identity_at_rest`` makes zero dynamics render the target exactly: the heads' outputs at
    d = 0 (computed once per target) are subtracted from every frame's, so flow and residual
    describe change only (without it the shipped 64 px model was 0.0043 L1 off the target at
    rest, a quarter of its whole P2 error).

    The ``geowarp`` generator also uses ``motion_hidden``: the width of the MLP that turns the
    dynamics and the target's landmarks into landmark displacements (with the encoder's
    geometry skip: a correction of the source's displacements, used when
    ``motion_correction``), and ``flow_correction``: whether its refinement net's flow
    correction is added to the spline's flow (the mask and residual always apply), and
    ``mouth_cavity``: whether a mouth opened wider than at rest keeps its lips' content rigid
    and shows a dark cavity between them instead of stretching it (:mod:`.mouth`), and
    ``head_outline``: whether an outline around the skull and hair moves with the head, so the
    hair turns and travels with the face (:mod:`.head_outline`; given the target's person
    matte, the person moves as a layer over a still background, :mod:`.head_layer`), and
    ``body_anchors``: whether anchors below the jaw keep the neck, collar and shoulders nearly
    still while the head moves (:mod:`.body_anchors`), and ``eyelids``: whether an eye the warp
    squeezes shut is painted over with its lid's skin (:mod:`.eyelids`).
    """

    base_width: int = 32
    max_width: int = 256
    kernel_size: int = 3
    dyn_channels: int = 64
    film: bool = True
    norm: str = "none"
    upsample: str = "deconv"
    max_flow: float = 0.5
    synth_residual: bool = True
    head_init_std: float = 1e-3
    identity_at_rest: bool = False
    motion_hidden: int = 256
    motion_correction: bool = True
    flow_correction: bool = True
    mouth_cavity: bool = False
    head_outline: bool = False
    body_anchors: bool = False
    eyelids: bool = False

    def validate(self, prefix: str = "generator_cfg") -> None:
        """Raise ConfigError (naming the key) if a value is out of range."""
        _check_int(f"{prefix}.base_width", self.base_width, 1, 4096)
        _check_int(f"{prefix}.max_width", self.max_width, 1, 8192)
        if self.max_width < self.base_width:
            _fail(f"{prefix}.max_width", f"must be >= base_width ({self.base_width}), "
                  f"got {self.max_width}")
        _check_int(f"{prefix}.kernel_size", self.kernel_size, 3, 4)
        _check_int(f"{prefix}.dyn_channels", self.dyn_channels, 1, 4096)
        _check_bool(f"{prefix}.film", self.film)
        _check_choice(f"{prefix}.norm", self.norm, NORMS)
        _check_choice(f"{prefix}.upsample", self.upsample, UPSAMPLES)
        _check_float(f"{prefix}.max_flow", self.max_flow, 0.0, 2.0)
        _check_bool(f"{prefix}.synth_residual", self.synth_residual)
        _check_float(f"{prefix}.head_init_std", self.head_init_std, 0.0, 1.0)
        _check_bool(f"{prefix}.identity_at_rest", self.identity_at_rest)
        _check_int(f"{prefix}.motion_hidden", self.motion_hidden, 1, 65536)
        _check_bool(f"{prefix}.motion_correction", self.motion_correction)
        _check_bool(f"{prefix}.flow_correction", self.flow_correction)
        _check_bool(f"{prefix}.mouth_cavity", self.mouth_cavity)
        _check_bool(f"{prefix}.head_outline", self.head_outline)
        _check_bool(f"{prefix}.body_anchors", self.body_anchors)
        _check_bool(f"{prefix}.eyelids", self.eyelids)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The two discriminators used in training.

    D_S (``frame_*``): PatchGAN over [target; frame] with ``frame_layers`` stride-2 blocks from
    ``frame_base_width`` channels. D_T (``clip_*``): ``clip_kind="lstm"`` is a per-frame CNN whose
    features are concatenated with the source ASD d_t and run through an LSTM, scored by the
    mean (or the last) per-step logit; ``clip_kind="conv3d"`` is a 3-D conv net over the clip
    with d_t tiled in as ``clip_dyn_channels`` extra channels. ``spectral_norm`` wraps every
    conv/linear weight of both.
    """

    frame_base_width: int = 32
    frame_layers: int = 3
    frame_norm: str = "none"
    spectral_norm: bool = True
    clip_kind: str = "lstm"
    clip_base_width: int = 32
    clip_hidden: int = 128
    clip_dyn_channels: int = 16
    clip_score: str = "mean"
    clip_input: str = "frames"

    def validate(self, prefix: str = "discriminator") -> None:
        """Raise ConfigError (naming the key) if a value is out of range."""
        _check_int(f"{prefix}.frame_base_width", self.frame_base_width, 1, 4096)
        _check_int(f"{prefix}.frame_layers", self.frame_layers, 1, 6)
        _check_choice(f"{prefix}.frame_norm", self.frame_norm, NORMS)
        _check_bool(f"{prefix}.spectral_norm", self.spectral_norm)
        _check_choice(f"{prefix}.clip_kind", self.clip_kind, CLIP_KINDS)
        _check_int(f"{prefix}.clip_base_width", self.clip_base_width, 1, 4096)
        _check_int(f"{prefix}.clip_hidden", self.clip_hidden, 1, 65536)
        _check_int(f"{prefix}.clip_dyn_channels", self.clip_dyn_channels, 1, 4096)
        _check_choice(f"{prefix}.clip_score", self.clip_score, CLIP_SCORES)
        _check_choice(f"{prefix}.clip_input", self.clip_input, CLIP_INPUTS)


_SECTIONS: dict[str, type] = {
    "encoder": EncoderConfig,
    "generator_cfg": GeneratorConfig,
    "discriminator": DiscriminatorConfig,
}


@dataclass(frozen=True)
class ModelConfig:
    """The whole model: resolution, generator kind, ASD mode and the three sub-configs.

    ``resolution`` is the square frame size the model works at (a power of two, 32–1024; 64, 128
    and 256 are tested). ``generator`` picks ``warp`` (flow + occlusion mask + residual over the
    warped target; the default) or ``synth`` (the paper's U-Net synthesis, residual over the
    target). ``asd_mode`` picks the dynamics fed to the generator: ``asd`` (h_t(source) −
    h_t(static), the paper's appearance-suppressed dynamics), ``raw`` (h_t(source), ablation) or
    ``cnn_diff`` (projected φ(s_t) − φ(reference), ablation). ``dynamics_input`` is what the
    encoder reads: ``pixels`` (frames, the paper's) or ``landmarks`` (the 68 iBUG points of
    each frame, DESIGN.md §12). ``geowarp`` (landmark-conditioned warp) needs the target's
    landmarks, whichever the dynamics input.
    """

    resolution: int = 64
    generator: str = "warp"
    asd_mode: str = "asd"
    dynamics_input: str = "pixels"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    generator_cfg: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        # tuples keep the frozen dataclass hashable and comparable after a JSON round trip
        if isinstance(self.encoder.widths, list):
            object.__setattr__(self, "encoder",
                               dataclasses.replace(self.encoder, widths=tuple(self.encoder.widths)))
        self.validate()

    @property
    def geometry_skip(self) -> bool:
        """True when the dynamics carry the landmark displacements after the ASD."""
        return self.uses_landmarks and self.encoder.geometry_skip

    @property
    def dyn_dim(self) -> int:
        """The size D of one dynamics vector: the encoder's LSTM hidden size, plus 136
        (68 displacements) with the geometry skip."""
        return self.encoder.hidden + (136 if self.geometry_skip else 0)

    @property
    def uses_landmarks(self) -> bool:
        """True when the model reads landmarks (the source's, and the target's for geowarp)."""
        return self.dynamics_input == "landmarks"

    @property
    def needs_landmarks(self) -> bool:
        """True when running the model needs any landmarks (source's or target's)."""
        return self.uses_landmarks or self.generator == "geowarp"

    @property
    def levels(self) -> int:
        """Number of stride-2 levels that take ``resolution`` down to 4×4."""
        return int(math.log2(self.resolution)) - 2

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        _check_int("resolution", self.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        if self.resolution & (self.resolution - 1):
            _fail("resolution", f"must be a power of two (64, 128, 256), got {self.resolution}")
        _check_choice("generator", self.generator, GENERATORS)
        _check_choice("asd_mode", self.asd_mode, ASD_MODES)
        _check_choice("dynamics_input", self.dynamics_input, DYNAMICS_INPUTS)
        for key, cls in _SECTIONS.items():
            sub = getattr(self, key)
            if not isinstance(sub, cls):
                _fail(key, f"must be a {cls.__name__}, got {type(sub).__name__}")
            sub.validate(key)
        if self.discriminator.frame_layers > self.levels:
            _fail("discriminator.frame_layers", f"must be <= {self.levels} at resolution "
                  f"{self.resolution} (the patches would vanish), got "
                  f"{self.discriminator.frame_layers}")
        g = self.generator_cfg
        if g.identity_at_rest and self.generator == "synth" and not g.synth_residual:
            # a plain tanh image has no "no change" output to anchor: rest would be mid-grey
            _fail("generator_cfg.identity_at_rest", "needs a residual generator; set "
                  "generator_cfg.synth_residual = true or generator = \"warp\"")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["encoder"]["widths"] = list(self.encoder.widths)
        return out

    def to_json(self) -> str:
        """Compact, key-sorted JSON (stable, so it can be hashed).

        Keys added after a release are left out while they hold the value that reproduces the
        older behaviour, so the JSON, and with it every older checkpoint's fingerprint, stays
        the same.
        """
        data = self.to_dict()
        for (section, key), old in _LATER_KEYS.items():
            where = data if section is None else data[section]
            if where.get(key) == old:
                del where[key]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some top-level fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Build and validate a config; missing keys take defaults, unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"model config must be a mapping, got {type(data).__name__}")
        top = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in top:
                _unknown(str(key), top)
            if key in _SECTIONS:
                kwargs[key] = _section(key, _SECTIONS[key], value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Parse JSON text and build a validated config."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model config is not valid JSON: {err}") from None
        return cls.from_dict(data)


# (section, key) → the value that behaves as before the key existed
_LATER_KEYS: dict[tuple[str | None, str], Any] = {
    ("generator_cfg", "identity_at_rest"): False, ("discriminator", "clip_input"): "frames",
    (None, "dynamics_input"): "pixels", ("encoder", "landmark_encoding"): "coords",
    ("encoder", "geometry_skip"): True,
    ("generator_cfg", "motion_hidden"): 256, ("generator_cfg", "motion_correction"): True,
    ("generator_cfg", "flow_correction"): True, ("generator_cfg", "mouth_cavity"): False,
    ("generator_cfg", "head_outline"): False, ("generator_cfg", "body_anchors"): False,
    ("generator_cfg", "eyelids"): False}


def _unknown(key: str, known: set[str]) -> None:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], sorted(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
    raise ConfigError(f"unknown model config key '{key}'", hint=hint)


def _section(name: str, cls: type, value: Any) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        _fail(name, f"must be a mapping, got {type(value).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in known:
            _unknown(f"{name}.{key}", known)
    kwargs = dict(value)
    if "widths" in kwargs and isinstance(kwargs["widths"], list):
        kwargs["widths"] = tuple(kwargs["widths"])
    return cls(**kwargs)
