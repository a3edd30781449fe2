"""Degradation models: QF labels, grid shifts, grey conversion, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_photo

from fbcnn.jpeg.color import rgb_to_y
from fbcnn.jpeg.degrade import (
    COMMON_QFS,
    QFDistribution,
    augment,
    double_jpeg,
    draw_qf,
    random_double_jpeg,
    single_jpeg,
)
from fbcnn.jpeg.tables import compress, decode, encode, qf_from_tables


def blockiness(image: np.ndarray, offset: int) -> float:
    """Mean absolute jump across columns offset+8k-1 | offset+8k, over that inside blocks."""
    g = image.astype(float).mean(axis=2) if image.ndim == 3 else image.astype(float)
    jumps = np.abs(np.diff(g, axis=1)).mean(axis=0)  # jump between column j and j+1
    cols = np.arange(len(jumps))
    at = (cols + 1 - offset) % 8 == 0
    return float(jumps[at].mean() / jumps[~at].mean())


def test_rgb_to_y_matches_bt601_and_is_rounded() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    assert rgb_to_y(rgb)[..., 0].tolist() == [[16, 235, 81]]


def test_draw_qf_distribution() -> None:
    rng = np.random.default_rng(0)
    qfs = [draw_qf(rng) for _ in range(4000)]
    share_common = np.mean([q in COMMON_QFS for q in qfs])
    assert 0.72 < share_common < 0.82  # 3/4 plus the uniform part landing on them
    assert min(qfs) >= 8 and max(qfs) <= 96
    assert min(draw_qf(rng, gray=True) for _ in range(4000)) >= 5


def test_our_qf_distribution_reaches_100_and_oversamples_high_qfs() -> None:
    rng = np.random.default_rng(0)
    dist = QFDistribution(common=0.5, high=0.2, full_range=(5, 100), high_range=(85, 100))
    qfs = np.array([dist.draw(rng) for _ in range(6000)])
    assert qfs.min() >= 5 and qfs.max() == 100
    # 0.2 from the high range plus the uniform part's 16/96 of 0.3: about 0.25
    assert 0.22 < np.mean(qfs >= 85) < 0.28
    assert 0.47 < np.mean(np.isin(qfs, COMMON_QFS)) < 0.56


def test_single_jpeg_label_and_unaligned_grid() -> None:
    rng = np.random.default_rng(1)
    patch = make_photo(72, 72, seed=3)
    shifts = set()
    for _ in range(20):
        out = single_jpeg(patch, 64, 20, rng)
        assert out.qf == 20 and out.degraded.shape == out.clean.shape == (64, 64, 3)
        # the clean crop is the same window of the original as the degraded one
        found = [(dy, dx) for dy in range(9) for dx in range(9)
                 if np.array_equal(patch[dy:dy + 64, dx:dx + 64], out.clean)]
        assert len(found) == 1
        dy, dx = found[0]
        assert np.array_equal(compress(patch, 20)[dy:dy + 64, dx:dx + 64], out.degraded)
        shifts.add((dy, dx))
    assert (0, 0) in shifts and len(shifts) > 3  # sometimes aligned, usually not


def test_double_jpeg_shift_is_visible_in_the_output() -> None:
    image = make_photo(128, 128, seed=5)
    out = double_jpeg(image, 10, 90, (0, 3))
    assert out.qf is None and out.qf2 == 90 and out.shift == (0, 3)
    assert out.degraded.shape == out.clean.shape == (128, 125, 3)
    assert np.array_equal(out.clean, image[:, 3:])
    # blocks of the strong first JPEG now sit at columns 8k - 3: find them there
    scores = {off: blockiness(out.degraded, off) for off in range(8)}
    assert max(scores, key=scores.get) == 5


def test_random_double_has_no_qf_label() -> None:
    rng = np.random.default_rng(2)
    out = random_double_jpeg(make_photo(72, 72, channels=1), 64, rng, gray=True)
    assert out.qf is None and out.degraded.shape == (64, 64, 1)
    assert out.shift is not None and all(0 <= s < 8 for s in out.shift)


@pytest.mark.parametrize("stronger_first", [0.0, 1.0])
def test_random_double_stronger_first_orders_the_qfs(stronger_first: float) -> None:
    rng = np.random.default_rng(3)
    photo = make_photo(24, 24, channels=1)
    pairs = [random_double_jpeg(photo, 16, rng, gray=True, stronger_first=stronger_first)
             for _ in range(60)]
    first_weaker = sum(p.qf1 is not None and p.qf2 is not None and p.qf1 > p.qf2
                       for p in pairs)
    # drawn independently, about half the pairs have the weaker compression first
    assert (first_weaker == 0) == (stronger_first == 1.0)


def test_standard_tables_are_what_pillow_writes_at_every_quality() -> None:
    """The tables computed from Annex K and libjpeg's scaling are the ones libjpeg writes
    (a wrong scale, rounding, clamp or order would differ at some quality)."""
    from io import BytesIO

    from PIL import Image

    from fbcnn.jpeg.tables import _standard_tables

    tables = _standard_tables()
    for qf in range(1, 101):
        with Image.open(BytesIO(encode(np.zeros((16, 16, 3), np.uint8), qf))) as im:
            written = im.quantization
        assert tables[qf - 1, 0].tolist() == list(written[0]), qf
        assert tables[qf - 1, 1].tolist() == list(written[1]), qf


@pytest.mark.parametrize("qf", [5, 10, 37, 50, 75, 95, 100])
def test_header_qf_inverts_ijg_scaling(qf: int) -> None:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(encode(make_photo(16, 16), qf))) as im:
        assert qf_from_tables(im.quantization) == qf
    assert decode(encode(make_photo(16, 16), qf)).shape == (16, 16, 3)


def test_augment_covers_eight_distinct_variants() -> None:
    image = make_photo(8, 8)
    variants = {augment((image,), m)[0].tobytes() for m in range(8)}
    assert len(variants) == 8
