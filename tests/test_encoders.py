"""JPEG encoders beyond libjpeg's IJG default (fbcnn.jpeg.encoders) and the training mixture that
draws from them (fbcnn.jpeg.degrade.EncoderMixture)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image

from fbcnn.jpeg.degrade import EncoderMixture, encoded, matched_qf, random_tables, single_jpeg
from fbcnn.jpeg.encoders import (
    MOZJPEG_TABLES,
    EncoderSpec,
    compress_with,
    encode_with,
    parse_encoder,
    scaled_table,
)
from fbcnn.jpeg.tables import compress, qf_from_tables, tables_are_ijg
from fbcnn.train.config import DataConfig
from fbcnn.train.data import PatchSampler


def tables_of(data: bytes) -> dict[int, list[int]]:
    with Image.open(io.BytesIO(data)) as im:
        return {k: list(v) for k, v in im.quantization.items()}


def sampling_of(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as im:
        return tuple(im.layer)


def test_libjpeg_spec_is_pillows_encoder() -> None:
    photo = make_photo(64, 80)
    for sub in ("4:2:0", "4:4:4"):
        pixels, qf = compress_with(EncoderSpec("libjpeg", sub), photo, 37)
        assert np.array_equal(pixels, compress(photo, 37, sub)) and qf == 37
    assert tables_are_ijg(tables_of(encode_with(EncoderSpec(), photo, 37)))


def test_mozjpeg_is_the_real_encoder_with_its_own_tables() -> None:
    photo = make_photo(64, 80)
    data = encode_with(EncoderSpec("mozjpeg"), photo, 50)
    tables = tables_of(data)
    # quality 50 is libjpeg's 100% scaling: the table written is MozJPEG's default family (3)
    assert tables[0] == list(MOZJPEG_TABLES[3][0][:64]) or \
        tables[0] == [min(v, 255) for v in MOZJPEG_TABLES[3][0]]
    assert not tables_are_ijg(tables)
    assert sampling_of(data)[0][1:3] == (2, 2)  # 4:2:0 below quality 80
    assert sampling_of(encode_with(EncoderSpec("mozjpeg", "4:4:4"), photo, 50))[0][1:3] == (1, 1)
    # trellis quantisation changes the file (same tables, other coefficients)
    plain = encode_with(EncoderSpec("mozjpeg", trellis=False), photo, 50)
    assert tables_of(plain) == tables and plain != data
    # a table family written through libjpeg gives the same tables as MozJPEG's
    via_libjpeg = encode_with(EncoderSpec("libjpeg", quant_table=2), photo, 70)
    assert tables_of(via_libjpeg)[0] == tables_of(
        encode_with(EncoderSpec("mozjpeg", quant_table=2), photo, 70))[0]
    grey = compress_with(EncoderSpec("mozjpeg"), photo[:, :, :1].copy(), 40)[0]
    assert grey.shape == (64, 80, 1)


def test_jpegli_writes_its_own_tables() -> None:
    photo = make_photo(64, 80)
    data = encode_with(EncoderSpec("jpegli"), photo, 30)
    assert not tables_are_ijg(tables_of(data))
    grey, qf = compress_with(EncoderSpec("jpegli"), photo[:, :, :1].copy(), 30)
    assert grey.shape == (64, 80, 1) and 1 <= qf <= 100


def test_scaled_table_is_libjpegs_quality_scaling() -> None:
    base = MOZJPEG_TABLES[0][0]
    ijg = tables_of(encode_with(EncoderSpec(), make_photo(16, 16), 23))[0]
    assert scaled_table(base, 23) == ijg
    assert scaled_table(base, 50) == [min(v, 255) for v in base]
    assert min(scaled_table(base, 100)) == 1 and max(scaled_table((255,) * 64, 1)) == 255


def test_parse_encoder() -> None:
    assert parse_encoder("libjpeg") == EncoderSpec()
    assert parse_encoder("libjpeg:4:4:4") == EncoderSpec("libjpeg", "4:4:4")
    assert parse_encoder("mozjpeg:4:4:4:table=2:notrellis") == EncoderSpec(
        "mozjpeg", "4:4:4", quant_table=2, trellis=False)
    for bad in ("gif", "mozjpeg:table=x", "mozjpeg:table=9", "mozjpeg:4:2:2", "jpegli:4:4:4",
                "libjpeg:fast", "libjpeg:4:4:4:4:2:0", "mozjpeg:4:4:4table=2", "jpegli:table=2",
                "libjpeg:notrellis"):
        with pytest.raises(ValueError) as info:
            parse_encoder(bad)
        assert "\n" not in str(info.value)


def test_tables_are_ijg_tells_scaled_ijg_tables_from_others() -> None:
    photo = make_photo(16, 16)
    for q in (5, 50, 77, 100):
        assert tables_are_ijg(tables_of(encode_with(EncoderSpec(), photo, q)))
    assert tables_are_ijg({0: tables_of(encode_with(EncoderSpec(), photo, 40))[0]})
    own = tables_of(encode_with(EncoderSpec("libjpeg", base_tables=((20,) * 64, (30,) * 64)),
                                photo, 50))
    assert own == {0: [20] * 64, 1: [30] * 64} and not tables_are_ijg(own)


def test_matched_qf_is_the_libjpeg_quality_of_equal_damage() -> None:
    photo = make_photo(80, 80)
    for q in (10, 35, 70):  # libjpeg matches itself
        assert abs(matched_qf(compress(photo, q), photo) - q) <= 2
    # another encoder: libjpeg damages as much at the label, more just below it
    moz = compress_with(EncoderSpec("mozjpeg"), photo, 30)[0]
    label = matched_qf(moz, photo)

    def mse(x: np.ndarray) -> float:
        return float(np.mean((x.astype(np.float64) - photo) ** 2))

    assert mse(compress(photo, label)) <= mse(moz) < mse(compress(photo, label - 1))


def test_encoded_labels() -> None:
    photo = make_photo(72, 72)
    assert encoded(photo, 33, None)[1] == 33
    assert encoded(photo, 33, EncoderSpec("libjpeg", "4:4:4"))[1] == 33
    pixels, label = encoded(photo, 33, EncoderSpec("jpegli"))
    assert label == matched_qf(pixels, photo)


def test_random_tables_are_outside_the_ijg_family() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        luma, chroma = random_tables(rng)
        assert len(luma) == len(chroma) == 64
        assert 1 <= min(luma) and max(luma) <= 419  # MozJPEG's families reach 419
        assert not tables_are_ijg({0: scaled_table(luma, 50), 1: scaled_table(chroma, 50)}) \
            or luma == MOZJPEG_TABLES[0][0]


def test_mixture_draws_every_configured_encoder() -> None:
    mixture = EncoderMixture.from_config({"libjpeg": 1, "tables": 1, "mozjpeg": 1, "jpegli": 1},
                                         {"4:2:0": 1, "4:4:4": 1})
    rng = np.random.default_rng(1)
    drawn = [mixture.draw(rng) for _ in range(200)]
    names = {d.name for d in drawn}
    assert names == {"libjpeg", "mozjpeg", "jpegli"}
    assert any(d.base_tables is not None for d in drawn)
    assert {d.subsampling for d in drawn if d.name == "libjpeg"} == {"4:2:0", "4:4:4"}
    assert EncoderMixture.from_config(None, None) is None
    with pytest.raises(ValueError, match="unknown encoder"):
        EncoderMixture.from_config({"webp": 1}, None)


def test_unconfigured_sampler_draws_as_before() -> None:
    """No `encoders` in a config: the same patches as the recipe before the mixture (the
    older configs' resumes depend on it)."""
    images = [make_photo(120, 120, seed=s) for s in range(2)]
    config = DataConfig(patch_size=32, batch_size=4, clean_probability=0.0)
    batch = PatchSampler(config, images).sample(np.random.default_rng(3))
    rng = np.random.default_rng(3)
    sampler = PatchSampler(config, images)
    expected = []
    for _ in range(4):
        patch = sampler._clean_patch(rng)
        rng.random()
        qf = sampler.qfs.draw(rng)
        expected.append(single_jpeg(patch, 32, qf, rng).degraded)
    got = (batch.degraded.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(got, np.stack(expected))


def test_mixed_sampler_labels_other_encoders_by_matched_qf() -> None:
    images = [make_photo(120, 120, seed=s) for s in range(2)]
    config = DataConfig(patch_size=32, batch_size=16, encoders={"mozjpeg": 1.0},
                        clean_probability=0.0)
    batch = PatchSampler(config, images).sample(np.random.default_rng(0))
    assert batch.qf_mask.sum() == 16 and batch.degraded.shape == (16, 3, 32, 32)
    qfs = 100 - 100 * batch.qf_target
    assert float(qfs.min()) >= 1 and float(qfs.max()) <= 100
    assert qf_from_tables({0: scaled_table(MOZJPEG_TABLES[3][0], 50)}) != 50  # not IJG's own


def test_bad_mixtures_fail_before_training() -> None:
    from fbcnn.train.loop import check_validation_encoders

    for encoders, subsampling in (({"mozjpeg": -1, "libjpeg": 1}, None), ({"libjpeg": 0}, None),
                                  (None, {"420": 1})):
        with pytest.raises(ValueError):
            EncoderMixture.from_config(encoders, subsampling)
    with pytest.raises(ValueError):
        check_validation_encoders(["libjpeg", "mozjpg"])
    check_validation_encoders(["libjpeg", "mozjpeg:table=2", "jpegli"])
