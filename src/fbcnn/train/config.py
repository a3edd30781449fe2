"""Typed training configuration, read from one YAML file per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from ..networks.network import FBCNNConfig


@dataclass
class DataConfig:
    folders: list[str] = field(default_factory=lambda: ["../shared/datasets/train/color"])
    gray: bool = False
    # grey models: probability that a colour image becomes plain grey instead of BT.601 Y
    plain_gray_probability: float = 0.2
    patch_size: int = 64
    batch_size: int = 16
    # FBCNN-A: share of double-JPEG samples (no QF target); 0 for single-JPEG models
    double_probability: float = 0.0
    # FBCNN-A: share of the double JPEGs whose two drawn QFs are put in order, the stronger
    # compression first (QF1 <= QF2: the earlier, heavier JPEG that FBCNN-A exists to undo);
    # the rest keep the order drawn
    double_stronger_first: float = 0.0
    # training QFs (see fbcnn.jpeg.degrade.QFDistribution): a common QF (10..60) with probability
    # qf_common, one in qf_high_range with probability qf_high, else one in qf_range
    qf_common: float = 0.5
    qf_high: float = 0.2
    qf_range: list[int] = field(default_factory=lambda: [5, 100])
    qf_high_range: list[int] = field(default_factory=lambda: [85, 100])
    # which encoder writes each JPEG (fbcnn.jpeg.degrade.EncoderMixture): weights of `libjpeg`
    # (IJG tables), `tables` (libjpeg, tables outside the IJG family), `mozjpeg`, `jpegli`;
    # and of the subsampling ('4:2:0', '4:2:2', '4:4:4'). Unset: libjpeg at 4:2:0 only
    encoders: dict[str, float] | None = None
    subsampling: dict[str, float] | None = None
    # share of samples that are not compressed at all (a PNG), labelled QF 100
    clean_probability: float = 0.02
    # background processes that make batches (0: in the training process, exactly
    # reproducible on resume; N: N DataLoader workers, for fast accelerators)
    workers: int = 0


@dataclass
class ValidationConfig:
    folder: str = "../shared/datasets/val/color/kodak24"
    qfs: list[int] = field(default_factory=lambda: [10, 20, 30, 40])
    limit: int = 8
    crop: int = 256  # centre crop for speed; 0 = whole image
    every: int = 2000  # iterations
    # encoders the validation JPEGs are written by (fbcnn.jpeg.encoders.parse_encoder names);
    # the best checkpoint is chosen on the mean gain over all of them
    encoders: list[str] = field(default_factory=lambda: ["libjpeg"])


@dataclass
class OptimConfig:
    lr: float = 2e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    warmup: int = 500
    iterations: int = 100_000  # length of the cosine schedule
    qf_loss_weight: float = 0.05
    # feed the decoder the predicted QF detached: the decoupler learns from the QF loss
    # alone (the image loss pushed a grey model's decoupler into a saturated constant)
    qf_detach: bool = True
    ema_decay: float = 0.999  # 0 disables the EMA
    grad_clip: float = 1.0
    # when set, the warm-up + cosine runs over this many minutes of training time instead of
    # `iterations` (a run of fixed length on hardware of unknown speed, e.g. a lent GPU)
    schedule_minutes: float | None = None


@dataclass
class TrainConfig:
    name: str = "color"
    model: FBCNNConfig = field(default_factory=FBCNNConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/color"
    seed: int = 0
    threads: int = 0  # 0: all cores
    checkpoint_minutes: float = 5.0
    # weights to start from (fine-tuning), e.g. a single-JPEG model; pinned by init_sha256
    # (the run refuses a file whose hash differs), never a file that a run overwrites; a
    # colour parent of a grey model starts it as its exact grey copy (fbcnn.train.convert)
    init_from: str | None = None
    init_sha256: str | None = None
    # after init_from: modules that start afresh with our initialisation, e.g. ["qf_pred"]
    # for a decoupler that collapsed to a constant
    reinit: list[str] = field(default_factory=list)
    channels_last: bool = False
    # fp32, bf16 (autocast), or auto: bf16 on CUDA and on CPUs with native bf16 (AMX /
    # AVX512-BF16), fp32 elsewhere
    precision: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        factory = known[name].default_factory
        default = factory() if callable(factory) else None
        nested = is_dataclass(default) and not isinstance(default, FBCNNConfig)
        if nested and isinstance(value, dict):
            value = _build(type(default), value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config; unknown keys are an error (no silent typos)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    model = raw.pop("model", None)
    config: TrainConfig = _build(TrainConfig, raw, str(path))
    if model is not None:
        unknown = set(model) - set(FBCNNConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown key(s) in {path}.model: {', '.join(sorted(unknown))}")
        config.model = FBCNNConfig.from_dict(model)
    return resolve_paths(config, Path(path).parent)


def _find(value: str, config_dir: Path) -> str:
    """A relative path as written if it exists from the current folder, else from the
    config's folder or its parent (a repo's `configs/` run from elsewhere)."""
    p = Path(value)
    if p.is_absolute() or p.exists():
        return value
    for base in (config_dir, config_dir.parent):
        if (base / p).exists():
            return str(base / p)
    return value


def resolve_paths(config: TrainConfig, config_dir: Path) -> TrainConfig:
    """Data, validation and init_from paths: see `_find` (the output folder stays relative
    to the current folder)."""
    config.data.folders = [_find(f, config_dir) for f in config.data.folders]
    config.validation.folder = _find(config.validation.folder, config_dir)
    if config.init_from:
        config.init_from = _find(config.init_from, config_dir)
    return config


def apply_overrides(config: TrainConfig, items: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply `section.key=value` overrides (values read as YAML), e.g. `data.workers=8`;
    unknown keys are an error. The result is checked by building it again."""
    raw = config.to_dict()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown config key: {key}")
            node = node[part]
        if leaf not in node or isinstance(node[leaf], dict):
            raise ValueError(f"unknown config key: {key}")
        try:
            node[leaf] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ValueError(f"cannot read the value of {key}: {text!r}") from None
    model = raw.pop("model")
    built: TrainConfig = _build(TrainConfig, raw, "overrides")
    built.model = FBCNNConfig.from_dict(model)
    return built
