"""Colour conversions on uint8 images (one place for the library: degradations, metrics,
double-JPEG analysis, training)."""

from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_gray_plain", "rgb_to_y"]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image, rounded to uint8, shape HxWx1 (the paper's grey)."""
    rgb = image.astype(np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]


def rgb_to_gray_plain(image: np.ndarray) -> np.ndarray:
    """A plain full-range RGB -> grey conversion (ITU-R 601 weights), HxWx1 uint8."""
    rgb = image.astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]
