"""Shared fixtures: tiny photos made here, tiny models saved as files."""

from __future__ import annotations

import locale
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fbcnn.networks.checkpoints import save_network
from fbcnn.networks.network import FBCNN, FBCNNConfig

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _keep_the_locale():
    """Ray's driver sets the process locale to C: later tests that read a child's UTF-8
    output (tqdm's bars) in text mode would decode it as ASCII. Each test gets the locale
    it started with back."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


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


def cmyk_profile(swap: bool = False) -> bytes:
    """A small CMYK printer profile (ICC v2: CMYK -> XYZ D50 by one lut16 A2B0) that undoes
    Pillow's plain RGB -> CMYK conversion (C = 255 - R, ...; K = 0): converted into sRGB
    through it, `Image.fromarray(rgb).convert("CMYK")` comes back as `rgb`. `swap`: cyan
    and yellow ink trade places, so that it comes back as `rgb[..., ::-1]` (BGR): a
    conversion that used the profile cannot pass for a plain one."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    to_xyz = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169],
                       [0.0139322, 0.0971045, 0.7141733]])  # linear sRGB -> XYZ D50
    entries = 4096
    t = np.linspace(0, 1, entries)
    v = 1 - t
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    # ink -> 1 - linear light of the RGB value it came from: the grid is then exact
    curve = np.round((1 - linear) * 65535).astype(">u2").tobytes()
    grid = []
    for c in (0, 1):  # the first input channel varies slowest
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    r, b = (y, c) if swap else (c, y)
                    rgb = np.array([1 - r, 1 - m, 1 - b]) * (1 - k)
                    grid.extend(np.clip(np.round(to_xyz @ rgb * 32768), 0, 65535))
    lut = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0])
           + b"".join(s15(e) for e in np.eye(3).ravel()) + struct.pack(">HH", entries, 2)
           + curve * 4 + np.array(grid, ">u2").tobytes()
           + np.array([0, 65535], ">u2").tobytes() * 3)
    name = b"fbcnn test CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(name)) + name + bytes(4 + 4 + 2 + 1 + 67)
    white = s15(0.9642) + s15(1.0) + s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + white), (b"A2B0", lut)]
    start = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (struct.pack(">I", start + len(data)) + bytes(4) + bytes([2, 0x10, 0, 0])
              + b"prtrCMYKXYZ " + bytes(12) + b"acsp" + bytes(28) + white + bytes(48))
    assert len(header) == 128
    return header + table + data


def cmyk_jpeg(path: Path, rgb: np.ndarray, quality: int = 30, icc: bytes | None = None,
              ycck: bool = False) -> Path:
    """`rgb` saved by Pillow as a CMYK JPEG (Adobe's inverted values, APP14 marker), with
    the ICC profile `icc`; `ycck`: the marker's transform set to 2, so that decoders read
    the planes as YCCK (the colours are then not `rgb`'s: for the code path only)."""
    Image.fromarray(rgb).convert("CMYK").save(path, quality=quality,
                                              **({"icc_profile": icc} if icc else {}))
    if ycck:
        data = bytearray(path.read_bytes())
        at = data.find(b"\xff\xee")
        assert at > 0 and data[at + 4:at + 9] == b"Adobe"
        data[at + 15] = 2  # Adobe APP14: version, flags0, flags1, then the transform
        path.write_bytes(bytes(data))
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
    import fbcnn.networks.modelfiles as modelfiles

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
