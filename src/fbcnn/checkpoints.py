"""State dicts <-> networks: read the architecture from keys and shapes, load and save weights.

Published checkpoints (`fbcnn_color.pth`, `fbcnn_gray.pth`, `fbcnn_gray_double.pth`) are
plain state dicts; they are read with `torch.load(..., weights_only=True)`, so a pickle
can never run code. Our own weights are safetensors whose metadata carries the config.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from .network import FBCNN, FBCNNConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
NAMED_MODELS = ("color", "gray", "color-double", "gray-double")
CONFIG_KEY = "fbcnn.config"
# JSON list of the training stages that made the weights (fbcnn.train writes it)
PROVENANCE_KEY = "fbcnn.provenance"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (weights are pinned and recorded by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not describe an FBCNN network."""


@dataclass
class LoadedNetwork:
    network: FBCNN
    name: str
    metadata: dict[str, str]


def _strip_wrappers(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    for key in ("params_ema", "params", "state_dict", "model"):
        inner = state.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            state = inner
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("no tensors in checkpoint")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def config_from_state_dict(state: Mapping[str, torch.Tensor],
                           global_residual: bool = False) -> FBCNNConfig:
    """Infer widths, depth, channels and QF-branch width from the keys and shapes."""
    required = ("m_head.weight", "m_tail.weight", "qf_embed.0.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"not an FBCNN state dict (missing {', '.join(missing)})")
    blocks = len({m.group(1) for k in state
                  if (m := re.match(r"m_down1\.(\d+)\.res\.0\.weight$", k))})
    c0 = state["m_head.weight"].shape[0]
    try:
        c1 = state[f"m_down1.{blocks}.weight"].shape[0]
        c2 = state[f"m_down2.{blocks}.weight"].shape[0]
        c3 = state[f"m_down3.{blocks}.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"not an FBCNN state dict (missing {e.args[0]})") from None
    return FBCNNConfig(
        in_channels=int(state["m_head.weight"].shape[1]),
        out_channels=int(state["m_tail.weight"].shape[0]),
        widths=(int(c0), int(c1), int(c2), int(c3)),
        blocks=blocks,
        qf_width=int(state["qf_embed.0.weight"].shape[0]),
        global_residual=global_residual,
    )


def network_from_state_dict(state: Mapping[str, torch.Tensor],
                            config: FBCNNConfig | None = None) -> FBCNN:
    config = config or config_from_state_dict(state)
    network = FBCNN(config)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"state dict does not match FBCNN: {detail}") from None
    return network.eval()


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors or .pth/.pt file (never unpickles objects)."""
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint: {path}")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
            return load_file(str(path)), metadata
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad checkpoint
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} is not a state dict")
    return _strip_wrappers(state), {}


def load_network(path: str | Path) -> LoadedNetwork:
    path = Path(path)
    state, metadata = read_state_dict(path)
    config = None
    if CONFIG_KEY in metadata:
        config = FBCNNConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    return LoadedNetwork(network_from_state_dict(state, config), path.stem, metadata)


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


def save_network(network: FBCNN, path: str | Path,
                 metadata: Mapping[str, str] | None = None) -> None:
    """Save as safetensors with the config in the metadata (atomic: temp file, then rename)."""
    path = Path(path)
    meta = {CONFIG_KEY: json.dumps(network.config.to_dict())}
    meta.update(metadata or {})
    state = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
