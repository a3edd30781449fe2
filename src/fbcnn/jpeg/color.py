"""Colour conversions on uint8 images (one place for the library: degradations, metrics,
double-JPEG analysis, training). They work in strips of rows, so converting a 24-MP photo
needs a few MB of float scratch, not the 0.6 GB a float64 copy of it would take."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["is_neutral", "rgb_to_gray_plain", "rgb_to_y"]

_STRIP_ROWS = 256


def _by_strips(image: np.ndarray, formula: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """round(formula(float64 rgb)) as HxWx1 uint8, one strip of rows at a time."""
    h, w = image.shape[:2]
    out = np.empty((h, w, 1), np.uint8)
    for y in range(0, h, _STRIP_ROWS):
        value = formula(image[y:y + _STRIP_ROWS].astype(np.float64))
        out[y:y + _STRIP_ROWS, :, 0] = np.clip(np.round(value), 0, 255)
    return out


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image, rounded to uint8, shape HxWx1 (the paper's grey)."""
    return _by_strips(image, lambda rgb: 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1]
                                                 + 24.966 * rgb[..., 2]) / 255.0)


def rgb_to_gray_plain(image: np.ndarray) -> np.ndarray:
    """A plain full-range RGB -> grey conversion (ITU-R 601 weights), HxWx1 uint8."""
    return _by_strips(image, lambda rgb: 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1]
                      + 0.114 * rgb[..., 2])


def is_neutral(image: np.ndarray) -> bool:
    """Colour (HxWx3) pixels whose three channels are equal everywhere: a grey image stored
    in colour (a black-and-white photo saved as a colour JPEG, a grey palette)."""
    if image.ndim != 3 or image.shape[2] != 3:
        return False
    sample = image[::17]  # a colour photo shows colour in a few rows: the rest not read
    return all(np.array_equal(rows[..., 0], rows[..., 1])
               and np.array_equal(rows[..., 1], rows[..., 2]) for rows in (sample, image))
