"""State dicts <-> networks: read the architecture from keys and shapes, load and save weights.

Published checkpoints (`fbcnn_color.pth`, `fbcnn_gray.pth`, `fbcnn_gray_double.pth`) are
plain state dicts; they are read with `torch.load(..., weights_only=True)`, so a pickle
can never run code. Our own weights are safetensors whose metadata carries the config.

A file is untrusted until it has been checked: every failure is a CheckpointError with one
line; tensors must be finite floating point, and the network is built only once its shapes
match the tensors (checked on a shapeless "meta" network first), so a forged file cannot
make us allocate more than it holds.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from .modelfiles import (  # noqa: F401 - re-exported: where model files are
    NAMED_MODELS,
    WEIGHTS_DIR,
    CheckpointError,
    available_models,
    file_sha256,
    named_model_path,
    resolve_model,
)
from .network import FBCNN, FBCNNConfig

CONFIG_KEY = "fbcnn.config"
# JSON list of the training stages that made the weights (the trainer writes it)
PROVENANCE_KEY = "fbcnn.provenance"


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


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> FBCNNConfig:
    """Infer widths, depth, channels and QF-branch width from the keys and shapes (the global
    residual leaves no trace there: it comes from the file's config, else False)."""
    required = ("m_head.weight", "m_tail.weight", "qf_embed.0.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"not an FBCNN state dict (missing {', '.join(missing)})")
    blocks = len({m.group(1) for k in state
                  if (m := re.match(r"m_down1\.(\d+)\.res\.0\.weight$", k))})
    try:
        c0 = state["m_head.weight"].shape[0]
        c1 = state[f"m_down1.{blocks}.weight"].shape[0]
        c2 = state[f"m_down2.{blocks}.weight"].shape[0]
        c3 = state[f"m_down3.{blocks}.weight"].shape[0]
        in_channels = state["m_head.weight"].shape[1]
        out_channels = state["m_tail.weight"].shape[0]
        qf_width = state["qf_embed.0.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"not an FBCNN state dict (missing {e.args[0]})") from None
    except (IndexError, AttributeError):
        raise CheckpointError("not an FBCNN state dict (tensors of the wrong rank)") from None
    return FBCNNConfig(
        in_channels=int(in_channels),
        out_channels=int(out_channels),
        widths=(int(c0), int(c1), int(c2), int(c3)),
        blocks=blocks,
        qf_width=int(qf_width),
    )


def _check_tensors(state: Mapping[str, torch.Tensor]) -> None:
    """Finite floating-point tensors, none of them empty."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"not an FBCNN state dict ({key} is not a tensor)")
        if not value.is_floating_point():
            raise CheckpointError(f"not an FBCNN state dict ({key} holds {value.dtype} values, "
                                  "not floating point)")
        if value.numel() == 0:
            raise CheckpointError(f"not an FBCNN state dict ({key} is empty, shape "
                                  f"{tuple(value.shape)})")
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{key} holds NaN or infinite weights")


def _check_shapes(state: Mapping[str, torch.Tensor], config: FBCNNConfig) -> None:
    """The tensors of `state` are exactly those of FBCNN(config), shape for shape: checked
    on a "meta" network (no memory), before a real one of that size is ever allocated."""
    try:
        with torch.device("meta"):
            skeleton = FBCNN(config)
    except Exception as e:  # noqa: BLE001 - impossible widths make torch raise anything
        raise CheckpointError(f"not an FBCNN state dict (impossible layout {config}: "
                              f"{_first_line(e)})") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3
                                                                else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}"
                         + (" ..." if len(unexpected) > 3 else ""))
        raise CheckpointError(f"state dict does not match FBCNN: {'; '.join(parts)}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(f"state dict does not match FBCNN: {key} has shape "
                                  f"{tuple(state[key].shape)}, the network {shape}")


def network_from_state_dict(state: Mapping[str, torch.Tensor],
                            config: FBCNNConfig | None = None) -> FBCNN:
    config = config or config_from_state_dict(state)
    _check_tensors(state)
    _check_shapes(state, config)
    network = FBCNN(config)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"state dict does not match FBCNN: {detail}") from None
    return network.eval()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(e).__name__


def _torch_load_reason(e: BaseException) -> str:
    """Why torch.load(weights_only=True) refused a file, in our words: never torch's advice
    to load it with weights_only=False (which would run whatever code the pickle holds)."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks for the Python object {found.group(1)}; only tensors are loaded"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    detail = _first_line(Exception(found.group(1))) if found else _first_line(e)
    if "weights_only" in detail or "pytorch.org" in detail:
        detail = "it holds something other than tensors"
    return detail


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors or .pth/.pt file (never unpickles objects)."""
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
            return load_file(str(path)), metadata
        except Exception as e:  # noqa: BLE001 - any failure to parse is a bad checkpoint
            raise CheckpointError(f"cannot read checkpoint {path}: not a valid safetensors "
                                  f"file ({_first_line(e)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse is a bad checkpoint
        raise CheckpointError(f"{path}: not a PyTorch checkpoint we can read safely "
                              f"({_torch_load_reason(e)})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} is not a state dict")
    return _strip_wrappers(state), {}


def _metadata_config(path: Path, metadata: Mapping[str, str],
                     state: Mapping[str, torch.Tensor]) -> FBCNNConfig:
    """The network layout: from the tensors' shapes; the metadata's config (ours) adds
    `global_residual`, and must agree with the shapes where it repeats them."""
    inferred = config_from_state_dict(state)
    if CONFIG_KEY not in metadata:
        return inferred
    try:
        raw = json.loads(metadata[CONFIG_KEY])
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON {type(raw).__name__}, not an object")
        stated = FBCNNConfig.from_dict(raw)
        global_residual = stated.global_residual
        if not isinstance(global_residual, bool):
            raise TypeError(f"global_residual is {global_residual!r}")
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: bad {CONFIG_KEY} metadata ({_first_line(e)})") from None
    config = replace(inferred, global_residual=global_residual)
    if stated != config:
        differ = [f.name for f in fields(FBCNNConfig)
                  if getattr(stated, f.name) != getattr(config, f.name)]
        raise CheckpointError(f"{path}: the {CONFIG_KEY} metadata does not match the tensors "
                              f"({', '.join(differ)})")
    return config


def load_network(path: str | Path) -> LoadedNetwork:
    """The network in a checkpoint file; CheckpointError (one line naming the file) for
    anything that is not an FBCNN state dict we can read safely."""
    path = Path(path)
    try:
        state, metadata = read_state_dict(path)
        config = _metadata_config(path, metadata, state)
        network = network_from_state_dict(state, config)
    except CheckpointError as e:
        if str(path) in str(e):
            raise
        raise CheckpointError(f"{path}: {e}") from None
    return LoadedNetwork(network, path.stem, metadata)


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
