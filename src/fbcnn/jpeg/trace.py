"""Does an image that is not a JPEG file bear JPEG compression? Decided from its pixels.

A decoded JPEG keeps, on its 8x8 block grid, DCT coefficients that lie on the lattice of its
quantisation steps: coefficient k of every block is (up to the decoder's rounding, about 0.3
in the pixel range) a multiple of the step Q_k, whatever the encoder (libjpeg, MozJPEG's
trellis and jpegli's adaptive quantisation all choose among multiples of the table's steps).
A never-compressed image (a screenshot, rendered text, a downscaled photo) has no such
lattice, and a JPEG cropped or pasted elsewhere keeps it at another grid offset.

Method (luma, numpy only):

* **Sample.** Up to `TILES` tiles of 72x72 pixels at positions on multiples of 8, so every
  tile sees any grid at the same offset: every position when there are at most `TILES`,
  else an evenly spaced grid of gy x gx positions shaped like the image (integer arithmetic,
  no random generator: the web page's jpegtrace.js picks the same tiles); each offset
  (oy, ox) in 0..7 cuts 64 blocks from every tile.
* **Lattice score.** For the `FREQUENCIES` lowest AC coefficients (zigzag order) and every
  integer step q in 2..`MAX_STEP`, over the *distinct* values (0.1 apart; the coefficients
  are rounded to float32 first, so that one exactly on a bin's edge, as integer pixels make
  many, falls in the same bin whatever the order of the DCT's sums) whose magnitude is
  at least q/2: ``R = mean(cos(2 pi c / q))`` and ``Z = 2 n R^2`` for R > 0 (about 1 on
  average for values that are not on a lattice). Distinct values, so that a block repeated
  many times (icons, a tiled pattern) counts once. An offset's score is the sum over the
  frequencies of the best Z.
* **Decision.** The best offset's score is compared with the median over the 64 offsets (a
  JPEG's lattice is only seen on its own grid; content that is periodic every 8 pixels
  scores alike everywhere): JPEG when ``best >= SCORE_MIN`` and ``best >= RATIO_MIN x
  median``. Images with fewer than `MIN_BLOCKS` blocks per offset are not judged (and are
  treated as not JPEG). The thresholds come from the labelled set of
  `scripts/probes/jpeg_trace_rates.py` (docs/results.md, "Images that were never JPEGs").

``offset`` is where the blocks start, (dy, dx) in 0..7: a JPEG cropped by (y, x) pixels has
its grid at ((8 - y) % 8, (8 - x) % 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

TILES = 32
TILE = 72  # 64 pixels of blocks at any of the 8 offsets
FREQUENCIES = 12
MAX_STEP = 60
BIN = 0.1  # distinct values: coefficients rounded to this
RANGE = 400.0  # coefficients beyond +-RANGE are left out (few, and no help with small steps)
MIN_BLOCKS = 128
SCORE_MIN = 400.0
RATIO_MIN = 6.0


@dataclass(frozen=True)
class JpegTrace:
    """The verdict: `found` when the pixels bear JPEG compression, its grid at `offset`."""

    found: bool
    offset: tuple[int, int]
    score: float  # the best offset's lattice score
    median: float  # the median score over the 64 offsets
    judged: bool = True  # False: too small to judge (found is then False)

    def to_json(self) -> dict[str, Any]:
        return {"found": self.found, "offset": list(self.offset),
                "score": round(self.score, 1), "median": round(self.median, 1),
                "judged": self.judged}


@lru_cache(maxsize=1)
def _dct() -> np.ndarray:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


@lru_cache(maxsize=1)
def _frequencies() -> np.ndarray:
    """Indices (u * 8 + v) of the lowest AC coefficients in zigzag order."""
    order = sorted(((u, v) for u in range(8) for v in range(8)),
                   key=lambda t: (t[0] + t[1], t[0] if (t[0] + t[1]) % 2 else t[1]))
    return np.asarray([u * 8 + v for u, v in order[1:FREQUENCIES + 1]])


@lru_cache(maxsize=1)
def _lattice() -> tuple[np.ndarray, np.ndarray]:
    """Per value bin and step q: cos(2 pi v / q) where |v| >= q / 2 (else 0), and the mask."""
    values = np.arange(-RANGE, RANGE + BIN / 2, BIN)
    steps = np.arange(2, MAX_STEP + 1, dtype=np.float64)
    mask = (np.abs(values)[:, None] >= steps[None, :] / 2).astype(np.float32)
    cosines = np.cos(2 * np.pi * values[:, None] / steps[None, :]).astype(np.float32) * mask
    return cosines, mask


def luma(pixels: np.ndarray) -> np.ndarray:
    """The JPEG encoder's full-range luma (float) of HxW, HxWx1 or HxWx3 uint8 pixels."""
    p = pixels.astype(np.float64)
    if p.ndim == 3 and p.shape[2] == 1:
        return p[:, :, 0]
    if p.ndim == 3:
        return 0.299 * p[..., 0] + 0.587 * p[..., 1] + 0.114 * p[..., 2]
    return p


