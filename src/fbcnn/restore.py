"""The inference engine: device choice, one global QF, tiles on the JPEG grid, blending.

Works on uint8 arrays (HxWx1 grey or HxWx3 colour); files are imageio's business.
Big images are cut into overlapping tiles whose corners sit on the JPEG block grid (so every
tile sees its 8x8 blocks where they are) and blended with linear ramps. The QF is predicted
once for the whole image (the mean over a spread of tiles) and fed to every tile, so tiles
never disagree about how strong the correction should be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .consistency import JpegTables, project
from .network import FBCNN, network_to_qf, qf_to_network

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
QF_SAMPLE_TILES = 16


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else MPS, else CPU; or the device named."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS is not available on this machine")
    return torch.device(name)


@dataclass
class RestoreOutput:
    pixels: np.ndarray  # uint8, same shape as the input
    predicted_qf: float  # what the network reads from the image (1..100)
    used_qf: float  # what was fed to the decoder (the prediction, or the override)


def tile_starts(length: int, tile: int, overlap: int, grid: int) -> list[int]:
    """Start positions covering [0, length): multiples of `grid`, neighbours overlapping
    by at least `overlap` (which is rounded up to the grid)."""
    if length <= tile:
        return [0]
    step = max(grid, (tile - overlap) // grid * grid)
    starts = list(range(0, length - tile, step))
    starts.append(-(-(length - tile) // grid) * grid)  # the first grid start that reaches the end
    return sorted(set(starts))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
        if not at_start:
            w[:n] = ramp
        if not at_end:
            w[-n:] = ramp[::-1]
    return w


class Restorer:
    """Restores images with one FBCNN network.

    `tile` bounds memory: images with a side longer than `tile` are processed in tiles;
    0 or None restores in one pass.
    """

    def __init__(self, network: FBCNN, device: str | torch.device = "auto",
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> None:
        self.device = pick_device(device) if isinstance(device, str) else device
        self.network = network.to(self.device).eval()
        if self.device.type == "cpu":
            self.network = self.network.to(memory_format=torch.channels_last)
        self.tile = tile or 0
        self.overlap = overlap

    @property
    def channels(self) -> int:
        return self.network.config.in_channels

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None]
        x = x.to(self.device, torch.float32).div_(255.0)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _check(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {pixels.dtype}")
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or pixels.shape[2] != self.channels:
            raise ValueError(f"this model takes {self.channels}-channel images, "
                             f"got shape {pixels.shape}")
        return pixels

    def _tiles(self, h: int, w: int, grid: int) -> Iterator[tuple[int, int, int, int]]:
        size = self.tile if self.tile else max(h, w)
        for y in tile_starts(h, size, self.overlap, grid):
            for x in tile_starts(w, size, self.overlap, grid):
                yield y, x, min(size, h - y), min(size, w - x)

    @torch.inference_mode()
    def predict_qf(self, pixels: np.ndarray, grid: int = 8) -> float:
        """The image's QF (1..100) as the network reads it: the mean over up to 16 tiles
        spread across the image."""
        pixels = self._check(pixels)
        h, w = pixels.shape[:2]
        tiles = list(self._tiles(h, w, grid))
        if len(tiles) > QF_SAMPLE_TILES:
            pick = np.linspace(0, len(tiles) - 1, QF_SAMPLE_TILES).round().astype(int)
            tiles = [tiles[i] for i in pick]
        values = [float(self.network.predict_qf(self._tensor(pixels[y:y + th, x:x + tw])))
                  for y, x, th, tw in tiles]
        return float(network_to_qf(torch.tensor(np.mean(values))))

    @torch.inference_mode()
    def restore(self, pixels: np.ndarray, qf: float | None = None, grid: int = 8,
                progress: Callable[[int, int], None] | None = None,
                tables: JpegTables | None = None) -> RestoreOutput:
        """Restore a uint8 image. `qf` (1..100) overrides the predicted QF; `grid` is the
        JPEG block grid the tiles start on (16 for 4:2:0 colour, 8 otherwise); `tables`, the
        quantisation tables of the JPEG that `pixels` were decoded from, make the result
        consistent with that file (see `fbcnn.consistency`)."""
        pixels = self._check(pixels)
        out = self._restore(pixels, qf, grid, progress)
        if tables is not None:
            out.pixels = project(out.pixels, pixels, tables)
        return out

    def _restore(self, pixels: np.ndarray, qf: float | None, grid: int,
                 progress: Callable[[int, int], None] | None) -> RestoreOutput:
        if qf is not None and not 1 <= qf <= 100:
            raise ValueError(f"QF must be in 1..100, got {qf}")
        h, w = pixels.shape[:2]
        tiles = list(self._tiles(h, w, grid))
        if len(tiles) == 1:
            x = self._tensor(pixels)
            override = None if qf is None else torch.tensor([[qf_to_network(float(qf))]])
            out, predicted = self.network(x, None if override is None else override.to(x))
            predicted_qf = float(network_to_qf(predicted).item())
            if progress:
                progress(1, 1)
            return RestoreOutput(_to_uint8(out), predicted_qf,
                                 predicted_qf if qf is None else float(qf))

        predicted_qf = self.predict_qf(pixels, grid)
        used_qf = predicted_qf if qf is None else float(qf)
        qf_in = torch.tensor([[qf_to_network(used_qf)]], device=self.device)
        acc = np.zeros((h, w, self.channels), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        for i, (y, x, th, tw) in enumerate(tiles):
            out, _ = self.network(self._tensor(pixels[y:y + th, x:x + tw]), qf_in)
            tile = out[0].clamp_(0, 1).mul_(255).permute(1, 2, 0).float().cpu().numpy()
            wy = _ramp(th, self.overlap, y == 0, y + th >= h)
            wx = _ramp(tw, self.overlap, x == 0, x + tw >= w)
            wt = (wy[:, None] * wx[None, :])[:, :, None]
            acc[y:y + th, x:x + tw] += tile * wt
            weight[y:y + th, x:x + tw] += wt
            if progress:
                progress(i + 1, len(tiles))
        acc /= weight
        return RestoreOutput(np.clip(np.round(acc), 0, 255).astype(np.uint8), predicted_qf, used_qf)


def _to_uint8(out: torch.Tensor) -> np.ndarray:
    return out[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
