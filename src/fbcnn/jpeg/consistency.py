"""JPEG consistency: project a restored image back into the set of images that the JPEG
file could have come from.

A JPEG stores, for every 8x8 block of every component, DCT coefficients quantised with the
file's tables: the original's coefficient c lay in [(k - 1/2) q, (k + 1/2) q], where k q is
the coefficient of the decoded block. Clamping the restored image's coefficients into those
cells can only move it towards the original (per coefficient), and it bounds how far the
network may stray from a near-lossless JPEG.

The cells are those of the file's last compression, and they bound every restore, whatever
QF the network was fed: a QF below the file's own (`--qf 10` on a QF 90 file) smooths only
within them. In a file re-saved at a higher quality than it once had (a meme saved again),
the "original" of its last compression is the earlier, stronger compression's output, so its
cells hold those artifacts too, and the projection keeps much of them; `fbcnn restore
--consistency off` lets a low QF remove more.

Colour images are handled in the JPEG's YCbCr (JFIF, full range): luma at full resolution;
chroma, when subsampled, at the subsampled resolution (2x2 means), where the change is made
and then carried back to full resolution (nearest neighbour), so the restored chroma's detail
is kept. Blocks cut by the image border are left as they are (their padding is unknown).

A JPEG whose every table entry is 1 and whose chroma is not subsampled (QF 100, grey or
4:4:4) lost nothing but rounding: its decoded pixels are the best estimate of the original
and are returned as they are. (Clamping to its 1-wide cells is not enough: the network's
changes inside them cost 0.14 dB on average on 30 BSDS500 grey images at QF 100; setting the
step-1 coefficients to the cell centres is worse still, since the decoder rounded its
pixels after the inverse DCT, so the decoded block's coefficients are off by up to a step.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK = 8


def _dct_matrix() -> np.ndarray:
    k = np.arange(BLOCK)[:, None]
    n = np.arange(BLOCK)[None, :]
    m = np.cos(np.pi * (2 * n + 1) * k / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
    m[0] /= np.sqrt(2)
    return m


DCT = _dct_matrix()  # orthonormal: coefficients = DCT @ block @ DCT.T
DCT32 = DCT.astype(np.float32)

# JFIF RGB <-> YCbCr (full range, as libjpeg)
_TO_YCC = np.array([[0.299, 0.587, 0.114],
                    [-0.168735892, -0.331264108, 0.5],
                    [0.5, -0.418687589, -0.081312411]])
_FROM_YCC = np.linalg.inv(_TO_YCC)
_TO_YCC32, _FROM_YCC32 = _TO_YCC.T.astype(np.float32), _FROM_YCC.T.astype(np.float32)
_TO_Y32 = _TO_YCC[0].astype(np.float32)  # RGB -> Y
_TO_CBCR32 = _TO_YCC[1:].T.astype(np.float32)  # RGB -> Cb, Cr (less 128)
_FROM_CBCR32 = _FROM_YCC[:, 1:].T.astype(np.float32)  # Cb, Cr changes -> RGB changes


@dataclass(frozen=True)
class JpegTables:
    """What a JPEG's decoder used: quantisation tables in natural (row-major) order, luma
    first, and the chroma subsampling ('4:2:0', '4:2:2', '4:4:4'; None, and no chroma
    table, for grey)."""

    luma: tuple[int, ...]
    chroma: tuple[int, ...] | None = None
    subsampling: str | None = None

    @classmethod
    def from_pillow(cls, quantization: dict[int, list[int]] | None,
                    subsampling: str | None) -> JpegTables | None:
        """From Pillow's `image.quantization` (None when the file has no tables)."""
        if not quantization or 0 not in quantization or len(quantization[0]) != 64:
            return None
        luma = tuple(int(v) for v in quantization[0])
        if subsampling is None:  # grey
            return cls(luma)
        chroma = quantization.get(1, quantization[0])  # one table may serve all components
        if len(chroma) != 64:
            return None
        return cls(luma, tuple(int(v) for v in chroma), subsampling)

    @classmethod
    def standard(cls, qf: int, colour: bool, subsampling: str = "4:2:0") -> JpegTables:
        """The IJG tables at `qf`, as Pillow (libjpeg) writes them."""
        from .tables import _standard_tables

        tables = _standard_tables()[int(qf) - 1].astype(int).tolist()
        if not colour:
            return cls(tuple(tables[0]))
        return cls(tuple(tables[0]), tuple(tables[1]), subsampling)

    @property
    def quality(self) -> int:
        """The IJG quality of these tables (`jpeg.qf_from_tables`: exact for libjpeg-made
        files, the nearest fit for others)."""
        from .tables import qf_from_tables

        return qf_from_tables({0: list(self.luma)} if self.chroma is None
                              else {0: list(self.luma), 1: list(self.chroma)})

    @property
    def chroma_steps_one(self) -> bool:
        """A colour JPEG whose chroma table is all ones (only its subsampling lost)."""
        return self.chroma is not None and max(self.chroma) <= 1

    @property
    def lossless_but_rounding(self) -> bool:
        """Every step 1 and no chroma subsampling: the file lost nothing but rounding."""
        steps = self.luma + (self.chroma or ())
        return max(steps) <= 1 and self.subsampling in (None, "4:4:4")


