"""Configuration: decoder architectures and encoder schedules loaded from cfg/ into frozen dataclasses.

Two kinds of preset are kept apart: an architecture (`main`, `light`) fixes what the decoder runs and is
written into every bitstream; an encoder schedule (`fast`, `medium`, `slow`) only changes how long and
how the encoder trains. Unknown keys and out-of-range values are rejected with a message.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcodec.format import MAX_ARM_CONTEXT, MAX_LATENT_SUBSTREAMS
from vcodec.types import VcodecError

CFG_DIR = Path(__file__).resolve().parent.parent / "cfg"

ARM_CONTEXTS: tuple[int, ...] = (12, 24)  # the "raster" layout's sizes (format versions 1-2)
ARM_CONTEXT_LAYOUTS: tuple[str, ...] = ("raster", "priority")
CHROMA_DOWNSCALES: tuple[str, ...] = ("nearest", "mean")
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
LOSSES: tuple[str, ...] = ("mse", "logmse", "l1", "logcosh", "logcosh+ssim", "l1+ssim")
OPTIMIZERS: tuple[str, ...] = ("adam", "soap")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
NOISE_QUANTIZERS: tuple[str, ...] = ("noise", "softround")
NOISES: tuple[str, ...] = ("uniform", "gaussian", "kumaraswamy")
WARM_STARTS: tuple[str, ...] = ("off", "network", "all")  # what a frame takes from the one before it
WARM_START_ON = "network"  # what `--warm-start` turns on where the preset's warm_start is off (measured better)


class ConfigError(VcodecError):
    """A preset file or an override is unknown, misspelt or out of range."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ArchConfig:
    """What the decoder runs; every field is stored in the frame bitstream."""

    name: str = "main"
    latent_levels: int = 7
    arm_context: int = 24
    arm_context_layout: str = "priority"  # which neighbours: "priority" (nearest first) or "raster" (v1-2)
    arm_hidden: tuple[int, ...] = (24, 24)
    upsampling_kernel: int = 8
    synthesis_hidden: tuple[int, ...] = (40,)
    synthesis_residual: int = 2
    chroma_downscale: str = "mean"

    def __post_init__(self) -> None:
        _require(1 <= self.latent_levels <= 8, f"latent_levels must be 1..8, got {self.latent_levels}")
        _require(self.arm_context_layout in ARM_CONTEXT_LAYOUTS, f"arm_context_layout must be one of {ARM_CONTEXT_LAYOUTS}")
        if self.arm_context_layout == "raster":
            _require(self.arm_context in ARM_CONTEXTS, f"a raster arm_context must be one of {ARM_CONTEXTS}")
        _require(1 <= self.arm_context <= MAX_ARM_CONTEXT, f"arm_context must be 1..{MAX_ARM_CONTEXT}")
        _require(0 < len(self.arm_hidden) <= 4 and all(1 <= h <= 64 for h in self.arm_hidden),
                 f"arm_hidden must be 1..4 widths of 1..64, got {self.arm_hidden}")
        _require(self.upsampling_kernel == 8, "upsampling_kernel must be 8")
        _require(len(self.synthesis_hidden) <= 4 and all(1 <= h <= 96 for h in self.synthesis_hidden),
                 f"synthesis_hidden must be at most 4 widths of 1..96, got {self.synthesis_hidden}")
        _require(0 <= self.synthesis_residual <= 4, "synthesis_residual must be 0..4")
        _require(self.chroma_downscale in CHROMA_DOWNSCALES, f"chroma_downscale must be one of {CHROMA_DOWNSCALES}")


