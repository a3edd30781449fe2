"""fbcnn: blind JPEG artifact removal with FBCNN (predicted, adjustable quality factor).

    >>> import fbcnn
    >>> model = fbcnn.load_model("color")          # or a .safetensors / published .pth file
    >>> result = model.restore(image)              # numpy uint8 array or PIL image
    >>> result.image, result.predicted_qf
    >>> fbcnn.restore_many(["photos/"], "out", engine="ray")  # many files; Ray optional
"""

from typing import Any

from .model import Model, Result, load_model
from .network import FBCNN, FBCNNConfig

__version__ = "0.1.0"

__all__ = ["FBCNN", "FBCNNConfig", "Model", "Result", "__version__", "load_model",
           "restore_many"]


def __getattr__(name: str) -> Any:
    """`restore_many` (fbcnn.distributed) is imported on first use only."""
    if name == "restore_many":
        from .distributed import restore_many

        return restore_many
    raise AttributeError(f"module 'fbcnn' has no attribute {name!r}")
