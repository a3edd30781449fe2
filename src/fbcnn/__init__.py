"""fbcnn: blind JPEG artifact removal with FBCNN (predicted, adjustable quality factor).

    >>> import fbcnn
    >>> model = fbcnn.load_model("color")          # or a .safetensors / published .pth file
    >>> result = model.restore(image)              # numpy uint8 array or PIL image
    >>> result.image, result.predicted_qf
"""

from .model import Model, Result, load_model
from .network import FBCNN, FBCNNConfig

__version__ = "0.1.0"

__all__ = ["FBCNN", "FBCNNConfig", "Model", "Result", "__version__", "load_model"]
