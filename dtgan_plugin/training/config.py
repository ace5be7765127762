"""Training configuration: TOML mapped onto dataclasses, every PAPER.md default a value.

A config file has the sections ``[run]``, ``[data]``, ``[augment]``, ``[pretrain]``,
``[optim]``, ``[loss]`` and ``[model]`` (the model section is
:class:`~dtgan_plugin.models.config.ModelConfig`'s dictionary form). Unknown keys are errors,
so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@dataclass
class RunConfig:
    """Where and how the run goes."""

    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"
    #: CPU threads for torch (0 = torch's default)
    num_threads: int = 0
    #: mixed precision on CUDA (bf16); ignored on CPU
    amp: bool = True
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 100
    #: stop after this many wall-clock seconds (0 = no limit); the run still saves
    time_limit_s: float = 0.0
    #: start from the weights of another run's train_state.safetensors (fine-tuning, e.g. on
    #: longer clips); the optimisers start fresh. Empty = from scratch
    init_from: str = ""
    #: also keep every checkpoint as checkpoints/model_STEP.safetensors, for `dtgan average`
    keep_checkpoints: bool = False


@dataclass
class DataConfig:
    """Where clips come from: the procedural faces or a folder of videos."""

    source: str = "synth"  # synth | folder
    folder: str = ""
    size: int = 64
    frames: int = 16
    identities: int = 2000
    batch_size: int = 16
    #: fraction of cross-identity pairs per batch (PAPER.md §5: 50/50)
    cross_fraction: float = 0.5
    #: folder data: frame stride, or a target fps (0 = use stride)
    stride: int = 1
    fps: float = 0.0
    workers: int = 0


@dataclass
class AugmentConfig:
    """Kornia augmentation (same parameters across a clip and its target) and temporal ones."""

    enabled: bool = True
    hflip: float = 0.5
    #: max translation as a fraction of the size, scale jitter, rotation in degrees
    translate: float = 0.04
    scale: float = 0.06
    degrees: float = 4.0
    color_jitter: float = 0.05
    #: probability of reversing a source clip, and of a speed change (0.5x–2x)
    reverse: float = 0.2
    speed: float = 0.3
    #: landmark models: Gaussian jitter added to the source's landmarks before the encoder,
    #: in interocular distances (a real landmarker's frame-to-frame noise; 0 = off)
    landmark_noise: float = 0.0


@dataclass
class PretrainConfig:
    """Stage 1: the dynamics encoder on expression classes and per-frame parameters."""

    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 32
    weight_params: float = 1.0
    weight_class: float = 1.0
    #: keep the encoder frozen in stage 2 (PAPER.md default); False trains it jointly
    freeze: bool = True


@dataclass
class OptimConfig:
    """Stage 2 optimisation (PAPER.md §5: Adam 2e-4, betas (0.5, 0.999), linear decay)."""

    steps: int = 2000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    #: linear decay to zero starts at this fraction of the steps
    decay_start: float = 0.5
    #: "steps": the decay follows the step count (reproducible); "time": it follows whichever
    #: of the steps or run.time_limit_s runs out first, so a run given an hour ends its hour
    #: with the learning rate decayed, however fast the machine turned out to be
    schedule: str = "steps"
    d_steps: int = 1
    grad_clip: float = 0.0


@dataclass
class LossConfig:
    """Loss weights and switches (PAPER.md §5 and §7 ablations)."""

    gan: str = "lsgan"  # lsgan | bce (non-saturating)
    w_spatial: float = 1.0
    w_temporal: float = 1.0
    w_rec: float = 10.0
    w_dyn: float = 1.0
    #: feature matching: L1 between each enabled discriminator's hidden features of the output
    #: and of the true clip (clips with ground truth only; 0 = off)
    w_fm: float = 0.0
    #: use the procedural cross-identity ground truth for L1 on cross pairs
    cross_truth: bool = True
    #: ablations: drop a discriminator
    use_ds: bool = True
    use_dt: bool = True
    #: frames per clip scored by D_S
    ds_frames: int = 4
    #: R1 gradient penalty weight on real samples (0 = off)
    r1: float = 0.0
    #: adversarial losses start after this many steps (L1 warm-up keeps early G sane)
    adv_start: int = 0
    #: matching-aware D_T (PAPER.md §4): weight of a third, "mismatch" term in D_T's loss —
    #: real clips paired with another clip's ASD count as fake, so D_T must check that the
    #: motion matches the source, not only that it is plausible (0 = off)
    dt_mismatch: float = 0.0
    #: landmark models: L1 (pixels) between the landmarks G moves the target's to and the
    #: truth's landmarks, on clips with ground truth (0 = off)
    w_landmarks: float = 0.0


@dataclass
class TrainConfig:
    """The whole training configuration."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dictionary (round-trips through :func:`config_from_dict`)."""
        return dataclasses.asdict(self)


_SECTIONS = {"run": RunConfig, "data": DataConfig, "augment": AugmentConfig,
             "pretrain": PretrainConfig, "optim": OptimConfig, "loss": LossConfig}


