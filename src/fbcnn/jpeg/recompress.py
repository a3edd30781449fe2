"""Blind double-JPEG detection by recompression analysis (the paper's FBCNN-D).

A decoded JPEG is nearly idempotent under recompression with its own tables on its own 8x8
grid: the error ``MSE(x, JPEG_q(x))`` over q = 1..100 has a sharp dip at the image's QF. A
non-aligned double JPEG ``JPEG(shift(JPEG(x, QF1)), QF2)`` carries two grids: the last one at
(0, 0) and the older one at ``((8 - dy) % 8, (8 - dx) % 8)`` for a crop of (dy, dx). When
QF1 < QF2 the older, stronger compression dominates the artifacts, and cropping the image so
that its grid is aligned gives a dip at q = QF1 that no other crop offset shows.

Method (luma only, pure numpy + Pillow):

* **Luma.** Colour input is turned into the JPEG encoder's own full-range luma
  (Y = 0.299 R + 0.587 G + 0.114 B). The studio-range BT.601 Y (16..235) rescales the DCT
  coefficients by 219/255 and wipes out the quantisation lattice the method looks for.
* **Sample.** Images above a pixel budget are analysed on a seeded random set of 64x64 tiles
  whose windows start at multiples of 8, so both grids keep their positions; every tile is
  cropped at the same offset and the crops are stacked, on the 8x8 grid, into one image per
  JPEG call (grey JPEG blocks are independent, so this equals compressing each crop).
  The recompressions at different q run on a thread per core (Pillow releases the GIL).
  The offset scan's cost grows with the number of q searched, so when the last QF is high
  (more than 6 coarse q's, a last QF over about 33) its tiles are thinned, evenly, to keep
  that cost (at least 65,536 pixels): a 3-MP JPEG at QF 90 takes 0.7 s instead of 2.6 s
  (scripts/probes/double_jpeg_rates.py compares the detection rates with and without it).
* **Offset scan.** For all 64 offsets (oy, ox) and q = 5, 10, ... up to ``last_qf - 3``,
  ``L = log(MSE + eps)``. Crops that share rows or columns with either grid are partly
  aligned, so the score is the two-way interaction
  ``R(o, q) = L(o, q) - median_row(oy) - median_col(ox) + median_ref`` (medians of L over
  the 8 offsets of the row, of the column, and over 7 reference offsets that share no row or
  column with each other or with (0, 0)). Offset (0, 0) is the last grid; a candidate must
  beat it (R(o, q) < R((0, 0), q), + 1.0 for offsets more than a pixel away), because crops
  next to a blocky aligned grid inherit part of its dip. The two deepest local minima are
  refined over q* - 3 .. q* + 3 (the dip at QF1 is sharp, and its harmonic near 2 x QF1
  is broad), the best again on the full sample: ``strength = -min R``, QF1 = its argmin.
* **Aligned curve.** ``L(0, 0, q)`` less the reference trend, at every q up to
  ``last_qf - 3``: an earlier aligned compression at QF1 leaves a sharp local dip there
  (the coefficients, multiples of Q2, lie near multiples of Q1). ``contrast`` = the lower
  of the two sides' minima at q +- 2..3, minus the value at q; QF1 is the lowest q whose
  contrast is at least half the largest (later dips are harmonics, e.g. q = 20 for QF1 =
  10).
* **Decision.** Aligned when ``contrast >= ALIGNED_THRESHOLD`` (0.25) and contrast >= 2 x
  strength (a strong aligned dip leaks into the crops that share the last grid's rows or
  columns; a shifted grid leaves at most a weak one on the aligned curve); else non-aligned
  when ``strength >= NONALIGNED_THRESHOLD`` (0.1; ``NEAR_NONALIGNED_THRESHOLD`` = 0.2 for
  an offset within a pixel of the last grid); else single. Calibrated on synthetic
  textures: single JPEGs at QF 5..95 reached strength 0.06 (0.14 next to the last grid,
  on images with block-periodic edges) and contrast 0.13; see the tests.
* **Last QF.** When not given (from the file's tables), it is estimated on the aligned curve:
  the lowest q whose recompression is as idempotent as the best one (see `estimate_qf`).

``offset`` in the verdict is where the older grid's blocks start: (dy, dx) of a crop gives
``((8 - dy) % 8, (8 - dx) % 8)``. Only earlier compressions stronger than the last one
(QF1 <= last_qf - 3) are searched: weaker ones leave little trace and do not dominate the
artifacts. Harder cases: QF1 within ~15 of the last QF (the second compression erases most
of the first), and content with edges on a regular 8-pixel lattice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..device import ordered_map
from .color import rgb_to_gray_plain
from .qf import double_jpeg_qf
from .tables import encode

# decisions, on the scores described above
NONALIGNED_THRESHOLD = 0.1
# a candidate grid within one pixel of the last one (dy, dx in {7, 0, 1}) shares most of its
# blocks and needs more: singles with block-periodic content reached 0.14 there
NEAR_NONALIGNED_THRESHOLD = 0.2
ALIGNED_THRESHOLD = 0.25
_ALIGNED_OVER_SHIFTED = 2.0  # aligned wins when its contrast is >= 2x the shifted strength
# confidences are logistic in (score - threshold) / scale
_NONALIGNED_SCALE = 0.03
_ALIGNED_SCALE = 0.05

_EPS = 0.02  # MSE floor inside the logs: flat crops carry no evidence
_TILE = 64  # tile side of the sample of large images (a multiple of 8)
# sample size for the 64-offset scan and the aligned curve: 131,072 pixels find what
# 262,144 find (every case of scripts/probes/double_jpeg_rates.py --limit 12 on Kodak,
# against --scan-pixels 262144) in 0.55-0.65x the time, where the analysis would otherwise
# be 18% of a 3-MP restore with the network in bf16
_SCAN_PIXELS = 131_072
# The scan costs 64 offsets x (last QF / 5) recompressions of its sample: above _SCAN_QS
# coarse q's (a last QF over about 18) its sample shrinks to keep that cost, down to
# _MIN_SCAN_PIXELS; candidates are still measured again on the full sample. Thinning from 2
# coarse q's on keeps the analysis a small part of a restore (at 6 it was 10-11% of a 3-MP
# restore at QF 30) and finds what the whole scan sample finds (every case of
# scripts/probes/double_jpeg_rates.py --limit 12 on Kodak and --limit 24 on bsds500_test:
# 0 / 12 and 0 / 24 singles called double, every double found with its offset and QF1,
# --scan-pixels 65536 against 131072)
_SCAN_QS = 2
_MIN_SCAN_PIXELS = 65_536
_MOSAIC_PIXELS = 1 << 24  # most pixels per JPEG call
_MAX_JPEG_SIDE = 65528  # JPEG's 65535 limit, rounded down to whole blocks
_FAR_MARGIN = 1.0  # see _nonaligned
_FULL_CHECK = 0.5  # see _nonaligned: share of the threshold a scan candidate must reach
_MARGIN = 3  # earlier compressions are searched at q <= last_qf - _MARGIN
_COARSE_STEP = 5
_REFINE = 3
_CANDIDATES = 2  # coarse minima refined
_ALL_OFFSETS = tuple((oy, ox) for oy in range(8) for ox in range(8))
# seven offsets, one per row 1..7 and column 1..7: none shares a row or column with (0, 0)
# or with another, so an older grid and its half-aligned neighbours touch at most two of them
_REF_OFFSETS = ((1, 3), (2, 6), (3, 1), (4, 4), (5, 7), (6, 2), (7, 5))


@dataclass
class DoubleJpegVerdict:
    """What `analyse` found.

    ``offset`` is the position (dy, dx) of the older 8x8 grid in this image: its blocks
    start at rows dy + 8k and columns dx + 8k. It is (0, 0) for an aligned double JPEG and
    None for a single one. ``confidence`` is in 0..1 and is the confidence in the verdict
    given (single or double), logistic in the distance of the score from its threshold.
    """

    detected: bool
    kind: str  # "single", "aligned", "non-aligned"
    qf1: int | None
    offset: tuple[int, int] | None
    confidence: float
    last_qf: int | None

    def to_json(self) -> dict:
        return {
            "detected": bool(self.detected),
            "kind": self.kind,
            "qf1": None if self.qf1 is None else int(self.qf1),
            "offset": None if self.offset is None else [int(v) for v in self.offset],
            "confidence": float(self.confidence),
            "last_qf": None if self.last_qf is None else int(self.last_qf),
        }

    def qf_to_feed(self, predicted_qf: float) -> float | None:
        """The QF a restoration feeds the network for this verdict (`fbcnn.jpeg.qf.
        double_jpeg_qf`), None for the network's own reading."""
        return double_jpeg_qf(self.kind, self.qf1, predicted_qf) if self.detected else None


