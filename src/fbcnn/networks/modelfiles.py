"""Where model files are, without torch: the shipped names, path resolution, hashes, and
the one error type for a model that cannot be used."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
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


def training_patch_size(path: str | Path) -> int | None:
    """The patch size of the last training stage recorded in a safetensors file's provenance
    (`fbcnn.provenance`, written by `fbcnn train`): the size at which its QF decoupler reads
    best. None for files without it (published checkpoints, other formats). Reads the
    header only (no torch, no tensors)."""
    import json

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
        stages = json.loads(metadata.get("fbcnn.provenance", "[]"))
        size = stages[-1]["config"]["data"]["patch_size"]
    except Exception:  # noqa: BLE001 - any unreadable or foreign header: no size
        return None
    return int(size) if isinstance(size, int) and 8 <= size <= 4096 else None
