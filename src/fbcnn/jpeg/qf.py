"""The QF rules: what a quality factor may be, where an image's QF is read, and what QF a
double JPEG is restored with. (How the network writes a QF, (100 - QF) / 100, is the
network's business: `fbcnn.networks.config`; how much a near-lossless JPEG keeps of its
correction, `fbcnn.jpeg.nearlossless`.)

- **One global QF**, read as the mean of the network's readings over windows spread over
  the image (`reading_boxes`). A model that knows the patch size its last training stage
  saw (`qf_tile`, from the weights' provenance) is read over windows of that size
  (`QF_WINDOWS_MIN`..`QF_WINDOWS_MAX` of them): its decoupler reads best at the size it
  learned on (whole photos read up to 5 QF low or high), and the reading never depends on
  the restoration tile size. Without it (published checkpoints, graphs without a QF
  input) an image restored in one pass is read in that same pass, and an image restored
  in tiles over a few `QF_TILE`-pixel tiles covering about `QF_TILE_SHARE` of it.
- **A double JPEG** whose earlier, non-aligned compression is stronger than the network's
  reading is fed that compression's QF (FBCNN-D: it dominates the artifacts).
"""

from __future__ import annotations

import math

QF_TILE = 256  # side of the tiles the global QF is read from (own size, not the tile's)
QF_TILE_SHARE = 0.04  # share of the image's area the QF tiles cover, at most ...
QF_TILES_MIN, QF_TILES_MAX = 2, 16  # ... within these counts
QF_WINDOWS_MIN, QF_WINDOWS_MAX = 8, 64  # counts of training-size QF windows (`qf_tile`)

Box = tuple[int, int, int, int]  # (y, x, height, width)


def check_qf(qf: float, what: str = "QF") -> float:
    """`qf` as a float if it is a JPEG quality factor (1..100), else ValueError. The one
    range check of the library (CLI, API, evaluation)."""
    try:
        value = float(qf)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in 1..100, got {qf!r}") from None
    if not 1 <= value <= 100:
        raise ValueError(f"{what} must be in 1..100, got {qf:g}" if isinstance(qf, int | float)
                         else f"{what} must be in 1..100, got {qf!r}")
    return value


def qf_tile_boxes(h: int, w: int, grid: int, side: int = QF_TILE, least: int = QF_TILES_MIN,
                  most: int = QF_TILES_MAX) -> list[Box]:
    """(y, x, th, tw) of the tiles the global QF is read from: `side`-sized tiles on the
    block grid, spread evenly over the image, covering about QF_TILE_SHARE of it (within
    `least`..`most` tiles, fewer when the image has no room for them apart); the whole
    image when it is that small."""
    th, tw = min(side, h), min(side, w)
    if th == h and tw == w:
        return [(0, 0, h, w)]
    wanted = round(QF_TILE_SHARE * h * w / (th * tw))
    count = min(most, max(least, wanted))
    rows = max(1, min(round(math.sqrt(count * h / w)), count))
    cols = max(1, math.ceil(count / rows))

    def spread(length: int, size: int, n: int) -> list[int]:
        if n == 1 or length == size:
            return [(length - size) // 2 // grid * grid]
        return [int(i * (length - size) / (n - 1)) // grid * grid for i in range(n)]

    boxes = [(y, x, th, tw) for y in spread(h, th, rows) for x in spread(w, tw, cols)]
    return list(dict.fromkeys(boxes))


def reading_boxes(h: int, w: int, grid: int, qf_tile: int | None, one_pass: bool) -> list[Box]:
    """Where the global QF of an h x w image is read (see the module docstring): windows of
    `qf_tile` when the model has one, else the whole image when it is restored in one pass,
    else QF tiles."""
    if qf_tile:
        return qf_tile_boxes(h, w, grid, qf_tile, QF_WINDOWS_MIN, QF_WINDOWS_MAX)
    return [(0, 0, h, w)] if one_pass else qf_tile_boxes(h, w, grid)


def double_jpeg_qf(kind: str, qf1: int | None, predicted_qf: float) -> float | None:
    """The QF a double JPEG is fed (FBCNN-D): the earlier compression's, when a non-aligned
    one (`kind`, as `fbcnn.jpeg.recompress` names it) was found below the network's reading;
    else None (the reading itself)."""
    if kind == "non-aligned" and qf1 is not None and qf1 < predicted_qf:
        return float(qf1)
    return None
