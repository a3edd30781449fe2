"""Blind double-JPEG detection by recompression (fbcnn.jpeg.recompress) on synthetic textures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fbcnn.jpeg.degrade import double_jpeg
from fbcnn.jpeg.recompress import (
    DoubleJpegVerdict,
    analyse,
    estimate_qf,
    recompression_errors,
)
from fbcnn.jpeg.tables import compress


def texture(seed: int, h: int = 192, w: int = 192, noise: float = 2.0) -> np.ndarray:
    """A natural-ish colour image: multi-scale smooth noise, gradients, disks and rectangles
    with sharp edges, fine grain."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    for scale in (4, 8, 16, 32, 64):
        for c in range(3):
            small = rng.normal(size=(max(2, h // scale), max(2, w // scale))).astype(np.float32)
            up = Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BICUBIC)
            img[..., c] += np.asarray(up) * 3 * scale ** 0.6
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img += rng.uniform(-60, 60, 3) * (yy / h)[..., None]
    img += rng.uniform(-60, 60, 3) * (xx / w)[..., None]
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, min(h, w) / 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(-50, 50, 3)
    for _ in range(4):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        dy, dx = rng.integers(8, h // 2), rng.integers(8, w // 2)
        img[y0:y0 + dy, x0:x0 + dx] += rng.uniform(-40, 40, 3)
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img - img.mean() + 128), 0, 255).astype(np.uint8)


def old_grid(shift: tuple[int, int]) -> tuple[int, int]:
    """Where the first compression's grid sits after double_jpeg's crop of `shift`."""
    return (8 - shift[0]) % 8, (8 - shift[1]) % 8


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return texture(0)


# --- non-aligned double JPEG: found, offset exact, QF1 within 5 ---------------------------

NONALIGNED = [
    ((10, 30), (4, 4)),
    ((10, 50), (3, 5)),
    ((20, 60), (1, 6)),
    ((30, 50), (4, 4)),
    ((20, 60), (0, 3)),  # the old grid shares rows with the last one
    ((10, 40), (7, 7)),  # the old grid is one pixel off the last one
]
# a grid one pixel off the last one needs a stronger trace (NEAR_NONALIGNED_THRESHOLD):
# (30, 50) at shift (7, 7) is below it on some images, so that pair is left out
NONALIGNED_FULL = [(qfs, shift) for qfs in [(10, 30), (10, 50), (20, 60), (30, 50), (40, 90)]
                   for shift in [(4, 4), (3, 5), (1, 6), (0, 3), (7, 7)]
                   if (qfs, shift) != ((30, 50), (7, 7))]


def check_nonaligned(verdict: DoubleJpegVerdict, qf1: int, shift: tuple[int, int]) -> None:
    assert verdict.detected, verdict
    assert verdict.kind == "non-aligned"
    assert verdict.offset == old_grid(shift)
    assert abs(verdict.qf1 - qf1) <= 5
    assert 0.5 < verdict.confidence <= 1.0


@pytest.mark.parametrize(("qfs", "shift"), NONALIGNED)
def test_nonaligned_double_jpeg_is_found(image, qfs, shift):
    (qf1, qf2) = qfs
    degraded = double_jpeg(image, qf1, qf2, shift).degraded
    verdict = analyse(degraded, qf2)
    check_nonaligned(verdict, qf1, shift)
    assert verdict.last_qf == qf2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("qfs", "shift"), NONALIGNED_FULL)
def test_nonaligned_double_jpeg_sweep(qfs, shift, seed):
    (qf1, qf2) = qfs
    degraded = double_jpeg(texture(seed), qf1, qf2, shift).degraded
    check_nonaligned(analyse(degraded, qf2), qf1, shift)


def test_last_qf_is_estimated_when_not_given(image):
    degraded = double_jpeg(image, 10, 50, (3, 5)).degraded
    verdict = analyse(degraded)
    check_nonaligned(verdict, 10, (3, 5))
    assert abs(verdict.last_qf - 50) <= 2


