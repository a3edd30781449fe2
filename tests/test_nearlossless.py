"""Near-lossless JPEGs keep only part of the correction (`fbcnn.jpeg.nearlossless`)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import make_photo, tiny_network
from PIL import Image

from fbcnn.engine.model import Model
from fbcnn.jpeg import nearlossless
from fbcnn.jpeg.consistency import _TO_YCC, JpegTables


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ _TO_YCC[0]


def test_strengths_fade_from_qf_90_to_95() -> None:
    assert nearlossless.strengths(50) == (1.0, 1.0)
    assert nearlossless.strengths(90) == (1.0, 1.0)
    mid = nearlossless.strengths(92.5)
    assert mid[0] == pytest.approx(0.5) and 0.25 < mid[1] < 1.0
    assert nearlossless.strengths(95) == (0.0, nearlossless.CHROMA_NEAR_LOSSLESS)
    assert nearlossless.strengths(98) == (0.0, nearlossless.CHROMA_NEAR_LOSSLESS)
    # chroma that lost only its subsampling keeps more
    assert nearlossless.strengths(98, chroma_steps_one=True) == (0.0, 0.5)
    assert nearlossless.strengths(100) == (0.0, 0.5)
    shares = [nearlossless.strengths(q)[0] for q in np.arange(85, 100, 0.5)]
    assert (np.diff(shares) <= 0).all()  # never more luma at a higher QF


def test_the_tables_decide_else_the_reading() -> None:
    assert nearlossless.quality(93.6, 95) == 95.0  # a low reading of a QF-95 file
    assert nearlossless.quality(66.0, 100) == 100.0
    assert nearlossless.quality(96.5, None) == 96.5  # no tables: the reading


def test_keep_share_splits_the_change_into_luma_and_chroma() -> None:
    rng = np.random.default_rng(0)
    decoded = rng.integers(20, 236, (40, 30, 3)).astype(np.uint8)
    restored = np.clip(decoded + rng.integers(-20, 21, decoded.shape), 0, 255).astype(np.uint8)
    assert nearlossless.keep_share(restored, decoded, 1.0, 1.0) is restored
    assert np.array_equal(nearlossless.keep_share(restored, decoded, 0.0, 0.0), decoded)
    chroma_only = nearlossless.keep_share(restored, decoded, 0.0, 1.0)
    # the luma stays the decoded one (up to the RGB rounding), the colour moves
    assert np.abs(luma(chroma_only) - luma(decoded)).max() <= 1.0
    assert np.abs(chroma_only.astype(int) - decoded).max() > 5
    half = nearlossless.keep_share(restored, decoded, 0.5, 0.5).astype(int)
    assert np.abs(half - (decoded.astype(int) + restored) / 2).max() <= 1.0
    grey = decoded[..., :1]
    assert np.array_equal(nearlossless.keep_share(restored[..., :1], grey, 0.0, 1.0), grey)
    tall = np.repeat(decoded, 40, axis=0)  # more rows than a strip: the same, piece by piece
    tall_restored = np.repeat(restored, 40, axis=0)
    assert np.array_equal(nearlossless.keep_share(tall_restored, tall, 0.3, 0.6),
                          np.repeat(nearlossless.keep_share(restored, decoded, 0.3, 0.6), 40,
                                    axis=0))
    with pytest.raises(ValueError, match="shapes differ"):
        nearlossless.keep_share(restored, decoded[:10], 0.5, 0.5)


def test_table_quality() -> None:
    assert JpegTables.standard(95, True).quality == 95
    assert JpegTables.standard(37, False).quality == 37
    assert JpegTables.standard(100, True).chroma_steps_one
    assert not JpegTables.standard(95, True).chroma_steps_one
    assert not JpegTables.standard(100, False).chroma_steps_one  # grey: no chroma


def reads_qf_100(channels: int = 3) -> Model:
    """A tiny model whose decoupler reads every image as QF 100 (its last layer saturated)."""
    net = tiny_network(channels)
    last = net.qf_pred[-2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-30.0)  # sigmoid ~ 0: network units (100 - QF) / 100
    return Model(net, device="cpu", tile=0)


def jpeg_file(image: np.ndarray, qf: int) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=qf)
    buf.seek(0)
    return Image.open(buf)


def test_a_near_lossless_jpeg_keeps_its_luma_unless_the_user_sets_the_qf() -> None:
    """QF 97 file: the luma comes back as the file's (a network that changes luma fails),
    the colour keeps a quarter of the change. With --qf the user chooses: the full change,
    as with near_lossless=False. A QF 20 file (its tables say 20) keeps all of it, though
    the network reads it as QF 100."""
    model = reads_qf_100()
    photo = make_photo(64, 80)
    near = jpeg_file(photo, 97)
    decoded = np.asarray(near.convert("RGB"))
    auto = model.restore(near)
    assert auto.predicted_qf > 99
    kept = np.asarray(auto.image)
    assert np.abs(luma(kept) - luma(decoded)).max() <= 1.0
    forced = np.asarray(model.restore(near, qf=auto.predicted_qf).image)
    assert np.abs(luma(forced) - luma(decoded)).max() > 1.5  # the cells at QF 97 are narrow
    assert np.array_equal(np.asarray(model.restore(near, near_lossless=False).image), forced)
    low = jpeg_file(photo, 20)
    low_auto = np.asarray(model.restore(low).image)
    low_forced = np.asarray(model.restore(low, qf=model.restore(low).predicted_qf).image)
    assert np.array_equal(low_auto, low_forced)  # the tables say 20: no fading


def test_a_double_jpeg_keeps_all_of_its_correction(tmp_path) -> None:
    """QF 20, then QF 95 on the same grid: the last tables say near-lossless, but
    `fbcnn.jpeg.recompress` finds the earlier compression (aligned: the network's own QF is fed),
    and `fbcnn restore`'s path (analysis.analyse + restore_loaded) keeps the full change."""
    from fbcnn.engine import analysis
    from fbcnn.images.files import read_image
    from fbcnn.jpeg.tables import compress

    first = compress(make_photo(200, 200, seed=3), 20)
    path = tmp_path / "double.jpg"
    Image.fromarray(first).save(path, quality=95)
    image = read_image(path)
    model = reads_qf_100()
    found = analysis.analyse(image, model, double=True)
    assert found.verdict is not None and found.verdict.kind == "aligned"
    assert found.feed_qf is None
    restored = analysis.restore_loaded(image, found).image
    tables = analysis.jpeg_tables(image)
    full = model.restore_array(image.pixels, None, found.grid, tables,
                               predicted_qf=found.predicted_qf, near_lossless=False).image
    damped = model.restore_array(image.pixels, None, found.grid, tables,
                                 predicted_qf=found.predicted_qf).image
    assert np.array_equal(restored, full) and not np.array_equal(restored, damped)