def _tile_corners(h: int, w: int) -> tuple[int, list[tuple[int, int]]]:
    """The tiles' side (TILE, or the image's own when smaller) and top-left corners, on
    multiples of 8: every position when there are at most TILES, else an evenly spaced grid
    of gy x gx positions shaped like the image (gy * gx <= TILES). Integers only: the web
    page's jpegtrace.js (tilePositions) picks the same."""
    side = min(TILE, (min(h, w) // 8) * 8)
    rows, cols = (h - side) // 8 + 1, (w - side) // 8 + 1
    gy, gx = rows, cols
    if rows * cols > TILES:
        gy = min(rows, TILES, max(1, math.isqrt(TILES * rows // cols)))
        gx = min(cols, TILES // gy)
        gy = min(rows, TILES // gx)
    return side, [(8 * ((2 * i + 1) * rows // (2 * gy)), 8 * ((2 * j + 1) * cols // (2 * gx)))
                  for i in range(gy) for j in range(gx)]


def _tiles(pixels: np.ndarray) -> np.ndarray:
    """(n, side, side) luma tiles (level-shifted by 128) at the corners of `_tile_corners`,
    cut from the uint8 pixels first: memory follows the tiles, not the image."""
    side, corners = _tile_corners(*pixels.shape[:2])
    return np.stack([luma(pixels[r:r + side, c:c + side]) for r, c in corners]) - 128.0


def offset_scores(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """(8, 8) lattice scores, one per grid offset, and the blocks each was computed on."""
    tiles = _tiles(pixels)
    n, side = tiles.shape[0], tiles.shape[1]
    inner = side - 8 if side > 8 else side
    d, freqs = _dct(), _frequencies()
    cosines, mask = _lattice()
    per = inner // 8
    rows = []
    for oy in range(8 if side > 8 else 1):
        for ox in range(8 if side > 8 else 1):
            sub = tiles[:, oy:oy + inner, ox:ox + inner]
            blocks = sub.reshape(n, per, 8, per, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)
            coeffs = (d @ blocks @ d.T).reshape(-1, 64)[:, freqs]
            rows.append(coeffs)
    blocks_per_offset = rows[0].shape[0]
    # distinct values per (offset, frequency) as indicator rows over value bins
    # rounded to float32 first: a coefficient exactly on a bin's edge (integer pixels make
    # many, e.g. 0.25 at (4, 0)) then falls in one bin whatever the order of the DCT's sums
    stacked = np.stack(rows).astype(np.float32).astype(np.float64)  # (offsets, blocks, freqs)
    bins = np.round((stacked + RANGE) / BIN).astype(np.int64)
    inside = (bins >= 0) & (bins < cosines.shape[0])
    series = np.arange(stacked.shape[0])[:, None, None] * len(freqs) + np.arange(len(freqs))
    series = np.broadcast_to(series, stacked.shape)
    hist = np.zeros((stacked.shape[0] * len(freqs), cosines.shape[0]), np.float32)
    hist[series[inside], bins[inside]] = 1.0
    count = hist @ mask  # (series, steps): distinct values at least q / 2 away from 0
    total = hist @ cosines
    r = np.where(count >= 8, total / np.maximum(count, 1), 0.0)
    z = np.where(r > 0, 2 * count * r * r, 0.0)
    score = z.max(axis=1).reshape(stacked.shape[0], len(freqs)).sum(axis=1)
    side_count = 8 if side > 8 else 1
    grid = np.zeros((8, 8))
    grid[:side_count, :side_count] = score.reshape(side_count, side_count)
    return grid, blocks_per_offset


def detect(pixels: np.ndarray) -> JpegTrace:
    """Whether `pixels` (uint8 HxW, HxWx1 or HxWx3) bear JPEG compression, and where its grid
    lies; images too small to judge (fewer than MIN_BLOCKS blocks at an offset) are not."""
    h, w = pixels.shape[:2]
    if min(h, w) < 16 or (h // 8 - 1) * (w // 8 - 1) < MIN_BLOCKS // 2:
        return JpegTrace(False, (0, 0), 0.0, 0.0, judged=False)
    scores, blocks = offset_scores(pixels)
    if blocks < MIN_BLOCKS:
        return JpegTrace(False, (0, 0), 0.0, 0.0, judged=False)
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    top, median = float(scores[best]), float(np.median(scores))
    found = top >= SCORE_MIN and top >= RATIO_MIN * max(median, 1.0)
    return JpegTrace(bool(found), (int(best[0]), int(best[1])), top, median)