# --- sampling and batched recompression ----------------------------------------------------


def _checked(pixels: np.ndarray) -> np.ndarray:
    """HxW or HxWx3 uint8 pixels from HxW, HxWx1 or HxWx3 ones (the luma of a colour image is
    taken where it is used: `_as_luma` on the windows a sample keeps)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3):
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    raise ValueError(f"expected HxW, HxWx1 or HxWx3 pixels, got shape {pixels.shape}")


def _as_luma(pixels: np.ndarray) -> np.ndarray:
    """HxW uint8 luma of HxW, HxWx1 or HxWx3 uint8 pixels (full-range JPEG Y for colour)."""
    pixels = _checked(pixels)
    return pixels if pixels.ndim == 2 else rgb_to_gray_plain(pixels)[:, :, 0]


class _Work:
    """The progress of an analysis: pixels recompressed so far against an estimate of the
    total, reported as a fraction that only grows (1.0 once, at the end)."""

    def __init__(self, report: Callable[[float], None], total: int) -> None:
        self.report, self.total, self.done, self.shown = report, max(1, total), 0, -1.0

    def add(self, pixels: int) -> None:
        self.done += pixels
        self._show(min(0.99, self.done / self.total))

    def finish(self) -> None:
        self._show(1.0)

    def _show(self, fraction: float) -> None:
        fraction = round(fraction, 3)
        if fraction > self.shown:
            self.shown = fraction
            self.report(fraction)


class _Sample:
    """Windows of the luma that start at multiples of 8 (so grid positions are kept), each
    (th + 7) x (tw + 7): the crop at offset (oy, ox) is window[oy:oy + th, ox:ox + tw].
    Errors of (offset, q) pairs are cached; `work`, when set, counts the pixels
    recompressed."""

    def __init__(self, windows: np.ndarray, th: int, tw: int):
        self.windows, self.th, self.tw = windows, th, tw
        self._cache: dict[tuple[int, int, int], float] = {}
        self.work: _Work | None = None

    @property
    def pixels(self) -> int:
        return len(self.windows) * self.th * self.tw

    def subset(self, max_pixels: int) -> _Sample:
        """At most `max_pixels` of a tiled sample: windows evenly spread over it (a sample of
        one crop is returned whole)."""
        n = max(1, max_pixels // (self.th * self.tw))
        if len(self.windows) <= 1 or n >= len(self.windows):
            return self
        # the distinct indices, in order (np.unique would import numpy.ma first: `_median`)
        keep = list(dict.fromkeys(np.linspace(0, len(self.windows) - 1, n).round()
                                  .astype(int).tolist()))
        part = _Sample(self.windows[keep], self.th, self.tw)
        part.work = self.work
        return part

    @classmethod
    def of(cls, pixels: np.ndarray, max_pixels: int, rng: np.random.Generator
           ) -> _Sample | None:
        """A sample of `pixels` (HxW luma, or HxWx3 colour whose windows are turned into luma
        once picked: a 12-MP photo's sample is a tenth of it)."""
        h, w = pixels.shape[:2]
        th, tw = (h - 7) // 8 * 8, (w - 7) // 8 * 8
        if th < 8 or tw < 8:
            return None
        if th * tw <= max_pixels or min(th, tw) < _TILE + 8:
            if th * tw > max_pixels:  # a long thin strip: a centred piece of it
                if th > tw:
                    th = max(8, max_pixels // tw // 8 * 8)
                else:
                    tw = max(8, max_pixels // th // 8 * 8)
            y0 = ((h - 7 - th) // 2) // 8 * 8
            x0 = ((w - 7 - tw) // 2) // 8 * 8
            return cls(_as_luma(pixels[y0:y0 + th + 7, x0:x0 + tw + 7])[None], th, tw)
        stride = _TILE + 8
        ys = np.arange(0, h - (_TILE + 7) + 1, stride)
        xs = np.arange(0, w - (_TILE + 7) + 1, stride)
        cells = [(int(y), int(x)) for y in ys for x in xs]
        n = max(1, min(len(cells), max_pixels // (_TILE * _TILE)))
        pick = np.sort(rng.choice(len(cells), size=n, replace=False))
        windows = np.stack([_as_luma(pixels[cells[i][0]:cells[i][0] + _TILE + 7,
                                            cells[i][1]:cells[i][1] + _TILE + 7])
                            for i in pick])
        return cls(windows, _TILE, _TILE)

    def errors(self, offsets: Sequence[tuple[int, int]], qfs: Sequence[int]) -> np.ndarray:
        """(len(offsets), len(qfs)) recompression MSE of the crops at each offset."""
        offsets = [(int(a), int(b)) for a, b in offsets]
        qfs = [int(q) for q in qfs]
        jobs = []  # (q, offsets not measured yet at q)
        for q in qfs:
            todo = [o for o in dict.fromkeys(offsets) if (o[0], o[1], q) not in self._cache]
            if todo:
                jobs.append((q, todo))
        for (q, todo), errors in zip(jobs, self._computed(jobs), strict=True):
            for o, e in zip(todo, errors, strict=True):
                self._cache[(o[0], o[1], q)] = e
        return np.array([[self._cache[(a, b, q)] for q in qfs] for a, b in offsets],
                        dtype=np.float64).reshape(len(offsets), len(qfs))

    def _computed(self, jobs: list[tuple[int, list[tuple[int, int]]]]) -> Iterator[list[float]]:
        """The errors of each (q, offsets) job, in order. Several jobs run on a thread per
        core (Pillow releases the GIL while it encodes and decodes); the progress is counted
        here, in the caller's thread, which may stop the analysis (the jobs not started are
        then dropped)."""
        if len(jobs) <= 1:
            yield from (self._compute(todo, q) for q, todo in jobs)
            return
        results = ordered_map(lambda job: self._compute(job[1], job[0], False), jobs,
                              len(jobs))
        for (_, todo), errors in zip(jobs, results, strict=True):
            yield errors
            if self.work is not None:
                self.work.add(len(todo) * self.pixels)

    def _compute(self, offsets: list[tuple[int, int]], q: int,
                 count: bool = True) -> list[float]:
        th, tw, t = self.th, self.tw, len(self.windows)
        crops = np.stack([self.windows[:, oy:oy + th, ox:ox + tw] for oy, ox in offsets])
        # crops stacked vertically: whole 8x8 blocks, so one JPEG call = one per crop
        rows = crops.reshape(-1, tw)
        per_call = max(th, min(_MAX_JPEG_SIDE, _MOSAIC_PIXELS // tw) // th * th)
        row_sums = np.empty(len(rows), np.int64)
        for start in range(0, len(rows), per_call):
            part = rows[start:start + per_call]
            diff = np.subtract(_roundtrip(part, q), part, dtype=np.int32)
            row_sums[start:start + len(part)] = np.einsum("ij,ij->i", diff, diff)
            if count and self.work is not None:
                self.work.add(part.size)
        return list(row_sums.reshape(len(offsets), -1).sum(axis=1) / (t * th * tw))


def _roundtrip(gray: np.ndarray, q: int) -> np.ndarray:
    """Grey JPEG recompression at `q` of an HxW uint8 array (fbcnn.jpeg.tables's encoder)."""
    with Image.open(io.BytesIO(encode(gray, q))) as im:
        return np.asarray(im)


# --- public helpers -------------------------------------------------------------------------


def recompression_errors(luma: np.ndarray, qfs: Sequence[int],
                         offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """MSE between the crop of `luma` starting at `offset` (trimmed to whole 8x8 blocks) and
    its grey JPEG recompression at each q of `qfs`; float64 array of len(qfs)."""
    luma = _as_luma(luma)
    oy, ox = (int(v) for v in offset)
    crop = luma[oy:, ox:]
    h, w = crop.shape[0] // 8 * 8, crop.shape[1] // 8 * 8
    if h == 0 or w == 0:
        raise ValueError(f"image too small for offset {offset}: {luma.shape}")
    sample = _Sample(crop[None, :h, :w], h, w)
    return sample.errors([(0, 0)], qfs)[0]


def estimate_qf(luma: np.ndarray) -> int:
    """QF of a single JPEG by recompression.

    The aligned recompression error relative to misaligned crops, ratio(q), is near zero at
    the QF and at its harmonics above it (q whose steps divide the QF's); the estimate is the
    lowest q with ratio(q) <= 1.5 min + 0.003. For a non-aligned double JPEG this is the last
    QF; for an aligned one whose last QF is much higher (about 85+) the earlier, dominant QF
    can come out instead."""
    pixels = _checked(luma)
    sample = _Sample.of(pixels, _SCAN_PIXELS, np.random.default_rng(0))
    if sample is None:
        raise ValueError(f"image too small to estimate a QF: {pixels.shape[:2]}")
    return _estimate_qf(sample)


def _median(rows: np.ndarray) -> np.ndarray:
    """`np.median(rows, axis=0)`, the same values (the middle row's, or the mean of the two
    middle ones'): np.median, like np.unique, imports numpy.ma on first use (0.01 s)."""
    ordered = np.sort(rows, axis=0)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _log(errors: np.ndarray) -> np.ndarray:
    return np.log(errors + _EPS)


def _reference_trend(sample: _Sample, coarse: Sequence[int], qfs: Sequence[int]) -> np.ndarray:
    """log MSE of misaligned crops (median over the reference offsets) at `coarse` q's,
    interpolated to `qfs`."""
    ref = _median(_log(sample.errors(_REF_OFFSETS, coarse)))
    return np.interp(np.asarray(qfs, np.float64), np.asarray(coarse, np.float64), ref)


def _estimate_qf(sample: _Sample) -> int:
    qfs = list(range(1, 101))
    aligned = sample.errors([(0, 0)], qfs)[0]
    coarse = list(range(_COARSE_STEP, 101, _COARSE_STEP))
    ratio = np.exp(_log(aligned) - _reference_trend(sample, coarse, qfs))
    ok = ratio <= 1.5 * ratio.min() + 0.003
    return int(np.flatnonzero(ok)[0]) + 1


# --- analysis -------------------------------------------------------------------------------


def _interaction(logs: dict[tuple[int, int], np.ndarray], offset: tuple[int, int]) -> np.ndarray:
    """R(offset, q): log error less its row's and column's medians, plus the reference
    median (per q)."""
    oy, ox = offset
    row = _median(np.stack([logs[(oy, b)] for b in range(8)]))
    col = _median(np.stack([logs[(a, ox)] for a in range(8)]))
    ref = _median(np.stack([logs[o] for o in _REF_OFFSETS]))
    return logs[offset] - row - col + ref


def _logs(sample: _Sample, offsets: Sequence[tuple[int, int]],
          qfs: Sequence[int]) -> dict[tuple[int, int], np.ndarray]:
    offsets = list(dict.fromkeys(offsets))
    values = _log(sample.errors(offsets, qfs))
    return {o: values[i] for i, o in enumerate(offsets)}


def _near_last(offset: tuple[int, int]) -> bool:
    """Offsets one pixel or less from the last grid (on the 8x8 torus)."""
    return offset[0] in (0, 1, 7) and offset[1] in (0, 1, 7)


def _refine(sample: _Sample, offset: tuple[int, int], q0: int,
            top: int) -> tuple[float, int]:
    """(min R, its q) of `offset` over q0 - _REFINE .. q0 + _REFINE (q <= top)."""
    fine = list(range(max(1, q0 - _REFINE), min(top, q0 + _REFINE) + 1))
    oy, ox = offset
    needed = [(oy, b) for b in range(8)] + [(a, ox) for a in range(8)] + list(_REF_OFFSETS)
    if _near_last(offset):  # far candidates were checked against (0, 0) in the scan
        needed += [(0, b) for b in range(8)] + [(a, 0) for a in range(8)]
    logs = _logs(sample, needed, fine)
    r = _interaction(logs, offset)
    if _near_last(offset):
        r = np.where(r < _interaction(logs, (0, 0)), r, math.inf)
    j = int(np.argmin(r))
    return float(r[j]), fine[j]


def _nonaligned(scan: _Sample, full: _Sample, top: int) -> tuple[float, tuple[int, int], int]:
    """(strength, offset, qf1) of the best non-aligned candidate, q searched up to `top`.

    A candidate (o, q) only counts when its R is below R((0, 0), q) + margin: crops one
    pixel off a blocky aligned grid, or half a block off it, inherit some of that grid's dip,
    and must not be taken for a shifted grid (margin 0 next to (0, 0), else _FAR_MARGIN).
    The _CANDIDATES deepest local minima of the scan are refined on it (the dip at QF1 is
    sharp, and its harmonic at about 2 x QF1 or a neighbouring offset can look deeper on the
    coarse q grid); the best is measured again on the full sample.
    """
    coarse = list(range(_COARSE_STEP, top + 1, _COARSE_STEP))
    logs = _logs(scan, _ALL_OFFSETS, coarse)
    aligned = _interaction(logs, (0, 0))
    minima: list[tuple[float, tuple[int, int], int]] = []
    for o in _ALL_OFFSETS[1:]:
        r = _interaction(logs, o)
        r = np.where(r < aligned + (0.0 if _near_last(o) else _FAR_MARGIN), r, math.inf)
        padded = np.concatenate([[math.inf], r, [math.inf]])
        for j in np.flatnonzero(np.isfinite(r)):
            if r[j] <= padded[j] and r[j] <= padded[j + 2]:
                minima.append((float(r[j]), o, coarse[j]))
    if not minima:
        return 0.0, (0, 0), 0
    minima.sort()
    refined = [(*_refine(scan, o, q0, top), o) for _, o, q0 in minima[:_CANDIDATES]]
    value, _, offset = min(refined)
    if not np.isfinite(value):
        return 0.0, offset, 0
    q0 = min(refined)[1]
    # the full sample only sharpens a candidate the scan already found plausible: far below
    # the threshold on the scan (a single JPEG), it is not measured again (most of the time)
    if full is not scan and -value >= _FULL_CHECK * NONALIGNED_THRESHOLD:
        value, q0 = _refine(full, offset, q0, top)
        if not np.isfinite(value):
            return 0.0, offset, q0
    return max(0.0, -value), offset, q0


def _aligned(scan: _Sample, top: int) -> tuple[float, int]:
    """(contrast, qf1) of the sharpest dip of the aligned curve at q <= top - 3."""
    qfs = list(range(1, top + 1))
    coarse = list(range(_COARSE_STEP, top + 1, _COARSE_STEP))
    lr = _log(scan.errors([(0, 0)], qfs)[0]) - _reference_trend(scan, coarse, qfs)
    contrast = np.full(len(qfs), -math.inf)
    for i in range(3, len(qfs) - 3):
        sides = min(min(lr[i - 2], lr[i - 3]), min(lr[i + 2], lr[i + 3]))
        contrast[i] = sides - lr[i]
    peak = float(contrast.max())
    if not np.isfinite(peak):
        return 0.0, 0
    first = int(np.flatnonzero(contrast >= max(ALIGNED_THRESHOLD, 0.5 * peak))[0]) \
        if peak >= ALIGNED_THRESHOLD else int(np.argmax(contrast))
    return peak, qfs[first]


def _confidence(score: float, threshold: float, scale: float, detected: bool) -> float:
    p = 1.0 / (1.0 + math.exp(min(50.0, -(score - threshold) / scale)))
    return float(p if detected else 1.0 - p)


def _scan_budget(top: int) -> int:
    """Pixels of the scan sample when earlier compressions are searched up to q = `top`."""
    coarse = top // _COARSE_STEP
    if coarse <= _SCAN_QS:
        return _SCAN_PIXELS
    return max(_MIN_SCAN_PIXELS, _SCAN_PIXELS * _SCAN_QS // coarse)


def _expected_work(scan: _Sample, full: _Sample, last_qf: int | None) -> int:
    """About how many pixels an analysis recompresses (the scale of its progress): the QF
    estimate when needed, the 64-offset scan, the refinements (31 offsets x 7 q) and the
    aligned curve."""
    top = (last_qf or 100) - _MARGIN
    coarse = max(0, top // _COARSE_STEP)
    crops = 64 * coarse + _CANDIDATES * 31 * (2 * _REFINE + 1) + max(0, top)
    pixels = crops * min(scan.pixels, _scan_budget(top))  # the scans, on their budget
    if last_qf is None:  # the QF estimate, on the whole scan sample
        pixels += (100 + len(_REF_OFFSETS) * (100 // _COARSE_STEP)) * scan.pixels
    if full is not scan:  # measured again on the full sample only when the scan found a trace
        pixels += 31 * (2 * _REFINE + 1) * full.pixels // 2
    return pixels


def _samples(pixels: np.ndarray, max_pixels: int, seed: int
             ) -> tuple[_Sample, _Sample] | None:
    """The sample of the scans and the (bigger) one of the final measure."""
    rng = np.random.default_rng(seed)
    scan = _Sample.of(pixels, min(max_pixels, _SCAN_PIXELS), rng)
    if scan is None:
        return None
    h, w = pixels.shape[:2]
    if max_pixels <= _SCAN_PIXELS or ((h - 7) // 8 * 8) * ((w - 7) // 8 * 8) <= _SCAN_PIXELS:
        return scan, scan  # the same budget, or the whole image already
    return scan, _Sample.of(pixels, max_pixels, rng) or scan


def _analyse(pixels: np.ndarray, last_qf: int | None, max_pixels: int,
             seed: int, progress: Callable[[float], None] | None = None) -> DoubleJpegVerdict:
    samples = _samples(_checked(pixels), max_pixels, seed)
    if samples is None:
        verdict = DoubleJpegVerdict(False, "single", None, None, 0.0, last_qf)
        work = None
    else:
        scan, full = samples
        work = _Work(progress, _expected_work(scan, full, last_qf)) if progress else None
        scan.work = full.work = work
        verdict = _decide(scan, full, last_qf)
    if work is not None:
        work.finish()
    elif progress is not None:
        progress(1.0)
    return verdict


def _decide(scan: _Sample, full: _Sample, last_qf: int | None) -> DoubleJpegVerdict:
    """The verdict on the samples (see the module docstring: Decision)."""
    if last_qf is None:
        last_qf = _estimate_qf(scan)
    last_qf = int(last_qf)
    top = last_qf - _MARGIN
    if top < _COARSE_STEP:  # no room for a stronger earlier compression: not examined
        return DoubleJpegVerdict(False, "single", None, None, 0.5, last_qf)

    scan = scan.subset(_scan_budget(top))
    strength, offset, qf1 = _nonaligned(scan, full, top)
    contrast, aligned_qf1 = _aligned(scan, top)
    if contrast >= ALIGNED_THRESHOLD and contrast >= _ALIGNED_OVER_SHIFTED * strength:
        # a strong aligned dip also leaks into crops that share the last grid's rows or
        # columns; a shifted grid leaves at most a weak dip on the aligned curve
        conf = _confidence(contrast, ALIGNED_THRESHOLD, _ALIGNED_SCALE, True)
        return DoubleJpegVerdict(True, "aligned", aligned_qf1, (0, 0), conf, last_qf)
    threshold = NEAR_NONALIGNED_THRESHOLD if _near_last(offset) else NONALIGNED_THRESHOLD
    if strength >= threshold:
        conf = _confidence(strength, threshold, _NONALIGNED_SCALE, True)
        return DoubleJpegVerdict(True, "non-aligned", qf1, offset, conf, last_qf)
    conf = min(_confidence(strength, threshold, _NONALIGNED_SCALE, False),
               _confidence(contrast, ALIGNED_THRESHOLD, _ALIGNED_SCALE, False))
    return DoubleJpegVerdict(False, "single", None, None, conf, last_qf)


def analyse(pixels: np.ndarray, last_qf: int | None = None, *, max_pixels: int = 1_000_000,
            seed: int = 0, progress: Callable[[float], None] | None = None
            ) -> DoubleJpegVerdict:
    """Blind double-JPEG detection on decoded JPEG pixels (uint8 HxW, HxWx1 or HxWx3).

    `last_qf` is the QF of the last compression (from the file's tables, see
    `fbcnn.jpeg.tables.header_qf`); None estimates it by recompression. Images above `max_pixels`
    (crops trimmed to whole blocks) are analysed on a seeded random sample of 64x64 tiles
    (`seed`); the 64-offset scan and the aligned curve use at most 131,072 of those pixels,
    the refinement of the found offset all of them. `progress(fraction)` is called as the
    work goes on, with growing fractions in 0..1, the last one 1.0.
    """
    return _analyse(pixels, last_qf, max_pixels, seed, progress)
