"""The tables' floor on the QF fed to a single JPEG (`fbcnn.jpeg.qf.single_jpeg_qf`): the
rule, jpegli's files raised to their jpegli quality rather than their tables' QF, and that
`fbcnn restore`, `inspect` and `evaluate` all apply it."""

from __future__ import annotations

import importlib.util
import io
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image

from fbcnn.frontends.cli import main
from fbcnn.jpeg.qf import (
    JPEGLI_FLOOR_MAX,
    JPEGLI_TABLES,
    TABLES_FLOOR_MAX,
    jpegli_quality,
    single_jpeg_qf,
    tables_floor,
)
from fbcnn.jpeg.tables import _standard_tables, qf_from_tables


def ijg(qf: int) -> tuple[list[int], list[int]]:
    t = _standard_tables()[qf - 1].astype(int)
    return t[0].tolist(), t[1].tolist()


def jpegli(quality: int) -> list[list[int]]:
    return json.loads(JPEGLI_TABLES.read_text())["tables"][str(quality)]


def test_the_rule() -> None:
    luma, chroma = ijg(60)
    assert single_jpeg_qf(41.5, 60, luma, chroma) == 60.0  # read below: the tables' QF
    assert single_jpeg_qf(63.0, 60, luma, chroma) is None  # read above: the reading
    assert single_jpeg_qf(60.0, 60, luma, chroma) is None
    assert single_jpeg_qf(41.5, 60, luma) == 60.0  # grey
    assert single_jpeg_qf(36.0, 60, luma) == 60.0  # at TABLES_FLOOR_MIN_SHARE of it
    assert single_jpeg_qf(35.9, 60, luma) is None  # far below: an earlier compression
    high = ijg(TABLES_FLOOR_MAX + 2)
    assert single_jpeg_qf(70.0, TABLES_FLOOR_MAX + 2, *high) is None  # near-lossless range
    assert single_jpeg_qf(41.5, None, luma, chroma) is None
    assert single_jpeg_qf(41.5, 60, None) is None
    luma, chroma = jpegli(30)
    assert jpegli_quality(luma, chroma) == 30 == jpegli_quality(luma)
    # jpegli: its quality, not its tables' QF (67)
    assert single_jpeg_qf(25.0, 67, luma, chroma) == 30.0
    assert single_jpeg_qf(45.0, 67, luma, chroma) is None  # read above its quality
    assert single_jpeg_qf(17.9, 67, luma) is None  # below 0.6 of it
    over = jpegli(JPEGLI_FLOOR_MAX + 5)
    assert tables_floor(qf_from_tables({0: over[0], 1: over[1]}), *over) is None
    assert single_jpeg_qf(70.0, 89, *over) is None  # above JPEGLI_FLOOR_MAX: the reading
    assert jpegli_quality(*ijg(30)) is None and jpegli_quality(ijg(30)[0]) is None


def test_jpegli_floors_stay_within_the_tables_floor_range() -> None:
    """What lets a caller skip the reading for tables above TABLES_FLOOR_MAX (the page, and
    `engine.analysis`): no jpegli quality with a floor writes tables above it."""
    for quality in range(1, JPEGLI_FLOOR_MAX + 1):
        luma, chroma = jpegli(quality)
        assert jpegli_quality(luma, chroma) == quality == jpegli_quality(luma)
        for tables in ({0: luma, 1: chroma}, {0: luma}):
            assert qf_from_tables(tables) <= TABLES_FLOOR_MAX


@pytest.mark.skipif(importlib.util.find_spec("pyjpegli") is None, reason="no pyjpegli")
def test_jpegli_tables_file_is_what_jpegli_writes() -> None:
    from fbcnn.jpeg.encoders import encode_with, parse_encoder

    image = make_photo(40, 56, seed=3)
    for quality in (7, 30, 62, 91):
        with Image.open(io.BytesIO(encode_with(parse_encoder("jpegli"), image, quality))) as im:
            found = im.quantization
        assert [list(found[k]) for k in sorted(found)] == jpegli(quality)


@pytest.fixture
def low_reading(tiny_named_models, monkeypatch):
    """The tiny models read every image as QF 45."""
    from fbcnn.engine.model import Model

    monkeypatch.setattr(Model, "predict_qf", lambda self, pixels, grid=8: 45.0)


def write(path, qtables=None, quality=60):
    options = {"qtables": qtables} if qtables else {"quality": quality}
    Image.fromarray(make_photo(48, 64, seed=1)).save(path, "JPEG", subsampling=0, **options)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_restore_and_inspect_feed_the_tables_qf(low_reading, tmp_path) -> None:
    jpg = write(tmp_path / "a.jpg", quality=60)
    result = run("restore", jpg, "-o", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "predicted QF 45.0, used QF 60.0" in result.output
    info = json.loads(run("inspect", jpg, "--json").output)
    assert info["predicted_qf"] == 45.0 and info["fed_qf"] == 60.0
    assert "(restored with QF 60)" in run("inspect", jpg).output


def test_jpegli_is_raised_to_its_quality_and_high_tables_keep_the_reading(low_reading,
                                                                          tmp_path) -> None:
    def fed(name: str, tables: list[list[int]]) -> tuple[str, str]:
        jpg = write(tmp_path / name, qtables=tables)
        result = run("restore", jpg, "-o", tmp_path / "o")
        assert result.exit_code == 0, result.output
        return re.search(r"predicted QF (\S+), used QF (\S+) ", result.output).groups()

    # jpegli quality 30 writes tables of IJG QF 67: read 45, below 67 but above 30
    assert 0.6 * 67 <= 45 < 67 and single_jpeg_qf(45.0, 67, *ijg(67)) == 67
    assert fed("jpegli30.jpg", jpegli(30)) == ("45.0", "45.0")
    assert fed("jpegli60.jpg", jpegli(60)) == ("45.0", "60.0")  # its quality, not 80
    read, used = fed("q95.jpg", list(ijg(95)))  # no floor: the restore's own reading
    assert read == used


def test_evaluate_feeds_what_restore_feeds(tmp_path, monkeypatch) -> None:
    """`fbcnn evaluate` restores as `fbcnn restore` does: the floor with correction none and
    dominant (where no double JPEG is found), not with a QF given."""
    from conftest import tiny_network

    from fbcnn.engine.restorer import Restorer
    from fbcnn.evaluation.evaluate import evaluate

    data = tmp_path / "clean"
    data.mkdir()
    Image.fromarray(make_photo(64, 64, seed=2)).save(data / "a.png")
    restorer = Restorer.of(tiny_network(3), device="cpu")
    monkeypatch.setattr(Restorer, "predict_qf", lambda self, pixels, grid=8: 45.0)
    for correction in ("none", "dominant"):
        row = evaluate(data, restorer, qfs=[60], correction=correction)["rows"][0]
        assert row["predicted_qf"] == 45.0 and row["used_qf"] == 60.0, correction
    row = evaluate(data, restorer, qfs=[60], qf_input=35)["rows"][0]
    assert row["used_qf"] == 35.0
    assert np.isfinite(row["restored"]["psnr"])
