"""Runs a network over an image, and nothing else.

Works on uint8 arrays (HxWx1 grey or HxWx3 colour); files are `fbcnn.images.files`' business, the
network's runtime `fbcnn.networks.runtimes.Runtime`'s (torch, OpenVINO or onnxruntime: this
module never touches a tensor), and what follows the network, JPEG consistency and the
near-lossless share, `fbcnn.engine.finish`'s.

    pixels -> QF (one global value, `fbcnn.jpeg.qf`) -> tiles on the JPEG grid -> network
           -> blend

- **One global QF.** Read where `fbcnn.jpeg.qf.reading_boxes` says (windows of the model's
  training patch size, `ModelInfo.qf_tile`, when it is known), as the mean of the
  network's readings; every tile gets that one QF.
- **Balanced tiles.** Images with a side longer than `tile` are cut into as few tiles as fit,
  of nearly equal size, whose corners sit on the JPEG block grid (so every tile sees its 8x8
  blocks where they are), overlapping by `overlap` pixels and blended with linear ramps.
- **Bounded memory.** Tiles are run row by row; a row's blended pixels are final once the next
  row's tiles are in, so besides the input and output images only one row of tiles is held
  in float (memory grows with the tile size and the image width, not the image area).
- **Precision** is the runtime's (`ModelInfo.precision`); the blend and the output are
  always fp32 -> uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..jpeg.qf import check_qf, reading_boxes
from ..networks.config import network_to_qf, qf_to_network
from ..networks.runtimes import NO_QF_INPUT, ModelInfo, Runtime, as_runtime

DEFAULT_TILE = 640
DEFAULT_OVERLAP = 32  # pixels shared by neighbouring tiles ...
RAMP_EDGE = 8  # ... whose outer 8 count for nothing in the blend (`_ramp`)
MIN_TILE = 64
QF_BATCH = 16  # QF windows per network call

Progress = Callable[[int, int], None]


@dataclass
class RestoreOutput:
    pixels: np.ndarray  # uint8, same shape as the input
    predicted_qf: float  # what the network reads from the image (1..100)
    used_qf: float  # what was fed to the decoder (the prediction, or the override)


def tile_spans(length: int, tile: int, overlap: int, grid: int) -> list[tuple[int, int]]:
    """[start, end) spans covering [0, length) with as few tiles of at most `tile` pixels as
    possible, of nearly equal size: starts on multiples of `grid`, neighbours overlapping by
    `overlap` pixels. One span if `tile` is 0 or covers the length.

    The interior starts are rounded up to the grid where the spans still fit (else to the
    nearest): the first span is then the longest, so the first tile is the largest, and
    a runtime that sizes its buffers on its first run (OpenVINO) need not grow them later
    (each growth took 0.03-0.04 s on 544-pixel tiles, two of them on a 2048x1536 photo)."""
    if tile <= 0 or length <= tile:
        return [(0, length)]
    if tile < overlap + 2 * grid:
        raise ValueError(f"tile {tile} is too small for an overlap of {overlap} on a "
                         f"{grid}-pixel grid")
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    while True:
        for to_grid in (math.ceil, round):
            # interior boundaries evenly spaced, on the grid
            starts = [0] + [to_grid(i * (length - overlap) / count / grid) * grid
                            for i in range(1, count)]
            ends = [s + overlap for s in starts[1:]] + [length]
            if all(e - s <= tile for s, e in zip(starts, ends, strict=True)) and \
                    all(b > a for a, b in zip(starts, starts[1:], strict=False)):
                return list(zip(starts, ends, strict=True))
        count += 1


def tile_starts(length: int, tile: int, overlap: int, grid: int) -> list[int]:
    """The start positions of `tile_spans`."""
    return [s for s, _ in tile_spans(length, tile, overlap, grid)]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blending weights along one side of a tile: over each overlap with a neighbour, 0 on
    the outer RAMP_EDGE pixels (at most a quarter of it; the network sees least there),
    then a linear ramp, then 1 on the inner RAMP_EDGE; the neighbour's weights mirror
    these, so the two add up to 1."""
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        edge = min(RAMP_EDGE, n // 4)
        core = n - 2 * edge
        ramp = np.zeros(n, np.float32)
        ramp[edge:n - edge] = (np.arange(core, dtype=np.float32) + 0.5) / core
        ramp[n - edge:] = 1
        if not at_start:
            w[:n] = ramp
        if not at_end:
            w[-n:] = ramp[::-1]
    return w


class Restorer:
    """Restores images with one network (`runtime`, described by `info`).

    `tile` bounds memory: images with a side longer than `tile` are processed in tiles;
    0 or None restores in one pass.
    """

    def __init__(self, runtime: Runtime, info: ModelInfo, tile: int | None = DEFAULT_TILE,
                 overlap: int = DEFAULT_OVERLAP) -> None:
        tile = tile or 0
        if 0 < tile < MIN_TILE:
            raise ValueError(f"tile must be 0 (one pass) or at least {MIN_TILE}, got {tile}")
        self.runtime = runtime
        self.info = info
        self.tile = tile
        self.overlap = overlap
        # windows of the last training stage's patch size (None: the image, or QF tiles);
        # a model without a QF input reads its own QF in every tile
        self.qf_tile = info.qf_tile if info.has_qf_input else None

    @classmethod
    def of(cls, network: Any, *, device: str = "auto", precision: str = "auto",
           qf_tile: int | None = None, tile: int | None = DEFAULT_TILE,
           overlap: int = DEFAULT_OVERLAP, name: str = "model",
           source: Path | None = None) -> Restorer:
        """A Restorer for a network in hand: a torch module (run on `device` in
        `precision`, see `fbcnn.networks.torch_runtime`) or a runtime; `name` and `source`
        (the file it came from) go into its `ModelInfo`."""
        runtime = as_runtime(network, device, precision)
        return cls(runtime, ModelInfo.of(runtime, name, source, qf_tile), tile, overlap)

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def has_qf_input(self) -> bool:
        return self.info.has_qf_input

    def check(self, pixels: np.ndarray) -> np.ndarray:
        """HxWxC uint8 pixels with this network's channel count (ValueError otherwise)."""
        if pixels.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {pixels.dtype}")
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or pixels.shape[2] != self.channels:
            raise ValueError(f"this model takes {self.channels}-channel images, "
                             f"got shape {pixels.shape}")
        return pixels

    def one_pass(self, h: int, w: int) -> bool:
        """True when an h x w image is restored in one pass (no tiles)."""
        return not self.tile or (h <= self.tile and w <= self.tile)

    def tile_count(self, h: int, w: int, grid: int = 8) -> int:
        """How many tiles an h x w image is restored in (1: one pass)."""
        if self.one_pass(h, w):
            return 1
        return (len(tile_spans(h, self.tile, self.overlap, grid))
                * len(tile_spans(w, self.tile, self.overlap, grid)))

    def qf_boxes(self, h: int, w: int, grid: int = 8) -> list[tuple[int, int, int, int]]:
        """Where the global QF of an h x w image is read (`fbcnn.jpeg.qf.reading_boxes`)."""
        return reading_boxes(h, w, grid, self.qf_tile, self.one_pass(h, w))

    def predict_qf(self, pixels: np.ndarray, grid: int = 8) -> float:
        """The image's QF (1..100) as the network reads it, the same value `restore` uses:
        the mean of the decoupler over `qf_boxes` (windows of the same size go through the
        network together), whatever the restoration tile size."""
        pixels = self.check(pixels)
        h, w = pixels.shape[:2]
        groups: dict[tuple[int, int], list[np.ndarray]] = {}
        for y, x, th, tw in self.qf_boxes(h, w, grid):
            groups.setdefault((th, tw), []).append(pixels[y:y + th, x:x + tw])
        values: list[float] = []
        for parts in groups.values():
            for i in range(0, len(parts), QF_BATCH):
                read = self.runtime.predict_qf(np.stack(parts[i:i + QF_BATCH]))
                values += [float(v) for v in np.ravel(read)]
        return float(network_to_qf(np.float32(np.mean(values))))

    def restore(self, pixels: np.ndarray, qf: float | None = None, grid: int = 8,
                progress: Progress | None = None,
                predicted_qf: float | None = None) -> RestoreOutput:
        """Restore a uint8 image: the network's output, before JPEG consistency and the
        near-lossless share (`fbcnn.engine.finish`).

        `qf` (1..100) overrides the predicted QF; `predicted_qf`, when the caller already
        has `predict_qf`'s value, saves reading it again; `grid` is the JPEG block grid the
        tiles start on (16 for 4:2:0 colour, 8 otherwise); `progress(done, total)` is called
        after each tile."""
        pixels = self.check(pixels)
        if qf is not None:
            qf = check_qf(qf)
            if not self.has_qf_input and qf != predicted_qf:
                raise ValueError(NO_QF_INPUT)
        h, w = pixels.shape[:2]
        if self.one_pass(h, w):
            out = self._restore_whole(pixels, qf, grid, predicted_qf)
            if progress:
                progress(1, 1)
            return out
        if predicted_qf is None:
            predicted_qf = self.predict_qf(pixels, grid)
        used = predicted_qf if qf is None else qf
        tiled = self._restore_tiled(pixels, used, grid, progress)
        self.runtime.release_memory()
        _release_free_memory()  # the tiles' activations, before what comes next
        return RestoreOutput(tiled, predicted_qf, used)

    def _restore_whole(self, pixels: np.ndarray, qf: float | None, grid: int,
                       predicted_qf: float | None) -> RestoreOutput:
        """One pass. Without QF windows and without an override the pass reads the QF
        itself: the same value as predict_qf (same input, same encoder), so callers that
        read it first get exactly the pixels of those that did not."""
        if self.qf_tile:
            if predicted_qf is None:
                predicted_qf = self.predict_qf(pixels, grid)
            used = predicted_qf if qf is None else qf
            restored, _ = self._run(pixels, used, need_qf=False)
            return RestoreOutput(_to_uint8(restored), float(predicted_qf), used)
        restored, own = self._run(pixels, qf)
        predicted = own if predicted_qf is None else predicted_qf
        return RestoreOutput(_to_uint8(restored), predicted, predicted if qf is None else qf)

    def _run(self, tile: np.ndarray, qf: float | None,
             need_qf: bool = True) -> tuple[np.ndarray, float]:
        """The network on one uint8 tile: the restored image, float32 H x W x C in the
        network's [0, 1] scale (not clamped), and the QF it read (1..100); `qf` (1..100) is
        fed to the decoder when given. With a QF fed and `need_qf` False the runtime skips
        its decoupler (`Runtime.reconstruct`) and the QF returned is NaN."""
        wanted = qf_to_network(float(qf)) if qf is not None and self.has_qf_input else None
        if wanted is not None and not need_qf:
            return self.runtime.reconstruct(tile[None], wanted)[0], math.nan
        restored, read = self.runtime.run(tile[None], wanted)
        return restored[0], float(np.mean(network_to_qf(read)))

    def _restore_tiled(self, pixels: np.ndarray, qf: float, grid: int,
                       progress: Progress | None) -> np.ndarray:
        """Tiles row by row, each row blended into a float buffer that holds only the rows
        not yet final (see the module docstring)."""
        h, w, c = pixels.shape
        rows = tile_spans(h, self.tile, self.overlap, grid)
        cols = tile_spans(w, self.tile, self.overlap, grid)
        row_weights = [wy[:, None] for wy in _blend_weights(rows, h, self.overlap)]
        col_weights = [255 * wx for wx in _blend_weights(cols, w, self.overlap)]
        # a runtime without a QF input reads its own QF in every tile
        tile_qf = qf if self.has_qf_input else None
        result = np.empty_like(pixels)
        # blended in planes (C x rows x W): the networks give C x H x W tiles, so the
        # clip, the weights and the sum run over contiguous memory
        carry: np.ndarray | None = None  # blended rows shared with the next row of tiles
        total, done = len(rows) * len(cols), 0
        for r, (y0, y1) in enumerate(rows):
            acc = np.zeros((c, y1 - y0, w), np.float32)
            if carry is not None:
                acc[:, :carry.shape[1]] = carry
            for (x0, x1), wx in zip(cols, col_weights, strict=True):
                tile, _ = self._run(pixels[y0:y1, x0:x1], tile_qf, need_qf=False)
                planes = np.ascontiguousarray(tile.transpose(2, 0, 1))
                np.clip(planes, 0, 1, out=planes)
                planes *= row_weights[r] * wx  # the blend weight, and the scale to 0..255
                acc[:, :, x0:x1] += planes
                done += 1
                if progress:
                    progress(done, total)
            final = (rows[r + 1][0] if r + 1 < len(rows) else y1) - y0
            finished = acc[:, :final]
            np.round(finished, out=finished)
            np.clip(finished, 0, 255, out=finished)
            result[y0:y0 + final] = finished.transpose(1, 2, 0)
            carry = acc[:, final:] if final < y1 - y0 else None
        return result


def _blend_weights(spans: list[tuple[int, int]], length: int, overlap: int) -> list[np.ndarray]:
    """Each span's `_ramp`, divided by the sum of all the spans' ramps at each position, so
    that they add up to exactly 1 along the side (the 2-D weights of a tile are the product
    of its row's and its column's, so they add up to 1 too)."""
    ramps = [_ramp(b - a, overlap, a == 0, b >= length) for a, b in spans]
    total = np.zeros(length, np.float32)
    for (a, b), ramp in zip(spans, ramps, strict=True):
        total[a:b] += ramp
    return [ramp / total[a:b] for (a, b), ramp in zip(spans, ramps, strict=True)]


def _release_free_memory() -> None:
    """Hand memory freed by the network back to the OS (glibc keeps it otherwise, and the
    process's peak would add the next step's needs on top of it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _to_uint8(out: np.ndarray) -> np.ndarray:
    """float32 H x W x C in [0, 1] (not clamped) -> uint8, rounding half to even."""
    scaled = np.clip(out, 0, 1)
    scaled *= 255
    return np.round(scaled).astype(np.uint8)
