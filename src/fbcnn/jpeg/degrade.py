"""Degradation models for training and evaluation: single JPEG, double JPEG with a grid
shift (FBCNN-A), and colour -> grey (BT.601 Y), as in the paper.

Each function takes clean uint8 arrays (HxWx3 colour or HxWx1 grey) and returns
(degraded, clean) pairs of the same size; `qf` labels are in 1..100, and double-compressed
samples carry no QF label (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encoders import (
    MOZJPEG_TABLES,
    EncoderSpec,
    available,
    decode_with_qf,
    encode_with,
    file_subsampling,
)
from .tables import compress

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


@dataclass(frozen=True)
class EncoderMixture:
    """Which encoder writes a training JPEG: weights of libjpeg with IJG tables (`libjpeg`),
    libjpeg with tables outside the IJG family (`tables`: MozJPEG's other families, flat
    tables, random smooth ones), the MozJPEG encoder itself and jpegli; `subsampling` weighs
    4:2:0, 4:2:2 and 4:4:4 wherever the encoder is told one."""

    weights: tuple[tuple[str, float], ...] = (("libjpeg", 1.0),)
    subsampling: tuple[tuple[str, float], ...] = (("4:2:0", 1.0),)

    @classmethod
    def from_config(cls, encoders: dict[str, float] | None,
                    subsampling: dict[str, float] | None) -> EncoderMixture | None:
        """None (every JPEG from libjpeg at 4:2:0, with no draws of its own, so that a config
        without either keeps its random stream) when neither is configured."""
        if not encoders and not subsampling:
            return None
        for name in encoders or {}:
            if name not in ENCODER_FAMILIES:
                raise ValueError(f"data.encoders: unknown encoder {name!r} "
                                 f"(choose from {', '.join(ENCODER_FAMILIES)})")
        for sub in subsampling or {}:
            if sub not in ("4:2:0", "4:2:2", "4:4:4"):
                raise ValueError(f"data.subsampling: unknown subsampling {sub!r} "
                                 f"(choose from 4:2:0, 4:2:2, 4:4:4)")
        for what, weights in (("encoders", encoders), ("subsampling", subsampling)):
            values = list((weights or {}).values())
            if values and (min(values) < 0 or sum(values) <= 0):
                raise ValueError(f"data.{what}: weights must be >= 0 with a positive sum")
        for name in ("mozjpeg", "jpegli"):  # fail now, not hours into a run
            if (encoders or {}).get(name, 0) > 0 and not available(name):
                raise ValueError(f"data.encoders: {name} is not installed (make setup "
                                 f"installs MozJPEG and jpegli)")
        return cls(tuple((encoders or {"libjpeg": 1.0}).items()),
                   tuple((subsampling or {"4:2:0": 1.0}).items()))

    def _pick(self, options: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
        names = [n for n, _ in options]
        p = np.asarray([w for _, w in options], np.float64)
        return names[int(rng.choice(len(names), p=p / p.sum()))]

    def draw(self, rng: np.random.Generator) -> EncoderSpec:
        family = self._pick(self.weights, rng)
        subsampling = self._pick(self.subsampling, rng)
        if family == "libjpeg":
            return EncoderSpec("libjpeg", subsampling)
        if family == "tables":
            return EncoderSpec("libjpeg", subsampling, base_tables=random_tables(rng))
        if family == "mozjpeg":
            # its default (table 3, 4:2:0 below quality 80) half of the time
            if rng.random() < 0.5:
                return EncoderSpec("mozjpeg")
            return EncoderSpec("mozjpeg", "4:4:4" if subsampling == "4:4:4" else "4:2:0",
                               quant_table=int(rng.integers(0, 9)), trellis=rng.random() < 0.8)
        return EncoderSpec("jpegli")


ENCODER_FAMILIES = ("libjpeg", "tables", "mozjpeg", "jpegli")


def random_tables(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Base tables (luma, chroma; scaled by quality as IJG's are) outside the IJG family:
    one of MozJPEG's other families (a third), a flat table (a sixth), else a random smooth
    surface that grows from the DC term to the highest frequencies, anisotropic, with
    chroma the luma shape times 1..2.5 or a surface of its own."""
    u = rng.random()
    if u < 1 / 3:
        return MOZJPEG_TABLES[int(rng.integers(1, 9))]
    if u < 1 / 2:
        flat = tuple([int(rng.integers(6, 60))] * 64)
        return flat, flat

    def surface() -> np.ndarray:
        v, h = np.mgrid[0:8, 0:8].astype(np.float64)
        a = rng.uniform(0.5, 1.5)
        r = np.sqrt(a * v ** 2 + (2 - a) * h ** 2) / np.sqrt(2 * 49)
        lo = rng.uniform(4, 24)
        hi = lo * rng.uniform(1.0, 12.0)
        return lo * (hi / lo) ** (r ** rng.uniform(0.5, 2.0))

    luma = surface()
    chroma = luma * rng.uniform(1.0, 2.5) if rng.random() < 0.5 else surface()

    def as_table(t: np.ndarray) -> tuple[int, ...]:
        return tuple(int(x) for x in np.clip(np.round(t), 1, 255).ravel())

    return as_table(luma), as_table(chroma)


