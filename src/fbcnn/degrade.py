"""Degradation models for training and evaluation: single JPEG, double JPEG with a grid
shift (FBCNN-A), and colour -> grey (BT.601 Y), as in the paper.

Each function takes clean uint8 arrays (HxWx3 colour or HxWx1 grey) and returns
(degraded, clean) pairs of the same size; `qf` labels are in 1..100, and double-compressed
samples carry no QF label (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .jpeg import compress

# The paper draws QF from these with probability 3/4, else uniformly from a range. Our recipe
# (QFDistribution) keeps the common QFs but reaches QF 100 and oversamples 85..100, so that
# near-lossless JPEGs are seen often enough to be left alone.
COMMON_QFS = (10, 20, 30, 40, 50, 60)
COLOR_QF_RANGE = (8, 96)
GRAY_QF_RANGE = (5, 95)


@dataclass(frozen=True)
class QFDistribution:
    """Where training QFs come from: a common QF with probability `common`, a QF in
    `high_range` with probability `high`, else one uniformly in `full_range`."""

    common: float = 0.5
    high: float = 0.2
    full_range: tuple[int, int] = (5, 100)
    high_range: tuple[int, int] = (85, 100)

    def draw(self, rng: np.random.Generator) -> int:
        u = rng.random()
        if u < self.common:
            return int(rng.choice(COMMON_QFS))
        lo, hi = self.high_range if u < self.common + self.high else self.full_range
        return int(rng.integers(lo, hi + 1))


PAPER_COLOR = QFDistribution(common=0.75, high=0.0, full_range=COLOR_QF_RANGE)
PAPER_GRAY = QFDistribution(common=0.75, high=0.0, full_range=GRAY_QF_RANGE)


def draw_qf(rng: np.random.Generator, gray: bool = False,
            distribution: QFDistribution | None = None) -> int:
    """A training QF: from `distribution`, or as in the paper (a common QF with probability
    3/4, else uniform in a range) when none is given."""
    return (distribution or (PAPER_GRAY if gray else PAPER_COLOR)).draw(rng)


@dataclass
class DegradedPatch:
    degraded: np.ndarray
    clean: np.ndarray
    qf: int | None  # None: double compressed, no QF target
    qf2: int | None = None
    shift: tuple[int, int] | None = None
    qf1: int | None = None  # double compressed: the first compression's QF


def single_jpeg(patch_with_margin: np.ndarray, size: int, qf: int,
                rng: np.random.Generator) -> DegradedPatch:
    """Compress a (size+8)-square patch at `qf`; with probability 1/2 take a random
    `size` crop (grid not aligned with the patch), else the top-left one (aligned)."""
    degraded = compress(patch_with_margin, qf)
    if rng.random() < 0.5:
        dy, dx = (int(v) for v in rng.integers(0, patch_with_margin.shape[0] - size + 1, 2))
    else:
        dy = dx = 0
    return DegradedPatch(degraded[dy:dy + size, dx:dx + size],
                         patch_with_margin[dy:dy + size, dx:dx + size], qf)


def double_jpeg(image: np.ndarray, qf1: int, qf2: int, shift: tuple[int, int]) -> DegradedPatch:
    """JPEG(shift(JPEG(x, qf1)), qf2): compress, decode, crop [dy:, dx:], compress again.
    The clean image is cropped alike."""
    dy, dx = shift
    first = compress(image, qf1)[dy:, dx:]
    second = compress(np.ascontiguousarray(first), qf2)
    return DegradedPatch(second, image[dy:, dx:], None, qf2, (dy, dx), qf1)


def random_double_jpeg(patch_with_margin: np.ndarray, size: int, rng: np.random.Generator,
                       gray: bool = False,
                       distribution: QFDistribution | None = None,
                       stronger_first: float = 0.0) -> DegradedPatch:
    """The FBCNN-A degradation: both QFs drawn like single ones (with probability
    `stronger_first` put in order, the lower QF first), a random 0..7 shift per axis, then a
    `size` crop; no QF label."""
    qf1, qf2 = draw_qf(rng, gray, distribution), draw_qf(rng, gray, distribution)
    # no extra draw at 0: the older configs' random streams (and their resumes) stay as they were
    if stronger_first > 0 and rng.random() < stronger_first:
        qf1, qf2 = min(qf1, qf2), max(qf1, qf2)
    shift = (int(rng.integers(0, 8)), int(rng.integers(0, 8)))
    out = double_jpeg(patch_with_margin, qf1, qf2, shift)
    return DegradedPatch(out.degraded[:size, :size], out.clean[:size, :size], None, qf2, shift,
                         qf1)


def augment(images: tuple[np.ndarray, ...], mode: int) -> tuple[np.ndarray, ...]:
    """One of the 8 flip/rotate variants (mode 0..7), applied alike to every array."""
    out = []
    for im in images:
        im = np.rot90(im, k=mode % 4)
        if mode >= 4:
            im = im[:, ::-1]
        out.append(np.ascontiguousarray(im))
    return tuple(out)