@functools.lru_cache(maxsize=16)
def _block_transforms(table: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(forward, inverse) 64 x 64 matrices for blocks flattened row-major: `blocks @
    forward` are the DCT coefficients in units of the table's steps (c / q), and `units @
    inverse` the pixels of coefficients given in those units. Made once per table (every
    strip and plane of an image shares them)."""
    q = np.asarray(table, np.float64).reshape(BLOCK * BLOCK)
    dct2 = np.kron(DCT, DCT)  # coefficients (flat) = dct2 @ block (flat)
    return (dct2.T / q[None, :]).astype(np.float32), (q[:, None] * dct2).astype(np.float32)


def _correction(restored: np.ndarray, decoded: np.ndarray,
                table: tuple[int, ...]) -> np.ndarray:
    """What the projection adds to `restored` (float32, one plane): the change that clamps
    the DCT coefficients of each whole 8x8 block into the quantisation cells of `decoded`'s
    (zero outside the whole blocks). In units of the steps q: the decoded block's
    coefficient is k = round(c / q), and the restored one's offset from it, t, is clamped
    to [-1/2, 1/2]."""
    h, w = restored.shape
    bh, bw = h // BLOCK * BLOCK, w // BLOCK * BLOCK
    change = np.zeros((h, w), np.float32)
    if bh == 0 or bw == 0:
        return change
    forward, inverse = _block_transforms(table)

    def blocks(plane: np.ndarray) -> np.ndarray:  # (bh/8 * bw/8, 64) pixels less 128
        b = plane[:bh, :bw].reshape(bh // BLOCK, BLOCK, bw // BLOCK, BLOCK)
        b = b.transpose(0, 2, 1, 3).reshape(-1, BLOCK * BLOCK)
        return b - np.float32(128)

    k = blocks(decoded) @ forward
    np.round(k, out=k)
    offset = blocks(restored) @ forward
    offset -= k
    moved = np.clip(offset, -0.5, 0.5)
    moved -= offset
    pixels = (moved @ inverse).reshape(bh // BLOCK, bw // BLOCK, BLOCK, BLOCK)
    change[:bh, :bw] = pixels.transpose(0, 2, 1, 3).reshape(bh, bw)
    return change


def _chroma_factors(subsampling: str | None) -> tuple[int, int]:
    return {"4:2:0": (2, 2), "4:2:2": (1, 2)}.get(subsampling or "4:4:4", (1, 1))


def _down(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Means of fy x fx cells over the first two axes of float `plane` (what the encoder
    stores for subsampled chroma)."""
    h, w = plane.shape[0] // fy * fy, plane.shape[1] // fx * fx
    cells = plane[:h, :w]
    if fy == 2:
        cells = cells[0::2] + cells[1::2]
    if fx == 2:
        cells = cells[:, 0::2] + cells[:, 1::2]
    return np.asarray(cells, np.float32) * np.float32(1 / (fy * fx))


def _undo_fancy_smoothing(means: np.ndarray, axis: int, iterations: int = 12) -> np.ndarray:
    """Solve (s[i-1] + 6 s[i] + s[i+1]) / 8 = means[i] along `axis` (edges replicated): the
    pair means of libjpeg's 'fancy' (triangle) 2x upsampling of stored samples s. Jacobi
    iterations; the system is diagonally dominant (error / 3 per iteration, so 12 of them
    leave 3^-12 = 2e-6 of the first error, itself a fraction of the sample range: far below
    what moves a coefficient's cell)."""
    if means.shape[axis] < 2:
        return means
    m6 = np.ascontiguousarray(np.moveaxis(means, axis, 0) * np.float32(8 / 6))
    s = m6 * np.float32(6 / 8)
    neighbours = np.empty_like(s)
    for _ in range(iterations):
        np.add(s[:-2], s[2:], out=neighbours[1:-1])
        np.add(s[0], s[1], out=neighbours[0])
        np.add(s[-2], s[-1], out=neighbours[-1])
        neighbours *= np.float32(1 / 6)
        np.subtract(m6, neighbours, out=s)
    return np.moveaxis(s, 0, axis)


def _stored_chroma(means: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The decoder's stored (subsampled) chroma, recovered from the fy x fx cell means of
    its decoded full-resolution planes (`_down`): the means undo the upsampling's averaging
    only up to its [1, 6, 1] / 8 smoothing along each subsampled axis, inverted here."""
    if fy == 2:
        means = _undo_fancy_smoothing(means, 0)
    if fx == 2:
        means = _undo_fancy_smoothing(means, 1)
    return means.astype(np.float32)


STRIP = 256  # rows projected at a time at least, shared by the workers (a multiple of 16,
# the largest JPEG MCU) ...
STRIP_PIXELS = 1 << 20  # ... and more rows for narrower images, up to about this many pixels
MARGIN = 16  # rows of context above and below a strip (a multiple of 16): 8 rows of 4:2:0
# chroma, over which the read-back's reach decays by 6^-8


def strip_rows(width: int) -> int:
    """The default strip: STRIP rows, or more for an image narrower than STRIP_PIXELS /
    STRIP (a multiple of 16)."""
    return max(STRIP, STRIP_PIXELS // max(1, width) // 16 * 16)


def project(restored: np.ndarray, decoded: np.ndarray, tables: JpegTables,
            strip: int | None = None, workers: int = 1) -> np.ndarray:
    """`restored` (uint8, HxWx1 or HxWx3) made consistent with the JPEG whose decoded pixels
    are `decoded` (same shape) and whose tables are `tables`; uint8, same shape.

    Big images go in horizontal strips of `strip` rows (default `strip_rows`; with MARGIN
    rows of context, on the MCU grid), so memory stays bounded; the result is the same as
    in one piece (blocks never straddle a strip, and the chroma read-back's reach decays by
    ~6x a row). `workers` strips are projected at once on the process's worker threads
    (`fbcnn.device.worker_pool`: numpy lets go of the GIL in its array work; BLAS keeps one
    thread each meanwhile), each strip `strip / workers` rows, so memory stays that of one
    `strip`; the result does not depend on them but for rounding ties."""
    if restored.shape != decoded.shape:
        raise ValueError(f"shapes differ: {restored.shape} vs {decoded.shape}")
    if tables.lossless_but_rounding:
        return decoded.copy()
    h, w = restored.shape[:2]
    strip = strip_rows(w) if strip is None else strip
    if h <= strip + 2 * MARGIN:
        return _project_piece(restored, decoded, tables)
    if strip % 16:
        raise ValueError(f"strip must be a multiple of 16, got {strip}")
    if workers > 1:
        strip = max(4 * MARGIN, strip // workers // 16 * 16)
    out = np.empty_like(restored)

    def one_strip(y0: int) -> None:
        y1 = min(h, y0 + strip)
        a, b = max(0, y0 - MARGIN), min(h, y1 + MARGIN)
        piece = _project_piece(restored[a:b], decoded[a:b], tables)
        out[y0:y1] = piece[y0 - a:y1 - a]

    starts = range(0, h, strip)
    if workers > 1 and len(starts) > 1:
        from ..device import ordered_map

        with _one_blas_thread():
            for _ in ordered_map(one_strip, starts, workers):  # re-raises a strip's error
                pass
    else:
        for y0 in starts:
            one_strip(y0)
    return out


def _one_blas_thread() -> Any:
    """A context in which numpy's BLAS runs on one thread (a threaded BLAS called from
    several threads at once waits on itself: the projection on two workers took 0.22 s
    instead of 0.11 s on the 3-MP test image)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _project_piece(restored: np.ndarray, decoded: np.ndarray,
                   tables: JpegTables) -> np.ndarray:
    """One strip (or the whole image) projected. The changes are made in YCbCr and carried
    back to RGB: RGB = RGB + the luma change (the inverse transform's luma column is all
    ones) + the chroma changes, made at the chroma's stored resolution, through the
    inverse's chroma columns, repeated over each cell (the transforms are linear, so the
    chroma planes are read from the RGB cell means)."""
    r = restored.astype(np.float32)
    d = decoded.astype(np.float32)
    luma = tables.luma
    if r.shape[2] == 1 or tables.chroma is None:
        # grey JPEG (restored as grey, or as RGB by a colour model: project the mean level)
        r += _correction(r.mean(axis=2), d.mean(axis=2), luma)[..., None]
        return rounded_uint8(r)

    chroma = tables.chroma
    fy, fx = _chroma_factors(tables.subsampling)
    small_r = _down(r, fy, fx) @ _TO_CBCR32 + np.float32(128)
    small_d = _stored_chroma(_down(d, fy, fx) @ _TO_CBCR32 + np.float32(128), fy, fx)
    r += _correction(r @ _TO_Y32, d @ _TO_Y32, luma)[..., None]
    change = np.stack([_correction(small_r[..., c], small_d[..., c], chroma)
                       for c in (0, 1)], axis=2) @ _FROM_CBCR32  # RGB, per chroma sample
    ch, cw = change.shape[0] * fy, change.shape[1] * fx
    for dy in range(fy):
        for dx in range(fx):
            r[dy:ch:fy, dx:cw:fx] += change
    return rounded_uint8(r)


def rounded_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in the 0..255 scale -> uint8, rounded half to even and clipped (in place
    of `pixels`, which must be a float array the caller owns)."""
    np.round(pixels, out=pixels)
    np.clip(pixels, 0, 255, out=pixels)
    return pixels.astype(np.uint8)
