"""The training pipeline: typed config, patch sampler with the paper's degradations, loop."""

from .config import TrainConfig, load_config
from .loop import Trainer

__all__ = ["TrainConfig", "Trainer", "load_config"]