def _fill(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, list(known), n=1)
            raise ConfigError(f"unknown key '{where}.{key}'",
                              hint=f"did you mean '{close[0]}'?" if close else
                              f"known keys: {', '.join(known)}")
        default = getattr(cls(), key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"'{where}.{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"'{where}.{key}' must be a number, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                what = "learning rate" if "lr" in key.split("_") else "number"
                raise ConfigError(f"'{where}.{key}' must be a finite {what}, got {value!r}")
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
                if not value.is_integer():
                    raise ConfigError(f"'{where}.{key}' must be a whole number, got {value!r}")
                value = int(value)
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"'{where}.{key}' must be a string, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Validate a dictionary (e.g. parsed TOML) into a :class:`TrainConfig`."""
    cfg = TrainConfig()
    for key, value in raw.items():
        if key == "model":
            if not isinstance(value, dict):
                raise ConfigError("[model] must be a table")
            cfg.model = value
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            setattr(cfg, key, _fill(_SECTIONS[key], value, key))
        else:
            raise ConfigError(f"unknown section [{key}]",
                              hint=f"sections are {', '.join([*_SECTIONS, 'model'])}")
    _check(cfg)
    return cfg


#: (section, key, low, high, high included): the range every numeric option must lie in
_RANGES: tuple[tuple[str, str, float, float, bool], ...] = (
    ("optim", "lr_g", 0.0, math.inf, False), ("optim", "lr_d", 0.0, math.inf, False),
    ("pretrain", "lr", 0.0, math.inf, False),
    ("optim", "beta1", 0.0, 1.0, False), ("optim", "beta2", 0.0, 1.0, False),
    ("optim", "decay_start", 0.0, 1.0, True), ("optim", "grad_clip", 0.0, math.inf, False),
    ("run", "time_limit_s", 0.0, math.inf, False), ("data", "fps", 0.0, 1000.0, True),
    ("augment", "hflip", 0.0, 1.0, True), ("augment", "reverse", 0.0, 1.0, True),
    ("augment", "speed", 0.0, 1.0, True), ("augment", "translate", 0.0, 1.0, True),
    ("augment", "scale", 0.0, 1.0, True), ("augment", "degrees", 0.0, 180.0, True),
    ("augment", "color_jitter", 0.0, 1.0, True),
    ("pretrain", "weight_params", 0.0, math.inf, False),
    ("pretrain", "weight_class", 0.0, math.inf, False),
    *(("loss", key, 0.0, math.inf, False)
      for key in ("w_spatial", "w_temporal", "w_rec", "w_dyn", "w_fm", "r1", "dt_mismatch")),
)


def _check_ranges(cfg: TrainConfig) -> None:
    """Every numeric option in its range (lower bound included; lr > 0 strictly)."""
    for section, key, low, high, high_ok in _RANGES:
        value = getattr(getattr(cfg, section), key)
        above = value > high if high_ok else value >= high
        below = value <= low if key.startswith("lr") else value < low
        if below or above:
            first = "(" if key.startswith("lr") else "["
            last = "]" if high_ok else ")"
            raise ConfigError(f"'{section}.{key}' must be in {first}{low:g}, {high:g}{last}, "
                              f"got {value!r}")


def _check(cfg: TrainConfig) -> None:
    _check_ranges(cfg)
    if cfg.data.source not in ("synth", "folder"):
        raise ConfigError(f"data.source must be 'synth' or 'folder', got {cfg.data.source!r}")
    if cfg.data.source == "folder" and not cfg.data.folder:
        raise ConfigError("data.source = 'folder' needs data.folder")
    if cfg.optim.schedule not in ("steps", "time"):
        raise ConfigError(f"optim.schedule must be 'steps' or 'time', got {cfg.optim.schedule!r}")
    if cfg.optim.schedule == "time" and not cfg.run.time_limit_s > 0:
        raise ConfigError("optim.schedule = 'time' needs run.time_limit_s > 0",
                          hint="set run.time_limit_s, or use optim.schedule = 'steps'")
    if cfg.loss.gan not in ("lsgan", "bce"):
        raise ConfigError(f"loss.gan must be 'lsgan' or 'bce', got {cfg.loss.gan!r}")
    if cfg.loss.w_fm < 0:
        raise ConfigError(f"loss.w_fm must be >= 0, got {cfg.loss.w_fm!r}")
    if cfg.loss.dt_mismatch < 0:
        raise ConfigError(f"loss.dt_mismatch must be >= 0, got {cfg.loss.dt_mismatch!r}")
    if cfg.data.frames < 2 or cfg.data.batch_size < 1:
        raise ConfigError("data.frames must be >= 2 and data.batch_size >= 1")
    if not 0.0 <= cfg.data.cross_fraction <= 1.0:
        raise ConfigError("data.cross_fraction must be in [0, 1]")
    if cfg.optim.steps < 0 or cfg.pretrain.steps < 0:
        raise ConfigError("steps must be >= 0")


#: the configs shipped in the package, loadable by name (``dtgan train default64``)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def builtin_configs() -> list[str]:
    """Names of the built-in configs, sorted."""
    return sorted(f.stem for f in CONFIG_DIR.glob("*.toml"))


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config; ``overrides`` are ``section.key=value`` strings (TOML values).

    Keys may go deeper than one table (``model.generator_cfg.identity_at_rest=true``).
    """
    p = Path(path)
    if not p.is_file():
        # a built-in name; a folder of the same name (a run's out_dir, say) is not a config
        builtin = CONFIG_DIR / f"{p.name}"
        alt = builtin if builtin.is_file() else builtin.with_suffix(".toml")
        if alt.is_file():
            p = alt
        elif p.exists():
            raise ConfigError(f"config '{path}' is a folder, not a TOML file",
                              hint="pass a TOML file, or a built-in name: "
                                   + ", ".join(builtin_configs()))
        else:
            raise ConfigError(f"config '{path}' does not exist",
                              hint="pass a TOML file, or a built-in name: "
                                   + ", ".join(builtin_configs()))
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config '{p}' is not valid TOML: {err}") from None
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, value = item.split("=", 1)
        # any depth: model.discriminator.clip_input=... reaches the nested table
        *tables, name = key.strip().split(".")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()
        node = raw
        for t in tables:
            node = node.setdefault(t, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{t}' is a value, not a table")
        node[name] = parsed
    return config_from_dict(raw)
