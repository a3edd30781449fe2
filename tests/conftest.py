"""Shared fixtures: tiny photos made here, tiny models saved as files."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fbcnn.checkpoints import save_network
from fbcnn.network import FBCNN, FBCNNConfig

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _graph_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The onnxruntime backend's exported graphs go to a folder of this test session, never
    to the user's ~/.cache (subprocesses inherit it)."""
    import os

    os.environ["FBCNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("fbcnn-cache"))


def make_photo(h: int = 96, w: int = 128, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 image with edges (gradients, blobs, a bar, fine noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = []
    for c in range(channels):
        f = 90 + 60 * np.sin(x / (9 + 4 * c) + rng.uniform(0, 6)) * np.cos(y / (13 + c))
        f += 40 * ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 4) ** 2)
        f += 30 * ((x // 16 + y // 24) % 2)
        f += rng.normal(0, 4, (h, w))
        base.append(f)
    return np.clip(np.stack(base, axis=2), 0, 255).astype(np.uint8)


def jpeg_batch(folder: Path, count: int, seed: int, sides: tuple[int, int],
               name: str = "img{i:02d}.jpg") -> list[Path]:
    """`count` different photo-like JPEGs in `folder` (created), each side drawn in
    sides[0]..sides[1], QF 10..59; file names from `name` (with {i} and {seed})."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        path = folder / name.format(i=i, seed=seed)
        Image.fromarray(make_photo(h, w, seed=seed * 100 + i)).save(
            path, quality=int(rng.integers(10, 60)))
        paths.append(path)
    return paths


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring width x height grey pixels, with only a little of their
    data: tiny on disk, width x height bytes if decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(bytes(width + 1) * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
                     + chunk(b"IEND", b""))
    return path


def tiny_network(channels: int = 3, seed: int = 0, residual: bool = True) -> FBCNN:
    torch.manual_seed(seed)
    net = FBCNN(FBCNNConfig(in_channels=channels, out_channels=channels, widths=(8, 8, 16, 16),
                            blocks=1, qf_width=16, global_residual=residual))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


@pytest.fixture
def photo() -> np.ndarray:
    return make_photo()


@pytest.fixture
def tiny_named_models(tmp_path, monkeypatch):
    """'color' and 'gray' resolve to tiny random models."""
    import fbcnn.modelfiles as modelfiles

    weights = tmp_path / "weights"
    weights.mkdir()
    save_network(tiny_network(3), weights / "color.safetensors")
    save_network(tiny_network(1), weights / "gray.safetensors")
    monkeypatch.setattr(modelfiles, "WEIGHTS_DIR", weights)
    return weights


@pytest.fixture
def tiny_model_files(tmp_path):
    """Paths of a tiny colour and a tiny grey model."""
    color, gray = tmp_path / "tiny_color.safetensors", tmp_path / "tiny_gray.safetensors"
    save_network(tiny_network(3), color)
    save_network(tiny_network(1), gray)
    return {"color": color, "gray": gray}
