"""Training configuration: one YAML file read into frozen dataclasses.

Every section is a flat dataclass with defaults; only ``output_dir``, ``steps``,
``batch_size`` and ``data`` must be given. A key the dataclasses do not know, a
missing required key or a value of the wrong type is a ``UsageError`` whose one
sentence names the key and the file. There is no inheritance between files and no
string-to-class lookup: a source's ``kind`` is a plain value the data code branches on.

Paths in a config are relative to the current directory (where ``depthlens train`` or
``torchrun`` is started), as nanoGPT's are.

A complete example is ``configs/bundled.yaml``; the smallest one that trains is
``configs/tiny.yaml``.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin, get_type_hints

import yaml

from depthlens.errors import UsageError
from depthlens.models.midas_small import MidasSmallConfig

SourceKind = Literal["synth", "folder", "pseudo", "shards"]


@dataclass(frozen=True)
class ModelConfig:
    """The :class:`MidasSmallConfig` fields a run may set; the others keep their defaults.

    The defaults are the zoo's ``depthlens-small`` preset (EfficientNet-Lite0 encoder,
    half-width decoder, no final ReLU: affine-invariant targets can be negative after
    the shift, and a clamp would only kill gradients). ``log_output`` makes the head
    predict log depth (metric training; the zoo's ``depthlens-small-metric`` preset).
    """

    channel_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    features: int = 32
    head_channels: int = 32
    expand: bool = True
    non_negative: bool = False
    log_output: bool = False

    def network_config(self) -> MidasSmallConfig:
        """The full network config these fields describe."""
        return MidasSmallConfig(
            channel_multiplier=self.channel_multiplier,
            depth_multiplier=self.depth_multiplier,
            features=self.features,
            head_channels=self.head_channels,
            expand=self.expand,
            non_negative=self.non_negative,
            log_output=self.log_output,
        )


@dataclass(frozen=True)
class SourceConfig:
    """One training source, drawn with probability ``weight / sum(weights)``.

    ``synth``: scenes of the synthetic engine, ``size`` = (height, width) in pixels,
    seeds drawn from ``[seeds[0], seeds[1])`` (disjoint from the validation seeds), scene
    ``kinds`` (None: all). With ``prerender: 0`` each sample is rendered on the fly in a
    DataLoader worker; with ``prerender: N`` the first N seeds of the range are rendered
    once into ``path`` (default ``<output_dir>/synth-<first>-<N>``) and read from there.

    ``folder``: an RGB-D folder (``depthlens.io.rgbd``) with metric depth at ``path``.

    ``pseudo``: a folder written by ``depthlens pseudo-label``; its targets are a
    teacher's relative inverse depth, so only scale-and-shift-invariant losses see them.

    ``shards``: the same pseudo-labels as tar shards with their index ``shards.jsonl``
    at ``path`` (``depthlens.train.shards``), for millions of photos.

    ``invalid_is_far``: whether pixels without depth are sky or beyond the far limit,
    as in the synthetic engine's samples; relative training then learns them as zero
    disparity (infinitely far) instead of leaving them free, as MiDaS does with sky
    masks. Default (null): true for synth sources, false for the others (a LiDAR or
    Kinect hole is not far away).
    """

    kind: SourceKind
    weight: float = 1.0
    path: str | None = None
    seeds: tuple[int, int] = (0, 1_000_000)
    size: tuple[int, int] = (256, 320)
    kinds: tuple[str, ...] | None = None
    prerender: int = 0
    invalid_is_far: bool | None = None

    @property
    def far_invalid(self) -> bool:
        """``invalid_is_far`` with its default applied."""
        return self.kind == "synth" if self.invalid_is_far is None else self.invalid_is_far


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, applied per sample before the canonical-camera transform.

    A random crop keeps a fraction ``crop_scale`` of the image area with aspect ratio
    (width / height) in ``crop_ratio`` (sampled log-uniformly), then is resized to
    ``input_size`` squared; ``hflip`` mirrors half of the samples; the colour jitters
    scale brightness, contrast and saturation by factors in ``[1 - j, 1 + j]``.
    Intrinsics follow the crop, resize and flip (``depthlens.train.data``).
    """

    crop_scale: tuple[float, float] = (0.4, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    hflip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (0 turns a term off).

    Relative training (``metric.enabled: false``) compares the prediction with the
    target disparity up to scale and shift: ``ssi_trimmed_mae``, ``ssi_mse`` and
    ``gradient_matching`` (MiDaS). Metric training compares canonical-camera depth:
    ``silog`` and ``virtual_normal``. ``gradient_scales`` is the number of scales of
    the gradient-matching term. ``scale_anchor`` (relative training) holds the
    output's spread near 1, which the invariant terms leave free (``losses.scale_anchor_loss``).
    """

    ssi_trimmed_mae: float = 1.0
    ssi_mse: float = 0.0
    gradient_matching: float = 0.5
    gradient_scales: int = 4
    scale_anchor: float = 0.0
    silog: float = 0.0
    virtual_normal: float = 0.0


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW hyper-parameters; ``lr`` is the peak learning rate after warm-up."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up from 0 over ``warmup_steps``, then a cosine down to ``min_lr``
    at the last step."""

    warmup_steps: int = 100
    min_lr: float = 1e-5


@dataclass(frozen=True)
class ValidationConfig:
    """Validation on held-out synthetic scenes every ``every`` steps (0: never).

    The first ``images`` seeds of ``[seeds[0], seeds[1])`` are rendered once at
    ``size`` = (height, width); metrics are affine-invariant AbsRel and δ1 with depth
    capped at ``max_depth`` meters (``depthlens.train.validate``).
    """

    every: int = 500
    seeds: tuple[int, int] = (1_000_000_000, 1_000_001_000)
    images: int = 32
    size: tuple[int, int] = (256, 320)
    kinds: tuple[str, ...] | None = None
    max_depth: float = 80.0


@dataclass(frozen=True)
class MetricConfig:
    """Metric training through a canonical camera (Metric3D; ``geometry/canonical.py``).

    Off by default: the bundled model learns relative inverse depth. When on, every
    sample is moved to a camera of focal length ``focal`` pixels, by scaling the depth
    label (``transform: label``) or resizing the image (``transform: image``).
    ``transform: none`` trains on the depth as it is, ignoring the camera: the baseline
    the canonical camera is measured against (BENCHMARKS.md).
    """

    enabled: bool = False
    focal: float = 1000.0
    transform: Literal["label", "image", "none"] = "label"

    @property
    def canonical(self) -> bool:
        """Whether samples are moved to the canonical camera."""
        return self.enabled and self.transform != "none"


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. ``batch_size`` is global: under ``torchrun`` each of the
    N processes takes ``batch_size / N`` samples of every step, so one config gives the
    same optimisation on any number of processes.

    ``init_from`` starts the network from earlier weights instead of a random draw: an
    export folder (``model.safetensors``, e.g. the shipped ``depthlens-small``), a
    ``.safetensors`` file or a training ``checkpoint.pt`` (its EMA weights when kept).
    The optimiser, schedule and data stream start afresh; ``--resume`` is for
    continuing one interrupted run instead.
    """

    output_dir: str
    steps: int
    batch_size: int
    data: tuple[SourceConfig, ...]
    input_size: int = 256
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: float = 1.0
    ema_decay: float | None = None
    bf16: bool = True
    channels_last: bool = True
    num_workers: int = 0
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint_every: int = 500
    log_every: int = 10
    metric: MetricConfig = field(default_factory=MetricConfig)
    export_name: str = "depthlens-small"
    init_from: str | None = None


# --------------------------------------------------------------------------------------
# Reading


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a training config file; ``UsageError`` names any bad key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"Cannot read the config {path}: {exc.strerror or exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"The config {path} is not valid YAML{where}.") from None
    return config_from_dict(data, str(path))


def config_from_dict(data: object, source: str = "<config>") -> TrainConfig:
    """A checked :class:`TrainConfig` from plain data (parsed YAML, or a checkpoint's copy)."""
    config = _build(TrainConfig, data, "", source)
    check_config(config, source)
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain data (dicts, lists, numbers, strings, None) that ``config_from_dict`` reads
    back to an equal config; stored inside checkpoints and written as YAML."""
    return _plain(dataclasses.asdict(config))


def dump_config(config: TrainConfig) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def check_config(config: TrainConfig, source: str = "<config>") -> None:
    """Checks that span keys (ranges, disjoint seeds, sizes); ``UsageError`` otherwise."""

    def fail(message: str) -> NoReturn:
        raise UsageError(f"{message} (in {source}).")

    for name in ("steps", "batch_size", "input_size", "checkpoint_every", "log_every"):
        if getattr(config, name) <= 0:
            fail(f"Key '{name}' must be positive")
    if config.input_size % 32:
        fail(
            f"Key 'input_size' must be a multiple of 32 (the network's stride), not "
            f"{config.input_size}"
        )
    if config.num_workers < 0:
        fail("Key 'num_workers' must be 0 or more")
    if config.grad_clip < 0:
        fail("Key 'grad_clip' must be 0 (off) or positive")
    if config.ema_decay is not None and not 0.0 < config.ema_decay < 1.0:
        fail("Key 'ema_decay' must lie strictly between 0 and 1, or be null")
    if not config.data:
        fail("Key 'data' must list at least one source")
    val = config.validation
    if val.every < 0:
        fail("Key 'validation.every' must be 0 (never) or positive")
    if val.seeds[0] >= val.seeds[1] or val.images > val.seeds[1] - val.seeds[0]:
        fail("Key 'validation.seeds' must be a range [first, last) holding validation.images")
    if val.images <= 0 and val.every > 0:
        fail("Key 'validation.images' must be positive when validation runs")
    for index, src in enumerate(config.data):
        key = f"data[{index}]"
        if not src.weight > 0:
            fail(f"Key '{key}.weight' must be positive")
        if src.kind in ("folder", "pseudo", "shards") and not src.path:
            fail(f"Key '{key}.path' is required for a {src.kind} source")
        if src.kind == "synth":
            first, last = src.seeds
            if first >= last:
                fail(f"Key '{key}.seeds' must be a range [first, last) with first < last")
            if first < val.seeds[1] and val.seeds[0] < last:
                fail(f"Key '{key}.seeds' overlaps the validation seeds {list(val.seeds)}")
            if src.prerender < 0 or src.prerender > last - first:
                fail(f"Key '{key}.prerender' must be between 0 and the number of seeds")
            if min(src.size) <= 0:
                fail(f"Key '{key}.size' must be a positive (height, width)")
        if src.kind in ("pseudo", "shards") and config.metric.enabled:
            fail(f"Source '{key}' holds relative pseudo-labels, which metric training cannot use")
    aug = config.augment
    if not 0.0 < aug.crop_scale[0] <= aug.crop_scale[1] <= 1.0:
        fail("Key 'augment.crop_scale' must satisfy 0 < low <= high <= 1")
    if not 0.0 < aug.crop_ratio[0] <= aug.crop_ratio[1]:
        fail("Key 'augment.crop_ratio' must satisfy 0 < low <= high")
    if any(not 0.0 <= j < 1.0 for j in (aug.brightness, aug.contrast, aug.saturation)):
        fail("The colour jitters in 'augment' must lie in [0, 1)")
    loss = config.loss
    relative = (loss.ssi_trimmed_mae, loss.ssi_mse, loss.gradient_matching)
    metric = (loss.silog, loss.virtual_normal)
    if any(w < 0 for w in (*relative, *metric, loss.scale_anchor)):
        fail("Loss weights in 'loss' must be 0 or positive")
    if config.metric.enabled and not any(metric):
        fail("Metric training needs a positive 'loss.silog' or 'loss.virtual_normal'")
    if not config.metric.enabled and not any(relative):
        fail(
            "Relative training needs a positive 'loss.ssi_trimmed_mae', 'loss.ssi_mse' or "
            "'loss.gradient_matching'"
        )
    if loss.gradient_scales <= 0:
        fail("Key 'loss.gradient_scales' must be positive")
    opt = config.optimizer
    if not opt.lr > 0 or opt.weight_decay < 0 or not all(0 <= b < 1 for b in opt.betas):
        fail("Key 'optimizer' needs lr > 0, weight_decay >= 0 and betas in [0, 1)")
    if config.schedule.warmup_steps < 0 or not 0 <= config.schedule.min_lr <= opt.lr:
        fail("Key 'schedule' needs warmup_steps >= 0 and 0 <= min_lr <= optimizer.lr")
    if not config.metric.focal > 0:
        fail("Key 'metric.focal' must be positive")
    try:
        config.model.network_config()
    except ValueError as exc:
        fail(f"Key 'model' does not describe a network: {exc}")


def _build(cls: type, data: object, prefix: str, source: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, converting each field by its type."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise UsageError(
            f"Expected a mapping of keys at {where} of {source}, got {type(data).__name__}."
        )
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise UsageError(
                f"Unknown key '{prefix}{key}' in {source}; expected one of {', '.join(fields)}."
            )
    values = {}
    for name, spec in fields.items():
        if name not in data:
            required = (
                spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            )
            if required:
                raise UsageError(f"Missing key '{prefix}{name}' in {source}.")
            continue
        values[name] = _convert(data[name], hints[name], f"{prefix}{name}", source)
    return cls(**values)


def _convert(value: object, hint: Any, key: str, source: str) -> Any:
    """``value`` as type ``hint``, or a UsageError naming ``key`` and ``source``."""

    def wrong(expected: str) -> UsageError:
        return UsageError(f"Key '{key}' in {source} must be {expected}, got {value!r}.")

    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], key, source)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise wrong("one of " + ", ".join(repr(a) for a in allowed))
        return value
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, list | tuple):
            raise wrong("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)} values")
        return tuple(
            _convert(v, a, f"{key}[{i}]", source)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, f"{key}.", source)
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise wrong("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    raise TypeError(f"config field type {hint!r} of '{key}' is not supported")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
