"""Where model files are, without torch: the shipped names, path resolution, hashes, and
the one error type for a model that cannot be used."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
NAMED_MODELS = ("color", "gray", "color-double", "gray-double")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not describe an FBCNN network."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (weights are pinned and recorded by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def named_model_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model name (`color`, `gray`, ...) or a file path -> the weights file."""
    text = str(name_or_path)
    if text in NAMED_MODELS:
        path = named_model_path(text)
        if not path.is_file():
            raise CheckpointError(f"model '{text}' is not shipped in this build")
        return path
    path = Path(text)
    if not path.exists():
        raise CheckpointError(
            f"unknown model '{text}' (named models: {', '.join(available_models())}; "
            "or give a .safetensors/.pth path)")
    return path


def available_models() -> list[str]:
    return [n for n in NAMED_MODELS if named_model_path(n).is_file()]