def test_large_images_are_sampled_on_the_grid():
    """Tiles of a sample must keep both grids: a crop off the 8-pixel lattice would move
    the offsets."""
    big = texture(3, 384, 448)
    degraded = double_jpeg(big, 20, 70, (2, 5)).degraded
    verdict = analyse(degraded, 70, max_pixels=50_000, seed=1)
    check_nonaligned(verdict, 20, (2, 5))


@pytest.mark.parametrize("last_qf, max_pixels", [(70, 50_000), (None, 1_000_000)])
def test_progress_grows_to_one_and_changes_nothing(last_qf, max_pixels):
    """The analysis reports its progress (growing fractions, the last 1.0), and the verdict
    is the one without a callback."""
    degraded = double_jpeg(texture(3, 384, 448), 20, 70, (2, 5)).degraded
    seen: list[float] = []
    verdict = analyse(degraded, last_qf, max_pixels=max_pixels, seed=1, progress=seen.append)
    assert verdict == analyse(degraded, last_qf, max_pixels=max_pixels, seed=1)
    assert len(seen) > 10 and seen[-1] == 1.0 and 0 <= seen[0] < 0.1
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-2] > 0.3  # the estimate of the work is of the right size
    small: list[float] = []
    analyse(np.zeros((10, 10), np.uint8), 50, progress=small.append)  # nothing to analyse
    assert small == [1.0]


# --- single and aligned ---------------------------------------------------------------------


@pytest.mark.parametrize("qf", [10, 30, 50, 75, 90])
def test_single_jpeg_is_not_called_double(image, qf):
    verdict = analyse(compress(image, qf), qf)
    assert not verdict.detected, verdict
    assert verdict.kind == "single"
    assert verdict.qf1 is None and verdict.offset is None
    assert verdict.confidence > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("qf", range(5, 100, 10))
def test_single_jpeg_sweep(qf, seed):
    verdict = analyse(compress(texture(seed, 256, 256), qf), qf)
    assert not verdict.detected, verdict


@pytest.mark.parametrize(("qf1", "qf2"), [(10, 50), (20, 60)])
def test_aligned_double_jpeg_is_found(image, qf1, qf2):
    verdict = analyse(double_jpeg(image, qf1, qf2, (0, 0)).degraded, qf2)
    assert verdict.detected, verdict
    assert verdict.kind == "aligned"
    assert verdict.offset == (0, 0)
    assert abs(verdict.qf1 - qf1) <= 5
    # an aligned earlier compression does not change the QF to restore with
    assert verdict.qf_to_feed(qf2) is None


def test_grey_input_shapes_agree():
    grey = compress(texture(4, 128, 128)[..., :1], 40)
    flat = analyse(grey[..., 0], 40)
    assert analyse(grey, 40) == flat
    assert not flat.detected


def test_colour_is_judged_on_its_luma_converted_where_sampled():
    """Only the windows a sample keeps are turned into luma: the verdict is the one on the
    whole image's luma, for a sampled image and for one taken whole."""
    from fbcnn.jpeg.color import rgb_to_gray_plain

    for size, max_pixels in (((384, 448), 50_000), ((160, 176), 1_000_000)):
        colour = double_jpeg(texture(5, *size), 20, 70, (2, 5)).degraded
        assert colour.shape[2] == 3
        luma = rgb_to_gray_plain(colour)
        got = analyse(colour, 70, max_pixels=max_pixels, seed=3)
        assert got == analyse(luma, 70, max_pixels=max_pixels, seed=3)
        assert got.detected


def test_too_small_image_is_single_without_confidence():
    verdict = analyse(np.zeros((10, 40, 3), np.uint8), 50)
    assert verdict.kind == "single" and verdict.confidence == 0.0


# --- QF estimation and recompression curves ---------------------------------------------------


@pytest.mark.parametrize("qf", [10, 30, 50, 75, 90])
def test_estimate_qf_of_single_jpeg(image, qf):
    assert abs(estimate_qf(compress(image, qf)) - qf) <= 2


def test_recompression_errors_dip_at_the_qf_on_its_grid(image):
    luma = compress(image[..., :1], 40)
    qfs = [30, 35, 40, 45, 50]
    errors = recompression_errors(luma, qfs)
    assert errors.shape == (5,)
    assert int(np.argmin(errors)) == 2 and errors[2] < 0.2 * errors[[1, 3]].min()
    # off the grid there is no dip
    shifted = recompression_errors(luma, qfs, offset=(3, 5))
    assert shifted[2] > 10 * errors[2]


