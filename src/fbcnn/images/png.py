"""PNG writing on several threads, for the restored images (8-bit grey, grey + alpha, RGB,
RGBA, with an optional ICC profile and EXIF block).

Pillow writes a PNG on one thread and tries every filter on every row; for a restored 3-MP
photo that took about 0.2 s, a tenth of the whole restore. Here the rows are cut into bands
(at most `BAND_BYTES` each, at least one per worker): each band is filtered (per row, Sub
or Up, whichever leaves the smaller sum of absolute values, the heuristic of libpng) and
deflated on one of the process's worker threads (`fbcnn.device.worker_pool`), numpy and
zlib letting go of the GIL, and the bands are joined into one zlib stream as pigz does:
raw deflate streams ended by a sync flush, the zlib header in front and the Adler-32 of
the whole stream (combined from the bands') at the end.
`python scripts/probes/png_levels.py` compares sizes and times with Pillow's.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from ..device import ordered_map

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1  # zlib level: about as small as Pillow's level 1 with these filters, far faster
BAND_BYTES = 8 << 20  # filtered bytes per band at most (memory: a few bands per worker)
EXIF_HEADER = b"Exif\0\0"  # JPEG's APP1 prefix, not part of a PNG's eXIf chunk
ICC_NAME = b"ICC Profile"  # the profile's name in iCCP, as Pillow writes it
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey + alpha, RGB, RGBA
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32K window, fastest level; (0x7801 % 31) == 0
_FILTERS = (1, 2, 3)  # Sub, Up, Average: the filter-type bytes of filter_rows' choices
_ADLER_BASE = 65521


def write_png(f: BinaryIO, pixels: np.ndarray, icc_profile: bytes | None = None,
              workers: int = 1, exif: bytes | None = None) -> None:
    """Write `pixels` (uint8 H x W x C, C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) to the
    binary file `f` as an 8-bit PNG, deflating on `workers` threads. `exif`: an EXIF block
    (the TIFF structure, with or without JPEG's b"Exif\\0\\0" in front), written as an eXIf
    chunk before the image data."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"expected uint8 H x W x 1..4 pixels, got {pixels.dtype} "
                         f"{pixels.shape}")
    h, w, c = pixels.shape
    if h == 0 or w == 0:
        raise ValueError(f"cannot write an empty image ({w}x{h})")
    f.write(SIGNATURE)
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0))
    if icc_profile:
        _chunk(f, b"iCCP", ICC_NAME + b"\0\0" + zlib.compress(icc_profile))
    if exif:
        _chunk(f, b"eXIf", exif[6:] if exif.startswith(EXIF_HEADER) else exif)
    adler, first = 1, True
    for data, band_adler, length in _deflated_bands(pixels, max(1, workers)):
        adler = adler32_combine(adler, band_adler, length)
        _chunk(f, b"IDAT", (_ZLIB_HEADER if first else b"") + data)
        first = False
    _chunk(f, b"IDAT", struct.pack(">I", adler))
    _chunk(f, b"IEND", b"")


def band_edges(h: int, row_bytes: int, workers: int) -> list[int]:
    """Row boundaries of the bands: as many as the workers (or a multiple of them), each of
    at most BAND_BYTES filtered bytes (one row at least), of nearly equal height."""
    per_band = max(1, BAND_BYTES // row_bytes)
    count = max(workers, -(-h // per_band))
    count = min(h, -(-count // workers) * workers)
    return [round(i * h / count) for i in range(count + 1)]


def _deflated_bands(pixels: np.ndarray, workers: int) -> Iterator[tuple[bytes, int, int]]:
    """(deflated bytes, Adler-32, filtered length) of each band, in order; at most two bands
    per worker are held at once."""
    h, w, c = pixels.shape
    edges = band_edges(h, w * c + 1, workers)
    jobs = [(edges[i], edges[i + 1], i == len(edges) - 2) for i in range(len(edges) - 1)]
    if workers == 1 or len(jobs) == 1:
        for y0, y1, last in jobs:
            yield _deflate_band(pixels, y0, y1, last)
        return
    yield from ordered_map(lambda job: _deflate_band(pixels, *job), jobs, 2 * workers)


def _deflate_band(pixels: np.ndarray, y0: int, y1: int, last: bool) -> tuple[bytes, int, int]:
    raw = filter_rows(pixels, y0, y1)
    deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)  # raw deflate: no header, no sum
    data = deflate.compress(raw) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return data, zlib.adler32(raw), raw.nbytes


def filter_rows(pixels: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of the image as PNG scanlines (filter-type byte, then the filtered bytes),
    uint8 (rows, 1 + W * C): each row Sub-, Up- or Average-filtered, whichever has the
    smallest sum of absolute values (as signed bytes). (Paeth, libpng's fourth, cost more
    time than it saved bytes on restored photos.)"""
    _, w, c = pixels.shape
    n = y1 - y0
    rows = pixels[y0:y1].reshape(n, w * c)
    above = np.empty_like(rows)  # the row above each (zeros above the first)
    above[0] = pixels[y0 - 1].reshape(w * c) if y0 else 0
    above[1:] = rows[:-1]
    left = np.zeros_like(rows)  # the pixel to the left (zeros left of the first)
    left[:, c:] = rows[:, :-c]
    filtered = np.empty((3, n, w * c), np.uint8)
    np.subtract(rows, left, out=filtered[0])  # Sub
    np.subtract(rows, above, out=filtered[1])  # Up
    mean = (left >> 1) + (above >> 1) + (left & above & 1)  # floor((left + above) / 2)
    np.subtract(rows, mean, out=filtered[2])  # Average
    best = np.argmin(np.stack([_row_cost(f) for f in filtered]), axis=0)
    out = np.empty((n, w * c + 1), np.uint8)
    out[:, 0] = np.array(_FILTERS, np.uint8)[best]
    out[:, 1:] = filtered[best, np.arange(n)]
    return out


def _row_cost(filtered: np.ndarray) -> np.ndarray:
    """Per row, the sum of |byte| read as signed (one's complement: -128 counts 127)."""
    signed = filtered.view(np.int8)
    return (signed ^ (signed >> 7)).sum(axis=1, dtype=np.int64)


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """The Adler-32 of A + B from those of A and of B (B `length2` bytes long), as zlib's
    adler32_combine computes it."""
    rem = length2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = rem * sum1 % _ADLER_BASE
    sum1 = (sum1 + (adler2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)


def _chunk(f: BinaryIO, tag: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + tag)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(tag))))