@dataclass(frozen=True)
class PresetConfig:
    """How the encoder trains (never needed by the decoder)."""

    name: str = "medium"
    iterations: int = 2500
    ste_fraction: float = 0.1
    learning_rate: float = 0.01
    latent_learning_rate: float = 0.1
    schedule: str = "cosine"
    ste_learning_rate: float = 1e-4
    noise_quantizer: str = "softround"  # first phase: "softround" (annealed temperature) or "noise" (uniform)
    softround_temperature: tuple[float, float] = (0.3, 0.1)  # start, end of the first phase
    noise: str = "uniform"  # noise of the first phase's quantizer: uniform, gaussian (sigma) or kumaraswamy (a)
    noise_parameter: tuple[float, float] = (1.0, 1.0)  # start, end of the first phase (unused by uniform)
    latent_gain: float = 0.0  # > 0: latents are gain * parameter and train at the network's learning rate
    gradient_clip: float = 0.0  # > 0: clip the global gradient norm to this
    learning_rate_floor: float = 0.0  # the cosine schedule ends here instead of 0
    validate_every: int = 0  # > 0: score the rounded model every N first-phase iterations, keep the best
    warmup_candidates: int = 1  # > 1: models from this many initialisations compete before the main phase
    warmup_iterations: int = 0  # iterations of each warm-up round (at most a quarter of all iterations in all)
    warmup_survivors: int = 2  # candidates that get a second warm-up round
    arch_candidates: tuple[str, ...] = ("tiny", "small", "main")  # what --arch auto tries (in the warm-up)
    quantization_patience: int = 2  # coarser parameter steps tried after the best so far stops improving
    rdoq_passes: int = 0  # > 0: passes of +-1 moves over the integer parameters, kept where the RD cost falls
    optimizer: str = "adam"  # of the network weights (the latents always use Adam): adam or soap
    # Frames of more pixels train on the memory-saving path (vcodec.model.frame_model): same result,
    # a fraction of the memory, somewhat slower per pixel. 0: every frame does.
    memory_saving_pixels: int = 1_000_000
    # Warm start (vcodec.encoder.warm_start): within a chain of `warm_chain` frames, each frame after the
    # first starts from the float model of the frame before it (its network, or network and latents) and
    # trains with the schedule below instead of the one above; every frame still decodes alone.
    warm_start: str = "off"  # off, network or all (network and latents)
    warm_chain: int = 8  # frames per chain: frame n starts cold where n % warm_chain == 0
    warm_fraction: float = 0.25  # a warm frame trains this share of `iterations` (an --iterations override too)
    warm_learning_rate: float = 0.01  # network, at the start of the warm frame's cosine schedule
    warm_latent_learning_rate: float = 0.1
    warm_softround_temperature: tuple[float, float] = (0.3, 0.1)

    @property
    def warm_iterations(self) -> int:
        """Iterations of a warm-started frame: the warm_fraction of iterations, at least 1."""
        return max(1, round(self.iterations * self.warm_fraction))

    def __post_init__(self) -> None:
        _require(1 <= self.iterations <= 1_000_000, f"iterations must be 1..1000000, got {self.iterations}")
        _require(0.0 <= self.ste_fraction <= 1.0, "ste_fraction must be within [0, 1]")
        _require(0.0 < self.learning_rate < 1.0, "learning_rate must be within (0, 1)")
        _require(0.0 < self.latent_learning_rate < 1.0, "latent_learning_rate must be within (0, 1)")
        _require(0.0 < self.ste_learning_rate < 1.0, "ste_learning_rate must be within (0, 1)")
        _require(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}")
        _require(self.noise_quantizer in NOISE_QUANTIZERS, f"noise_quantizer must be one of {NOISE_QUANTIZERS}")
        _require(len(self.softround_temperature) == 2 and all(0.01 <= t <= 10.0 for t in self.softround_temperature),
                 "softround_temperature must be two numbers (start, end) within [0.01, 10]")
        _require(1 <= self.quantization_patience <= 16, "quantization_patience must be 1..16")
        _require(self.noise in NOISES, f"noise must be one of {NOISES}")
        _require(0 <= self.rdoq_passes <= 8, "rdoq_passes must be 0..8")
        _require(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        _require(len(self.noise_parameter) == 2 and all(0.0 < v <= 10.0 for v in self.noise_parameter),
                 "noise_parameter must be two numbers (start, end) within (0, 10]")
        _require(0.0 <= self.latent_gain <= 256.0, "latent_gain must be within [0, 256]")
        _require(0.0 <= self.gradient_clip, "gradient_clip must be >= 0")
        _require(0.0 <= self.learning_rate_floor < self.learning_rate, "learning_rate_floor must be in [0, learning_rate)")
        _require(0 <= self.validate_every, "validate_every must be >= 0")
        _require(0 <= self.memory_saving_pixels, "memory_saving_pixels must be >= 0")
        _require(1 <= self.warmup_candidates <= 16, "warmup_candidates must be 1..16")
        _require(1 <= self.warmup_survivors <= self.warmup_candidates or self.warmup_candidates == 1,
                 "warmup_survivors must be 1..warmup_candidates")
        _require(self.warm_start in WARM_STARTS, f"warm_start must be one of {WARM_STARTS}")
        _require(1 <= self.warm_chain <= 1_000_000, f"warm_chain must be 1..1000000, got {self.warm_chain}")
        _require(0.0 < self.warm_fraction <= 1.0, f"warm_fraction must be within (0, 1], got {self.warm_fraction}")
        _require(self.learning_rate_floor < self.warm_learning_rate < 1.0,
                 "warm_learning_rate must be within (learning_rate_floor, 1)")
        _require(0.0 < self.warm_latent_learning_rate < 1.0, "warm_latent_learning_rate must be within (0, 1)")
        _require(len(self.warm_softround_temperature) == 2
                 and all(0.01 <= t <= 10.0 for t in self.warm_softround_temperature),
                 "warm_softround_temperature must be two numbers (start, end) within [0.01, 10]")
        warmup = self.iterations // 4  # the most the warm-up may take (encoder/train.py WARMUP_SHARE_MAX)
        _require(warmup + round(self.iterations * self.ste_fraction) < self.iterations,
                 "the warm-up and the final phase leave no iterations for the main phase")


@dataclass(frozen=True)
class EncoderConfig:
    """Everything an encode needs besides the frame and lambda."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    preset: PresetConfig = field(default_factory=PresetConfig)
    arch_candidates: tuple[ArchConfig, ...] = ()  # --arch auto: the warm-up picks one of these per frame
    loss: str = "logmse"  # PSNR-YUV's own distortion (measured: -4 % BD-rate YUV, +10 % Y)
    device: str = "cpu"
    seed: int = 0
    latent_substreams: int = 0  # 0: the format's default (2 at 256+ rows, else 1; vcodec.entropy.substreams)

    def __post_init__(self) -> None:
        _require(self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}")
        _require(0 <= self.latent_substreams <= MAX_LATENT_SUBSTREAMS,
                 f"latent_substreams must be 0 (automatic) to {MAX_LATENT_SUBSTREAMS}")
        _require(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        _require(0 <= self.seed < 2**31, "seed must be within [0, 2^31)")

    @property
    def archs(self) -> tuple[ArchConfig, ...]:
        """The architectures an encode may write: the candidates of --arch auto, else the one arch."""
        return self.arch_candidates or (self.arch,)


def _from_mapping(cls: type, values: dict[str, Any], source: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    _require(not unknown, f"{source}: unknown key(s) {', '.join(unknown)}")
    converted = {}
    for key, value in values.items():
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not dataclasses.MISSING and type(value) is not type(default):
            raise ConfigError(f"{source}: {key} must be {type(default).__name__}, got {value!r}")
        converted[key] = value
    return cls(**converted)


def _load_toml(kind: str, name: str) -> dict[str, Any]:
    path = CFG_DIR / kind / f"{name}.toml"
    if not path.is_file():
        available = sorted(p.stem for p in (CFG_DIR / kind).glob("*.toml"))
        what = {"arch": "arch", "presets": "preset"}.get(kind, kind)  # the folder's name, in the singular
        raise ConfigError(f"unknown {what} {name!r} (available: {', '.join(available)})")
    return _read_toml(path)


def _read_toml(path: Path) -> dict[str, Any]:
    """A config file's table; a syntax error is the user's config error, not a crash."""
    with path.open("rb") as handle:
        try:
            return tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error})") from None


def load_arch(name: str) -> ArchConfig:
    return _from_mapping(ArchConfig, _load_toml("arch", name), f"cfg/arch/{name}.toml")


def load_preset(name: str) -> PresetConfig:
    return _from_mapping(PresetConfig, _load_toml("presets", name), f"cfg/presets/{name}.toml")


AUTO_ARCH = "auto"


def load_config(arch: str = "auto", preset: str = "medium", **overrides: Any) -> EncoderConfig:
    """Build an encoder configuration from named presets; any field of any part can be overridden.

    arch "auto": every frame picks among the preset's `arch_candidates` (arch overrides apply to each).

    Overrides are matched by name against EncoderConfig, then PresetConfig, then ArchConfig fields,
    e.g. `load_config("light", "fast", iterations=50, chroma_downscale="nearest", device="cuda")`.
    """
    preset_values = dict(_load_toml("presets", preset))
    arch_names = [arch]
    if arch == AUTO_ARCH:
        arch_names = list(overrides.get("arch_candidates") or preset_values.get("arch_candidates")
                          or PresetConfig.arch_candidates)
    arch_tables = [dict(_load_toml("arch", name)) for name in arch_names]
    top_values: dict[str, Any] = {}
    top_fields = {f.name for f in dataclasses.fields(EncoderConfig)} - {"arch", "preset", "arch_candidates"}
    preset_fields = {f.name for f in dataclasses.fields(PresetConfig)} - {"name"}
    arch_fields = {f.name for f in dataclasses.fields(ArchConfig)} - {"name"}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in top_fields:
            top_values[key] = value
        elif key in preset_fields:
            preset_values[key] = value
        elif key in arch_fields:
            for table in arch_tables:
                table[key] = value
        else:
            raise ConfigError(f"unknown configuration field {key!r}")
    archs = tuple(_from_mapping(ArchConfig, table, f"arch {name}") for name, table in zip(arch_names, arch_tables))
    return EncoderConfig(
        arch=archs[-1],
        preset=_from_mapping(PresetConfig, preset_values, f"preset {preset}"),
        arch_candidates=archs if arch == AUTO_ARCH else (),
        **top_values,
    )


RATE_POINTS_FILE = CFG_DIR / "rate_points.toml"


def load_rate_points(path: Path = RATE_POINTS_FILE) -> dict[str, float]:
    """Named rate points (`r1`..) and their lambdas, from cfg/rate_points.toml."""
    table = _read_toml(path).get("lambda", {})
    numbers = (int, float)
    if (not isinstance(table, dict) or not table
            or any(isinstance(v, bool) or not isinstance(v, numbers) or v <= 0 for v in table.values())):
        raise ConfigError(f"{path}: [lambda] must map rate-point names to positive numbers")
    return {str(name): float(value) for name, value in table.items()}


RATE_CONTROL_FILE = CFG_DIR / "rate_control.toml"
RATE_METRICS: tuple[str, ...] = ("bpp", "psnr")


@dataclass(frozen=True)
class RateModel:
    """How one preset's coded result y (log bpp, or PSNR-YUV in dB) follows lambda and the frame's content.

    y = intercept + slope * ln(lambda) + feature * ln(gradient energy of the luma) for the finished frame.
    The search measures y at two checkpoints of one training (the probe and the middle of the main phase);
    `probe_offset` / `mid_offset` are y finished minus y measured there, at one lambda throughout, and
    `mid_slope` / `tail_slope` are dy / d ln(lambda) when only the rest of the training, from the middle or
    from the tail, runs at a new lambda: how much a late change of lambda can still move y."""

    intercept: float
    slope: float
    feature: float = 0.0
    probe_offset: float = 0.0
    mid_offset: float = 0.0
    mid_slope: float = 0.0   # 0: the slope itself
    tail_slope: float = 0.0  # 0: the slope itself

    def __post_init__(self) -> None:
        _require(self.slope != 0.0, "a rate model's slope must not be 0")
        for name in ("mid_slope", "tail_slope"):
            value = getattr(self, name)
            _require(value == 0.0 or value * self.slope > 0, f"a rate model's {name} must have the slope's sign")

    def late_slope(self, where: str) -> float:
        """dy / d ln(lambda) of a change of lambda from checkpoint `where` ("mid" or "tail") on."""
        return getattr(self, f"{where}_slope") or self.slope


@dataclass(frozen=True)
class RateControlConfig:
    """The lambda search of `--target-bpp/--target-kbps/--target-psnr` (vcodec.encoder.rate_control)."""

    probe_fraction: float = 0.15  # of the main phase: the length of a probe (after the warm-up)
    mid_fraction: float = 0.5     # of the main phase: the second checkpoint, where the search steers again
    tail_fraction: float = 0.2    # of the main phase: what a correction trains again at a corrected lambda
    steer_accuracy: float = 0.5   # at a checkpoint, lambda moves only when the forecast misses by this many tolerances
    max_probes: int = 2           # probes trained from scratch (the continuation reuses one)
    probe_accuracy: float = 5.0   # a second probe only when the first misses its goal by this many tolerances
    max_corrections: int = 2      # tail retrainings when the finished frame misses the tolerance
    trim_factors: tuple[float, ...] = (2.0, 4.0, 8.0, 0.5, 0.25, 0.125)  # parameter-coding lambdas tried, x training's
    time_budget: float = 1.6      # a correction only if the encode stays within this x a plain encode's time
    bpp_tolerance: float = 0.03   # relative
    psnr_tolerance: float = 0.15  # dB
    lmbda_min: float = 1e-6
    lmbda_max: float = 0.05
    slope_clip: float = 3.0       # a measured secant slope is kept within [1/clip, clip] x the model's
    models: dict[str, dict[str, RateModel]] = field(default_factory=dict)  # preset -> metric -> model

    def __post_init__(self) -> None:
        _require(0.0 < self.probe_fraction < 1.0, "probe_fraction must be within (0, 1)")
        _require(self.probe_fraction < self.mid_fraction < 1.0 - self.tail_fraction,
                 "need probe_fraction < mid_fraction < 1 - tail_fraction")
        _require(0.0 < self.tail_fraction < 1.0, "tail_fraction must be within (0, 1)")
        _require(self.steer_accuracy >= 0.0, "steer_accuracy must be >= 0")
        _require(len(self.trim_factors) <= 16 and all(0.0 < f < 1e3 and f != 1.0 for f in self.trim_factors),
                 "trim_factors must be at most 16 positive factors other than 1")
        _require(1 <= self.max_probes <= 8, "max_probes must be 1..8")
        _require(0 <= self.max_corrections <= 8, "max_corrections must be 0..8")
        _require(self.probe_accuracy >= 0.0, "probe_accuracy must be >= 0")
        _require(self.time_budget >= 1.0, "time_budget must be at least 1")
        _require(0.0 < self.bpp_tolerance < 1.0 and 0.0 < self.psnr_tolerance < 10.0, "tolerances out of range")
        _require(0.0 < self.lmbda_min < self.lmbda_max < 1.0, "need 0 < lmbda_min < lmbda_max < 1")
        _require(self.slope_clip >= 1.0, "slope_clip must be at least 1")

    def model(self, preset: str, metric: str) -> RateModel:
        """The fitted model of a preset; a preset without one borrows the first fitted (probes correct it)."""
        table = self.models.get(preset) or next(iter(self.models.values()), None)
        if table is None or metric not in table:
            raise ConfigError(f"{RATE_CONTROL_FILE}: no rate model for {metric} (preset {preset})")
        return table[metric]


def load_rate_control(path: Path = RATE_CONTROL_FILE) -> RateControlConfig:
    """cfg/rate_control.toml: the search's settings and, per preset, its fitted rate models."""
    values = dict(_read_toml(path))
    raw_models = values.pop("model", {})
    _require(isinstance(raw_models, dict), f"{path}: [model.PRESET.METRIC] tables expected")
    models: dict[str, dict[str, RateModel]] = {}
    for preset, table in raw_models.items():
        _require(isinstance(table, dict) and set(table) <= set(RATE_METRICS),
                 f"{path}: model.{preset} may hold only {', '.join(RATE_METRICS)}")
        models[preset] = {metric: _from_mapping(RateModel, fields, f"{path}: model.{preset}.{metric}")
                          for metric, fields in table.items()}
    return _from_mapping(RateControlConfig, {**values, "models": models}, str(path))