def test_recompression_errors_reveal_the_older_grid(image):
    luma = double_jpeg(image[..., :1], 20, 60, (4, 4)).degraded
    qfs = [15, 20, 25]
    on_old = recompression_errors(luma, qfs, offset=(4, 4))
    off = recompression_errors(luma, qfs, offset=(2, 6))
    ratio = on_old / off
    assert int(np.argmin(ratio)) == 1 and ratio[1] < 0.8


# --- verdict helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(("verdict", "predicted", "expected"), [
    (DoubleJpegVerdict(True, "non-aligned", 20, (4, 4), 0.9, 60), 55.0, 20.0),
    (DoubleJpegVerdict(True, "non-aligned", 40, (4, 4), 0.9, 60), 35.0, None),
    (DoubleJpegVerdict(False, "non-aligned", 20, (4, 4), 0.4, 60), 55.0, None),
    (DoubleJpegVerdict(True, "aligned", 20, (0, 0), 0.9, 60), 55.0, None),
    (DoubleJpegVerdict(False, "single", None, None, 0.9, 60), 55.0, None),
])
def test_qf_to_feed(verdict, predicted, expected):
    """The earlier compression's QF when a non-aligned one lies below the reading; else
    None (the network's own reading)."""
    assert verdict.qf_to_feed(predicted) == expected


@pytest.mark.parametrize("verdict", [
    DoubleJpegVerdict(True, "non-aligned", np.int64(20), (np.int64(4), 3), np.float64(0.9), 60),
    DoubleJpegVerdict(False, "single", None, None, 0.8, None),
])
def test_to_json_shape(verdict):
    out = verdict.to_json()
    assert set(out) == {"detected", "kind", "qf1", "offset", "confidence", "last_qf"}
    assert json.loads(json.dumps(out)) == out
    if verdict.offset is None:
        assert out["offset"] is None
    else:
        assert out["offset"] == [4, 3] and out["qf1"] == 20


# --- the scan's pixel budget ------------------------------------------------------------------


def test_scan_budget_shrinks_with_the_number_of_q_searched():
    from fbcnn.jpeg.recompress import _MIN_SCAN_PIXELS, _SCAN_PIXELS, _scan_budget

    assert _scan_budget(10) == _SCAN_PIXELS  # up to _SCAN_QS coarse q's: the whole sample
    budgets = [_scan_budget(top) for top in (40, 60, 87, 97)]
    assert budgets == sorted(budgets, reverse=True) and budgets[0] < _SCAN_PIXELS
    assert budgets[-1] >= _MIN_SCAN_PIXELS


def test_subset_spreads_windows_over_the_sample():
    from fbcnn.jpeg.recompress import _Sample

    windows = np.arange(40, dtype=np.uint8)[:, None, None] * np.ones((1, 71, 71), np.uint8)
    sample = _Sample(windows, 64, 64)
    part = sample.subset(10 * 64 * 64)
    kept = part.windows[:, 0, 0].tolist()
    assert len(kept) == 10 and kept[0] == 0 and kept[-1] == 39  # first to last, not a corner
    assert sample.subset(10**9) is sample
    one = _Sample(windows[:1], 64, 64)
    assert one.subset(100) is one  # a single crop is never cut


def test_large_double_jpeg_at_high_last_qf_is_found_with_the_budget(monkeypatch):
    """A 768x768 image (a tiled sample) whose last QF is 90: the scan runs on its budget,
    and the shifted grid is still found (its QF1 measured again on the full sample)."""
    from fbcnn.jpeg import recompress

    seen = []
    subset = recompress._Sample.subset
    monkeypatch.setattr(recompress._Sample, "subset",
                        lambda self, n: seen.append(n) or subset(self, n))
    degraded = double_jpeg(texture(4, 768, 768), 30, 90, (3, 5)).degraded
    check_nonaligned(analyse(degraded, 90), 30, (3, 5))
    assert seen and seen[0] < recompress._SCAN_PIXELS
