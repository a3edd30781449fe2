"""PSNR, SSIM, PSNR-B against hand-computed values and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fbcnn.evaluation import metrics
from fbcnn.jpeg.color import rgb_to_y

skimage_metrics = pytest.importorskip("skimage.metrics")


def _noisy_pair(shape, seed=0, sigma=20.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = 120 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    if len(shape) == 3:
        base = base[:, :, None] + np.arange(shape[2]) * 15
    clean = np.clip(base + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)
    return clean, noisy


def _blocks(values: np.ndarray) -> np.ndarray:
    """An image of constant 8x8 blocks with the given per-block values."""
    return np.kron(values, np.ones((8, 8))).astype(np.uint8)


# ----------------------------------------------------------------------------------- PSNR


def test_psnr_of_a_constant_difference():
    a = np.full((16, 24, 3), 100, np.uint8)
    b = a + 5
    assert metrics.mse(a, b) == 25.0
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)


def test_psnr_identical_is_inf_and_shapes_must_match():
    a = np.zeros((8, 8), np.uint8)
    assert metrics.psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(a, np.zeros((8, 9), np.uint8))


@pytest.mark.parametrize("shape", [(37, 53), (40, 31, 3)])
def test_psnr_matches_skimage(shape):
    clean, noisy = _noisy_pair(shape)
    expected = skimage_metrics.peak_signal_noise_ratio(clean, noisy, data_range=255)
    assert metrics.psnr(noisy, clean) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------------- SSIM


def _skimage_ssim(a, b):
    return skimage_metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=2 if a.ndim == 3 else None)


@pytest.mark.parametrize("shape", [(11, 11), (37, 53), (64, 48, 1), (29, 45, 3)])
def test_ssim_matches_skimage(shape):
    clean, noisy = _noisy_pair(shape, seed=len(shape))
    ours = metrics.ssim(noisy, clean)
    ref = _skimage_ssim(noisy.squeeze(-1) if shape[-1] == 1 else noisy,
                        clean.squeeze(-1) if shape[-1] == 1 else clean)
    assert ours == pytest.approx(ref, abs=1e-9)


def test_ssim_colour_is_the_mean_of_the_channels():
    clean, noisy = _noisy_pair((30, 40, 3), sigma=30)
    per_channel = [metrics.ssim(noisy[:, :, c], clean[:, :, c]) for c in range(3)]
    assert metrics.ssim(noisy, clean) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert len(set(np.round(per_channel, 6))) == 3


def test_ssim_of_identical_images_is_one_and_small_images_are_refused():
    a, _ = _noisy_pair((20, 20))
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(a[:10], a[:10])


def test_gaussian_window():
    g = metrics.gaussian_kernel()
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0)
    assert g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


# --------------------------------------------------------------------------------- PSNR-B


def _bef_by_the_paper(y: np.ndarray) -> float:
    """Yim & Bovik's formulas, written with loops over the pixel pairs."""
    y = y.astype(np.float64)
    h, w = y.shape
    d_b = d_bc = 0.0
    for r in range(h):
        for c in range(w - 1):
            d = (y[r, c] - y[r, c + 1]) ** 2
            if (c + 1) % 8 == 0:
                d_b += d
            else:
                d_bc += d
    for r in range(h - 1):
        for c in range(w):
            d = (y[r, c] - y[r + 1, c]) ** 2
            if (r + 1) % 8 == 0:
                d_b += d
            else:
                d_bc += d
    n_hb, n_vb = h * (w / 8 - 1), w * (h / 8 - 1)
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb
    d_b /= n_hb + n_vb
    d_bc /= n_hbc + n_vbc
    return math.log2(8) / math.log2(min(h, w)) * (d_b - d_bc) if d_b > d_bc else 0.0


def test_bef_of_steps_at_block_boundaries():
    image = _blocks(np.array([[0, 10], [20, 30]]))  # 16x16, steps only between blocks
    # boundary pairs: column 7|8 in 16 rows (8 x 10^2 + 8 x 10^2) and row 7|8 in 16 columns
    # (8 x 20^2 + 8 x 20^2); N_HB = N_VB = 16 * (16/8 - 1) = 16; no other differences
    d_b = (16 * 100 + 16 * 400) / 32
    assert metrics.blocking_effect_factor(image) == pytest.approx(3 / 4 * d_b)
    assert metrics.blocking_effect_factor(image[:, :, None]) == pytest.approx(3 / 4 * d_b)


def test_bef_is_zero_for_steps_inside_blocks():
    image = np.zeros((16, 16), np.uint8)
    image[:, 4:] = 50  # a step at column 4, inside the blocks
    image[12:, :] += 50
    assert metrics.blocking_effect_factor(image) == 0.0
    assert metrics.blocking_effect_factor(np.full((24, 24), 7, np.uint8)) == 0.0


@pytest.mark.parametrize("shape", [(16, 16), (24, 40), (21, 35), (33, 17)])
def test_bef_matches_the_paper_formulas(shape):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 40, shape).astype(np.uint8)
    image = image + _blocks(rng.integers(0, 100, (-(-shape[0] // 8), -(-shape[1] // 8))))[
        :shape[0], :shape[1]]
    ours = metrics.blocking_effect_factor(image)
    assert ours > 0
    assert ours == pytest.approx(_bef_by_the_paper(image), rel=1e-12)


def test_bef_of_images_smaller_than_two_blocks_is_zero():
    assert metrics.blocking_effect_factor(np.arange(64, dtype=np.uint8).reshape(8, 8)) == 0.0


def test_psnrb_adds_the_bef_of_the_image_under_test():
    blocky = _blocks(np.array([[0, 10], [20, 30]]))
    smooth = np.full_like(blocky, 15)
    mse = metrics.mse(blocky, smooth)
    bef = metrics.blocking_effect_factor(blocky)
    assert metrics.psnrb(blocky, smooth) == pytest.approx(10 * math.log10(255**2 / (mse + bef)))
    # the clean image's blockiness does not count; without blocking PSNR-B = PSNR
    assert metrics.psnrb(smooth, blocky) == pytest.approx(metrics.psnr(smooth, blocky))
    assert metrics.psnrb(blocky, blocky) == pytest.approx(10 * math.log10(255**2 / bef))


def test_psnrb_of_colour_takes_the_bef_on_bt601_y():
    rng = np.random.default_rng(5)
    blocky = np.stack([_blocks(rng.integers(0, 255, (3, 4))) for _ in range(3)], axis=2)
    clean = np.clip(blocky.astype(int) + rng.integers(-9, 10, blocky.shape), 0, 255).astype(
        np.uint8)
    bef = metrics.blocking_effect_factor(rgb_to_y(blocky))
    assert bef > 0
    expected = 10 * math.log10(255**2 / (metrics.mse(blocky, clean) + bef))
    assert metrics.psnrb(blocky, clean) == pytest.approx(expected)


def test_quality_returns_the_three_metrics():
    clean, noisy = _noisy_pair((24, 32, 3))
    q = metrics.quality(noisy, clean)
    assert q == {"psnr": metrics.psnr(noisy, clean), "ssim": metrics.ssim(noisy, clean),
                 "psnrb": metrics.psnrb(noisy, clean)}
