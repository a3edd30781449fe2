"""fbcnn.images.png: PNGs that decode to the exact pixels, whatever the bands and threads."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fbcnn.images import png as pngwrite
from fbcnn.images.png import adler32_combine, band_edges, filter_rows, write_png


def _image(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (xx * 3 + yy * 2)[:, :, None] + 40 * np.arange(c)[None, None, :]
    return ((smooth + rng.integers(0, 20, (h, w, c))) % 256).astype(np.uint8)


def _encode(pixels: np.ndarray, **kwargs) -> bytes:
    f = io.BytesIO()
    write_png(f, pixels, **kwargs)
    return f.getvalue()


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(tag, data) of each chunk, each CRC checked."""
    assert data[:8] == pngwrite.SIGNATURE
    out, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        tag, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        (crc,) = struct.unpack(">I", data[i + 8 + length:i + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        out.append((tag, body))
        i += 12 + length
    return out


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
@pytest.mark.parametrize("workers", [1, 3])
def test_round_trip_exact(channels: int, mode: str, workers: int,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pngwrite, "BAND_BYTES", 500)  # many bands, several per worker
    pixels = _image(37, 29, channels)
    data = _encode(pixels, workers=workers)
    img = Image.open(io.BytesIO(data))
    assert img.mode == mode
    back = np.asarray(img).reshape(pixels.shape)
    np.testing.assert_array_equal(back, pixels)
    tags = [t for t, _ in _chunks(data)]
    assert tags[0] == b"IHDR" and tags[-1] == b"IEND" and tags.count(b"IDAT") > 2


def test_one_zlib_stream_whatever_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The IDAT data is one valid zlib stream (its Adler-32 checked by zlib) holding the
    same scanlines for 1 and 4 workers."""
    monkeypatch.setattr(pngwrite, "BAND_BYTES", 300)
    pixels = _image(50, 20, 3, seed=1)
    streams = []
    for workers in (1, 4):
        idat = b"".join(body for tag, body in _chunks(_encode(pixels, workers=workers))
                        if tag == b"IDAT")
        streams.append(zlib.decompress(idat))  # raises on a wrong Adler-32
    assert streams[0] == streams[1] == filter_rows(pixels, 0, 50).tobytes()


def test_icc_profile_chunk() -> None:
    icc = bytes(range(256)) * 3
    img = Image.open(io.BytesIO(_encode(_image(8, 8, 3), icc_profile=icc)))
    assert img.info["icc_profile"] == icc


def test_filters_pick_the_cheapest_row() -> None:
    """A row equal to the row above takes Up (all zeros); a horizontal ramp that changes
    from row to row takes Sub; a row whose every pixel is the mean of its left and upper
    neighbours takes Average (all zeros)."""
    rng = np.random.default_rng(3)
    rows = np.zeros((5, 16, 1), np.uint8)
    rows[0, :, 0] = np.arange(16) * 5
    rows[1] = rows[0]
    rows[2, :, 0] = np.arange(16) * 5 + 100
    rows[3, :, 0] = rng.integers(0, 256, 16)
    for i in range(16):
        left = int(rows[4, i - 1, 0]) if i else 0
        rows[4, i, 0] = (left + int(rows[3, i, 0])) // 2
    out = filter_rows(rows, 0, 5)
    assert list(out[[0, 1, 2, 4], 0]) == [1, 2, 1, 3]  # Sub, Up, Sub, Average
    assert not out[1, 1:].any() and not out[4, 1:].any()
    assert set(out[2, 2:]) == {5}
    # a band starting mid-image filters against the row above it, as the whole image does
    np.testing.assert_array_equal(filter_rows(rows, 2, 5), out[2:])
    decoded = np.asarray(Image.open(io.BytesIO(_encode(rows)))).reshape(rows.shape)
    np.testing.assert_array_equal(decoded, rows)  # the three filters undone by a decoder


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.bytes(70000), rng.bytes(123457)
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
    assert adler32_combine(1, zlib.adler32(b), len(b)) == zlib.adler32(b)
    assert adler32_combine(zlib.adler32(a), 1, 0) == zlib.adler32(a)


def test_band_edges_balanced_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert band_edges(1536, 6145, 2) == [0, 768, 1536]  # 9.4 MB: one band per worker
    monkeypatch.setattr(pngwrite, "BAND_BYTES", 6145 * 100)
    edges = band_edges(1536, 6145, 2)
    sizes = np.diff(edges)
    assert edges[0] == 0 and edges[-1] == 1536
    assert sizes.max() <= 100 and sizes.max() - sizes.min() <= 1
    assert (len(edges) - 1) % 2 == 0
    assert band_edges(3, 10, 8) == [0, 1, 2, 3]  # never an empty band


def test_rejects_bad_arrays() -> None:
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8),
                np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            _encode(bad)
