"""JPEG codec facts: encode and decode at a quality factor, quantisation tables, the QF that
a file's tables correspond to, chroma subsampling.

Encoding uses Pillow (libjpeg-turbo) with the standard IJG tables scaled by quality, like
OpenCV and the paper; colour is 4:2:0 unless asked otherwise.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

# Pillow's subsampling codes
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
SUBSAMPLING_NAMES = {v: k for k, v in SUBSAMPLING.items()}


def _to_pil(image: np.ndarray) -> Image.Image:
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(image)


def encode(image: np.ndarray, qf: int, subsampling: str = "4:2:0") -> bytes:
    """JPEG bytes of a uint8 HxW, HxWx1 or HxWx3 array at quality `qf` (1..100)."""
    if not 1 <= int(qf) <= 100:
        raise ValueError(f"quality factor must be in 1..100, got {qf}")
    buf = io.BytesIO()
    pil = _to_pil(image)
    options: dict[str, object] = {"quality": int(qf)}
    if pil.mode == "RGB":
        options["subsampling"] = SUBSAMPLING[subsampling]
    pil.save(buf, format="JPEG", **options)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """uint8 array (HxW for grey, HxWx3 for colour) of JPEG bytes."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L" if im.mode == "L" else "RGB"))


def compress(image: np.ndarray, qf: int, subsampling: str = "4:2:0") -> np.ndarray:
    """decode(encode(image, qf)), keeping the input's shape (HxWx1 stays HxWx1)."""
    out = decode(encode(image, qf, subsampling))
    if image.ndim == 3 and image.shape[2] == 1:
        out = out[:, :, None]
    return out


# the example tables of the JPEG standard (ITU-T T.81, Annex K), natural (row-major) order:
# what IJG encoders scale by quality
_ANNEX_K_LUMA = (16, 11, 10, 16, 24, 40, 51, 61,
                 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56,
                 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77,
                 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101,
                 72, 92, 95, 98, 112, 100, 103, 99)
_ANNEX_K_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99,
                   18, 21, 26, 66, 99, 99, 99, 99,
                   24, 26, 56, 99, 99, 99, 99, 99,
                   47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32


@lru_cache(maxsize=1)
def _standard_tables() -> np.ndarray:
    """(100, 2, 64) IJG luma/chroma tables at QF 1..100, in Pillow's (natural) order: the
    Annex K tables scaled as libjpeg's `jpeg_set_quality` does with baseline tables (scale
    5000 / q below 50, else 200 - 2 q, in percent, rounded; entries kept in 1..255)."""
    q = np.arange(1, 101)
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    base = np.array([_ANNEX_K_LUMA, _ANNEX_K_CHROMA], np.int64)
    tables = (base[None] * scale[:, None, None] + 50) // 100
    return np.clip(tables, 1, 255).astype(np.float64)


def qf_from_tables(tables: dict[int, list[int]]) -> int:
    """The IJG quality whose scaled standard tables are nearest to these (exact for IJG
    encoders such as libjpeg, Pillow and OpenCV; the nearest fit for others)."""
    standard = _standard_tables()
    luma = np.asarray(tables[0], np.float64)
    err = np.abs(np.log(standard[:, 0]) - np.log(np.maximum(luma, 1))).sum(axis=1)
    if 1 in tables:
        chroma = np.asarray(tables[1], np.float64)
        err = err + np.abs(np.log(standard[:, 1]) - np.log(np.maximum(chroma, 1))).sum(axis=1)
    return int(np.argmin(err)) + 1


def tables_are_ijg(tables: dict[int, list[int]]) -> bool:
    """Whether these are the IJG tables scaled to some quality (libjpeg, Pillow, OpenCV,
    most cameras' software); MozJPEG's and jpegli's defaults, Photoshop's and custom tables
    are not. Compared in Pillow's (natural) order."""
    standard = _standard_tables()
    q = qf_from_tables(tables)
    return all(np.array_equal(np.asarray(tables[k], np.float64), standard[q - 1, k])
               for k in (0, 1) if k in tables)


def header_qf(image: Image.Image) -> int | None:
    """The QF written in a JPEG's quantisation tables, or None for other formats."""
    if image.format != "JPEG":
        return None
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    return qf_from_tables(tables)


def subsampling_of(image: Image.Image) -> str | None:
    """'4:2:0', '4:2:2', '4:4:4' for a colour JPEG, None otherwise."""
    if image.format != "JPEG" or image.mode not in ("RGB", "YCbCr"):
        return None
    from PIL import JpegImagePlugin

    code = JpegImagePlugin.get_sampling(image)
    return SUBSAMPLING_NAMES.get(code)


def grid_multiple(subsampling: str | None, channels: int) -> int:
    """Tile starts must be multiples of this to keep JPEG blocks (MCUs) in place."""
    if channels == 3 and subsampling in (None, "4:2:0", "4:2:2"):
        return 16
    return 8
