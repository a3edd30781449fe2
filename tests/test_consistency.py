"""JPEG consistency: the projection into the file's quantisation cells."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image

from fbcnn.evaluation.metrics import psnr
from fbcnn.jpeg.consistency import JpegTables, project
from fbcnn.jpeg.tables import compress


def photo(channels: int = 3) -> np.ndarray:
    return make_photo(96, 128, channels=channels, seed=3)


@pytest.mark.parametrize("qf", [30, 90])
def test_grey_projection_keeps_the_original_and_pulls_others_towards_it(qf: int) -> None:
    clean = photo(1)
    jpeg = compress(clean, qf)
    tables = JpegTables.standard(qf, colour=False)
    # the original lies in its own cells (wrong table order or DCT would move it)
    assert np.abs(project(clean, jpeg, tables).astype(int) - clean).max() <= 1
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 6, clean.shape), 0, 255)
    noisy = noisy.round().astype(np.uint8)
    # clamping each coefficient into the cell that holds the original's can only help
    assert psnr(project(noisy, jpeg, tables), clean) > psnr(noisy, clean) + 0.1
    # the decoded JPEG is already consistent
    assert np.abs(project(jpeg, jpeg, tables).astype(int) - jpeg).max() <= 1


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_colour_projection_keeps_the_original(subsampling: str) -> None:
    clean = photo(3)
    jpeg = compress(clean, 95, subsampling)
    tables = JpegTables.standard(95, colour=True, subsampling=subsampling)
    kept = project(clean, jpeg, tables)
    # within rounding of the colour conversions (chroma cells at 4:2:0 are read back from
    # the decoder's upsampled planes)
    assert psnr(kept, clean) > 45
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 6, clean.shape), 0, 255)
    noisy = noisy.round().astype(np.uint8)
    # (chroma detail finer than the subsampling is not bound by the file)
    assert psnr(project(noisy, jpeg, tables), clean) > psnr(noisy, clean) + 0.5


@pytest.mark.parametrize(("qf", "colour", "subsampling", "kept"), [
    (100, False, None, True), (100, True, "4:4:4", True),
    (100, True, "4:2:0", False), (90, False, None, False)])
def test_a_jpeg_that_lost_only_rounding_comes_back_as_decoded(
        qf: int, colour: bool, subsampling: str | None, kept: bool) -> None:
    clean = photo(3 if colour else 1)
    jpeg = compress(clean, qf, subsampling or "4:2:0")
    tables = JpegTables.standard(qf, colour, subsampling or "4:2:0")
    assert tables.lossless_but_rounding == kept
    changed = jpeg.astype(int)  # a "restoration": a fine checkerboard on the first channel
    changed[0::2, 0::2, 0] += 3
    changed[1::2, 1::2, 0] += 3
    changed = np.clip(changed - 1, 0, 255).astype(np.uint8)
    out = project(changed, jpeg, tables)
    # every step 1, chroma whole: the decoded pixels are the answer; otherwise the cells
    # (wider than 1, or chroma subsampled) leave room for a change
    assert np.array_equal(out, jpeg) == kept


def test_tables_from_pillow() -> None:
    def opened(array: np.ndarray, **options) -> Image.Image:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="JPEG", **options)
        return Image.open(io.BytesIO(buf.getvalue()))

    from fbcnn.jpeg.tables import subsampling_of

    colour = opened(photo(3), quality=50)
    tables = JpegTables.from_pillow(colour.quantization, subsampling_of(colour))
    assert tables == JpegTables.standard(50, colour=True)
    grey = opened(photo(1)[:, :, 0], quality=50)
    tables = JpegTables.from_pillow(grey.quantization, subsampling_of(grey))
    assert tables is not None and tables.chroma is None and tables.luma[0] == 16
    assert JpegTables.from_pillow(None, None) is None


def test_model_restore_of_a_near_lossless_jpeg_stays_close(tiny_model_files) -> None:
    """A (random, tiny) network changes the image a lot; with consistency the result of a
    QF-98 JPEG stays within its quantisation cells, close to the file."""
    from fbcnn.engine.model import load_model

    buf = io.BytesIO()
    Image.fromarray(photo(3)).save(buf, format="JPEG", quality=98)
    image = Image.open(io.BytesIO(buf.getvalue()))
    decoded = np.asarray(image.convert("RGB"))
    model = load_model(tiny_model_files["color"], device="cpu")
    free = np.asarray(model.restore(image, consistency=False).image)
    bound = np.asarray(model.restore(image).image)
    assert psnr(bound, decoded) > psnr(free, decoded) + 3
    assert psnr(bound, decoded) > 40


@pytest.mark.parametrize("channels", [1, 3])
def test_strips_give_the_same_result_as_one_piece(channels: int) -> None:
    clean = make_photo(300, 96, channels=channels, seed=5)
    jpeg = compress(clean, 90)
    tables = JpegTables.standard(90, colour=channels == 3)
    noisy = np.clip(clean + np.random.default_rng(2).normal(0, 6, clean.shape), 0, 255)
    noisy = noisy.round().astype(np.uint8)
    whole = project(noisy, jpeg, tables, strip=4096)
    strips = project(noisy, jpeg, tables, strip=64)
    assert np.abs(whole.astype(int) - strips).max() <= 1
    assert np.mean(whole != strips) < 1e-3
    # strips projected by two threads at once: each lands where it belongs, unchanged
    assert np.array_equal(project(noisy, jpeg, tables, strip=64, workers=2), strips)
