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
- **A single JPEG read below its tables' QF** is fed the tables' IJG-equivalent QF
  (`single_jpeg_qf`), up to `TABLES_FLOOR_MAX` (above it the near-lossless share decides):
  an encoder that quantises as its tables say cannot have damaged the image more than they
  allow, and the reading runs low on smooth content at high qualities (a MozJPEG quality-90
  photo read as QF 69 lost 0.23 dB; fed its tables' 89 it gains 0.30). Not jpegli's
  tables' QF: its adaptive quantisation damages more than its tables say (they read QF 67
  at quality 30, and raising to them lost up to 0.09 dB); its tables name the jpegli
  quality that wrote them (`jpegli_quality`), and that is the floor, up to
  `JPEGLI_FLOOR_MAX` (above it the floor cost colour photos 0.01 dB at quality 85).
  Nor when the reading is far below the floor (under `TABLES_FLOOR_MIN_SHARE` of it): that
  is an earlier, stronger compression on the same grid (a QF-10 JPEG re-saved at 30 reads
  8-10), which the double-JPEG analysis does not always find. `python
  scripts/probes/qf_floor.py`, `python scripts/probes/jpegli_rules.py` (docs/real_world.md).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path

QF_TILE = 256  # side of the tiles the global QF is read from (own size, not the tile's)
QF_TILE_SHARE = 0.04  # share of the image's area the QF tiles cover, at most ...
QF_TILES_MIN, QF_TILES_MAX = 2, 16  # ... within these counts
QF_WINDOWS_MIN, QF_WINDOWS_MAX = 8, 64  # counts of training-size QF windows (`qf_tile`)
TABLES_FLOOR_MAX = 90  # tables' QF up to which a single JPEG's reading is raised to it
# ... when the reading is at least this share of the tables' QF: far below them it reads an
# earlier, stronger compression on the same grid that the double-JPEG analysis missed
TABLES_FLOOR_MIN_SHARE = 0.6
JPEGLI_FLOOR_MAX = 80  # jpegli quality up to which a jpegli JPEG's reading is raised to it
JPEGLI_TABLES = Path(__file__).with_name("jpegli_tables.json")  # scripts/make_jpegli_tables.py

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


@functools.cache
def _jpegli_qualities() -> dict[tuple[tuple[int, ...], ...], int]:
    """jpegli's quality for every (luma,) and (luma, chroma) pair of tables it writes
    (qualities 1..100); where several qualities write the same tables, the lowest."""
    by_quality = json.loads(JPEGLI_TABLES.read_text())["tables"]
    found: dict[tuple[tuple[int, ...], ...], int] = {}
    for quality in sorted(by_quality, key=int, reverse=True):
        pair = by_quality[quality]
        for n in (1, 2):
            found[tuple(tuple(t) for t in pair[:n])] = int(quality)
    return found


def jpegli_quality(luma: Sequence[int], chroma: Sequence[int] | None = None) -> int | None:
    """The jpegli quality that writes these tables (natural order), or None: not jpegli's."""
    key = (tuple(luma),) if chroma is None else (tuple(luma), tuple(chroma))
    return _jpegli_qualities().get(key)


def tables_floor(tables_qf: int | None, luma: Sequence[int] | None,
                 chroma: Sequence[int] | None = None) -> int | None:
    """The QF a single JPEG read below it is raised to (see the module doc): the jpegli
    quality for tables jpegli writes, up to JPEGLI_FLOOR_MAX; the tables' IJG-equivalent QF
    (`tables_qf`, from `luma` / `chroma`) for others, up to TABLES_FLOOR_MAX; else None.
    (jpegli's tables up to JPEGLI_FLOOR_MAX are of IJG QF 89 at most: a floor is never
    above TABLES_FLOOR_MAX, nor its tables' QF either.)"""
    if tables_qf is None or luma is None:
        return None
    quality = jpegli_quality(luma, chroma)
    if quality is not None:
        return quality if quality <= JPEGLI_FLOOR_MAX else None
    return tables_qf if tables_qf <= TABLES_FLOOR_MAX else None


def single_jpeg_qf(predicted_qf: float, tables_qf: int | None, luma: Sequence[int] | None,
                   chroma: Sequence[int] | None = None) -> float | None:
    """The QF a single JPEG is fed: its `tables_floor` when the network's reading is below
    it but not below TABLES_FLOOR_MIN_SHARE of it; else None (the reading itself)."""
    floor = tables_floor(tables_qf, luma, chroma)
    if floor is None or not TABLES_FLOOR_MIN_SHARE * floor <= predicted_qf < floor:
        return None
    return float(floor)
