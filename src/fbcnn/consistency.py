"""JPEG consistency: project a restored image back into the set of images that the JPEG
file could have come from.

A JPEG stores, for every 8x8 block of every component, DCT coefficients quantised with the
file's tables: the original's coefficient c lay in [(k - 1/2) q, (k + 1/2) q], where k q is
the coefficient of the decoded block. Clamping the restored image's coefficients into those
cells can only move it towards the original (per coefficient), and it bounds how far the
network may stray from a near-lossless JPEG.

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

from dataclasses import dataclass

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
_OFFSET = np.array([0.0, 128.0, 128.0], np.float32)


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
        from .jpeg import _standard_tables

        tables = _standard_tables()[int(qf) - 1].astype(int).tolist()
        if not colour:
            return cls(tuple(tables[0]))
        return cls(tuple(tables[0]), tuple(tables[1]), subsampling)

    @property
    def quality(self) -> int:
        """The IJG quality of these tables (`jpeg.qf_from_tables`: exact for libjpeg-made
        files, the nearest fit for others)."""
        from .jpeg import qf_from_tables

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


def _project_plane(restored: np.ndarray, decoded: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Clamp the DCT coefficients of each whole 8x8 block of `restored` (float, one plane)
    into the quantisation cells of `decoded`'s; returns the projected plane."""
    h, w = restored.shape
    bh, bw = h // BLOCK * BLOCK, w // BLOCK * BLOCK
    out = restored.copy()
    if bh == 0 or bw == 0:
        return out
    q = table.reshape(BLOCK, BLOCK).astype(np.float32)

    def blocks(plane: np.ndarray) -> np.ndarray:  # (bh/8 * bw/8, 8, 8) coefficients
        b = (plane[:bh, :bw] - 128.0).reshape(bh // BLOCK, BLOCK, bw // BLOCK, BLOCK)
        b = b.transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK).astype(np.float32)
        return DCT32 @ b @ DCT32.T

    k = np.round(blocks(decoded) / q)
    coeffs = np.clip(blocks(restored), (k - 0.5) * q, (k + 0.5) * q)
    pixels = (DCT32.T @ coeffs @ DCT32).reshape(bh // BLOCK, bw // BLOCK, BLOCK, BLOCK)
    out[:bh, :bw] = pixels.transpose(0, 2, 1, 3).reshape(bh, bw) + 128.0
    return out


def _chroma_factors(subsampling: str | None) -> tuple[int, int]:
    return {"4:2:0": (2, 2), "4:2:2": (1, 2)}.get(subsampling or "4:4:4", (1, 1))


def _down(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Means of fy x fx cells (what the encoder stores for subsampled chroma)."""
    h, w = plane.shape[0] // fy * fy, plane.shape[1] // fx * fx
    total = sum(plane[dy:h:fy, dx:w:fx] for dy in range(fy) for dx in range(fx))
    return np.asarray(total, np.float32) * np.float32(1 / (fy * fx))


def _undo_fancy_smoothing(means: np.ndarray, axis: int, iterations: int = 16) -> np.ndarray:
    """Solve (s[i-1] + 6 s[i] + s[i+1]) / 8 = means[i] along `axis` (edges replicated): the
    pair means of libjpeg's 'fancy' (triangle) 2x upsampling of stored samples s. Jacobi
    iterations; the system is diagonally dominant (error / 3 per iteration, so 16 of them
    leave 3^-16 of the first error: below float32's resolution)."""
    if means.shape[axis] < 2:
        return means
    eight_m = np.ascontiguousarray(np.moveaxis(means, axis, 0) * 8)  # along the first axis
    s = eight_m / 8
    neighbours = np.empty_like(s)
    for _ in range(iterations):
        neighbours[1:] = s[:-1]
        neighbours[0] = s[0]
        neighbours[:-1] += s[1:]
        neighbours[-1] += s[-1]
        np.subtract(eight_m, neighbours, out=s)
        s *= 1 / 6
    return np.moveaxis(s, 0, axis)


def _stored_chroma(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The decoder's stored (subsampled) chroma, recovered from a decoded full-resolution
    plane: cell means undo the upsampling's averaging only up to its [1, 6, 1] / 8
    smoothing along each subsampled axis, which is inverted here."""
    means = _down(plane, fy, fx)
    if fy == 2:
        means = _undo_fancy_smoothing(means, 0)
    if fx == 2:
        means = _undo_fancy_smoothing(means, 1)
    return means.astype(np.float32)


STRIP = 256  # rows projected at a time, shared by the workers (a multiple of 16, the
# largest JPEG MCU)
MARGIN = 16  # rows of context above and below a strip (a multiple of 16): 8 rows of 4:2:0
# chroma, over which the read-back's reach decays by 6^-8


def project(restored: np.ndarray, decoded: np.ndarray, tables: JpegTables,
            strip: int = STRIP, workers: int = 1) -> np.ndarray:
    """`restored` (uint8, HxWx1 or HxWx3) made consistent with the JPEG whose decoded pixels
    are `decoded` (same shape) and whose tables are `tables`; uint8, same shape.

    Big images go in horizontal strips of `strip` rows (with MARGIN rows of context, on the
    MCU grid), so memory stays bounded; the result is the same as in one piece (blocks never
    straddle a strip, and the chroma read-back's reach decays by ~6x a row). `workers`
    threads project strips at once (numpy lets go of the GIL in its array work), each
    strip `strip / workers` rows, so memory stays that of one `strip`; the result does not
    depend on them but for rounding ties."""
    if restored.shape != decoded.shape:
        raise ValueError(f"shapes differ: {restored.shape} vs {decoded.shape}")
    if tables.lossless_but_rounding:
        return decoded.copy()
    h = restored.shape[0]
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
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
            list(pool.map(one_strip, starts))  # list(): re-raises a strip's error here
    else:
        for y0 in starts:
            one_strip(y0)
    return out


def _project_piece(restored: np.ndarray, decoded: np.ndarray,
                   tables: JpegTables) -> np.ndarray:
    r = restored.astype(np.float32)
    d = decoded.astype(np.float32)
    luma = np.asarray(tables.luma, np.float64)
    if r.shape[2] == 1 or tables.chroma is None:
        # grey JPEG (restored as grey, or as RGB by a colour model: project the mean level)
        r_grey, d_grey = r.mean(axis=2), d.mean(axis=2)
        delta = _project_plane(r_grey, d_grey, luma) - r_grey
        return np.clip(np.round(r + delta[..., None]), 0, 255).astype(np.uint8)

    r_ycc = r @ _TO_YCC32 + _OFFSET
    d_ycc = d @ _TO_YCC32 + _OFFSET
    out = r_ycc.copy()
    out[..., 0] = _project_plane(r_ycc[..., 0], d_ycc[..., 0], luma)
    chroma = np.asarray(tables.chroma, np.float64)
    fy, fx = _chroma_factors(tables.subsampling)
    for c in (1, 2):
        small_r = _down(r_ycc[..., c], fy, fx)
        small_d = _stored_chroma(d_ycc[..., c], fy, fx)
        delta = _project_plane(small_r, small_d, chroma) - small_r
        full = np.repeat(np.repeat(delta, fy, axis=0), fx, axis=1)
        out[: full.shape[0], : full.shape[1], c] += full
    rgb = (out - _OFFSET) @ _FROM_YCC32
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
