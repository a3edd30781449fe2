"""Typed training configuration, read from one YAML file per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from ..network import FBCNNConfig


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


@dataclass
class ValidationConfig:
    folder: str = "../shared/datasets/val/color/kodak24"
    qfs: list[int] = field(default_factory=lambda: [10, 20, 30, 40])
    limit: int = 8
    crop: int = 256  # centre crop for speed; 0 = whole image
    every: int = 2000  # iterations


@dataclass
class OptimConfig:
    lr: float = 2e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    warmup: int = 500
    iterations: int = 100_000  # length of the cosine schedule
    qf_loss_weight: float = 0.05
    # learning-rate multiplier for the QF decoupler (qf_pred): its input features are tiny
    # early in training, and a faster head keeps it from settling on a constant
    qf_head_lr_scale: float = 1.0
    # probability of feeding the true QF (instead of the prediction) to the decoder for
    # single-JPEG samples, so that QF attention learns to follow the QF it is given
    qf_teacher_forcing: float = 0.0
    ema_decay: float = 0.999  # 0 disables the EMA
    grad_clip: float = 1.0


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
    init_from: str | None = None  # weights to start from (fine-tuning), e.g. a single-JPEG model
    channels_last: bool = False
    # after init_from: fresh QF embedding (PyTorch's default init) and zeroed gamma/beta
    # weights, so the function starts unchanged while the QF path can learn again
    revive_qf_attention: bool = False

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
    return config