def matched_qf(degraded: np.ndarray, clean: np.ndarray, subsampling: str = "4:2:0") -> int:
    """The IJG quality at which libjpeg damages `clean` as much (mean squared error) as
    `degraded` is damaged: the QF label of a JPEG that another encoder wrote, whose tables
    alone do not say how strong it is (trellis quantisation and jpegli's adaptive
    quantisation zero coefficients that their tables would keep). Bisection on QF 1..100,
    libjpeg's error being non-increasing in QF up to noise."""
    target = np.mean((degraded.astype(np.float32) - clean) ** 2)
    lo, hi = 1, 100
    while lo < hi:
        mid = (lo + hi) // 2
        err = np.mean((compress(clean, mid, subsampling).astype(np.float32) - clean) ** 2)
        if err > target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def encoded(patch: np.ndarray, qf: int, encoder: EncoderSpec | None) -> tuple[np.ndarray, int]:
    """A patch compressed at quality `qf` by `encoder` (None: libjpeg, IJG tables, 4:2:0) and
    its QF label: `qf` itself for IJG tables, else `matched_qf`."""
    if encoder is None:
        return compress(patch, qf), qf
    if encoder.name == "libjpeg" and encoder.base_tables is None and encoder.quant_table is None:
        return compress(patch, qf, encoder.subsampling or "4:2:0"), qf
    data = encode_with(encoder, patch, qf)
    channels = 1 if patch.ndim == 2 or patch.shape[2] == 1 else 3
    degraded = decode_with_qf(data, channels)[0]
    if patch.ndim == 2:
        degraded = degraded[:, :, 0]
    # libjpeg compared at the subsampling the file has (MozJPEG and jpegli choose their own)
    return degraded, matched_qf(degraded, patch, file_subsampling(data) or "4:2:0")


@dataclass
class DegradedPatch:
    degraded: np.ndarray
    clean: np.ndarray
    qf: int | None  # None: double compressed, no QF target
    qf2: int | None = None
    shift: tuple[int, int] | None = None
    qf1: int | None = None  # double compressed: the first compression's QF


def single_jpeg(patch_with_margin: np.ndarray, size: int, qf: int,
                rng: np.random.Generator, encoder: EncoderSpec | None = None) -> DegradedPatch:
    """Compress a (size+8)-square patch at `qf` (with `encoder`, else libjpeg 4:2:0); with
    probability 1/2 take a random `size` crop (grid not aligned with the patch), else the
    top-left one (aligned). The label is the QF `encoded` gives."""
    degraded, qf = encoded(patch_with_margin, qf, encoder)
    if rng.random() < 0.5:
        dy, dx = (int(v) for v in rng.integers(0, patch_with_margin.shape[0] - size + 1, 2))
    else:
        dy = dx = 0
    return DegradedPatch(degraded[dy:dy + size, dx:dx + size],
                         patch_with_margin[dy:dy + size, dx:dx + size], qf)


def double_jpeg(image: np.ndarray, qf1: int, qf2: int, shift: tuple[int, int],
                encoders: tuple[EncoderSpec | None, EncoderSpec | None] = (None, None),
                ) -> DegradedPatch:
    """JPEG(shift(JPEG(x, qf1)), qf2): compress, decode, crop [dy:, dx:], compress again
    (each with its encoder, None: libjpeg 4:2:0). The clean image is cropped alike."""
    dy, dx = shift
    first = encoded(image, qf1, encoders[0])[0][dy:, dx:]
    second = encoded(np.ascontiguousarray(first), qf2, encoders[1])[0]
    return DegradedPatch(second, image[dy:, dx:], None, qf2, (dy, dx), qf1)


def random_double_jpeg(patch_with_margin: np.ndarray, size: int, rng: np.random.Generator,
                       gray: bool = False,
                       distribution: QFDistribution | None = None,
                       stronger_first: float = 0.0,
                       encoders: EncoderMixture | None = None) -> DegradedPatch:
    """The FBCNN-A degradation: both QFs drawn like single ones (with probability
    `stronger_first` put in order, the lower QF first), a random 0..7 shift per axis, each
    JPEG by an encoder drawn from `encoders` (None: libjpeg 4:2:0), then a `size` crop; no
    QF label."""
    qf1, qf2 = draw_qf(rng, gray, distribution), draw_qf(rng, gray, distribution)
    # no extra draw at 0: a config without it keeps its random stream (and resumes the same)
    if stronger_first > 0 and rng.random() < stronger_first:
        qf1, qf2 = min(qf1, qf2), max(qf1, qf2)
    shift = (int(rng.integers(0, 8)), int(rng.integers(0, 8)))
    specs = (None, None) if encoders is None else (encoders.draw(rng), encoders.draw(rng))
    out = double_jpeg(patch_with_margin, qf1, qf2, shift, specs)
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
