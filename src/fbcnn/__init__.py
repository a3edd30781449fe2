"""fbcnn: blind JPEG artifact removal with FBCNN (predicted, adjustable quality factor).

    >>> import fbcnn
    >>> model = fbcnn.load_model("color")          # or a .safetensors / published .pth file
    >>> result = model.restore("photo.jpg")        # a path, a PIL image or a uint8 array
    >>> result.image, result.predicted_qf
    >>> result.save("photo_restored.png")          # with the photo's ICC profile and EXIF
    >>> fbcnn.restore_many(["photos/"], "out", engine="ray")  # many files; Ray optional

`import fbcnn` is light: torch and the rest load on first use of a name below (so that
`fbcnn --help` starts fast).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Model": "model", "Result": "model", "load_model": "model",
    "FBCNN": "network", "FBCNNConfig": "network",
    "restore_many": "distributed",
}

__all__ = ["FBCNN", "FBCNNConfig", "Model", "Result", "__version__", "load_model",
           "restore_many"]

if TYPE_CHECKING:
    from .distributed import restore_many
    from .model import Model, Result, load_model
    from .network import FBCNN, FBCNNConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fbcnn' has no attribute {name!r}")
