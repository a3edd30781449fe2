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

from .version import __version__

_LAZY = {
    "Model": "engine.model", "Result": "engine.model", "load_model": "engine.model",
    "FBCNN": "networks.network", "FBCNNConfig": "networks.network",
    "restore_many": "frontends.distributed",
}

__all__ = ["FBCNN", "FBCNNConfig", "Model", "Result", "__version__", "load_model",
           "restore_many"]

if TYPE_CHECKING:
    from .engine.model import Model, Result, load_model
    from .frontends.distributed import restore_many
    from .networks.network import FBCNN, FBCNNConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fbcnn' has no attribute {name!r}")
