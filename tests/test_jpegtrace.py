"""Images that were never JPEGs (fbcnn.jpeg.trace): found from the pixels, left alone by
`fbcnn restore` unless asked; JPEG compression found in PNGs, at any grid offset, with the
double-JPEG analysis run on their pixels; the analysis on a JPEG's stored grid (before its
EXIF orientation), never on images too small to judge."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

from fbcnn.engine import analysis, pipeline
from fbcnn.frontends.cli import main
from fbcnn.images.files import read_image
from fbcnn.jpeg.encoders import EncoderSpec, compress_with, encode_with
from fbcnn.jpeg.tables import compress
from fbcnn.jpeg.trace import detect

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut_qf10.jpg"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def clean_photo() -> np.ndarray:
    """A photo without JPEG traces: the example JPEG downscaled 3x (288x288)."""
    with Image.open(EXAMPLE) as im:
        return np.asarray(im.convert("RGB").resize((im.width // 3, im.height // 3),
                                                  Image.LANCZOS))


def screenshot(h: int = 200, w: int = 320) -> np.ndarray:
    im = Image.new("RGB", (w, h), (246, 247, 249))
    draw = ImageDraw.Draw(im)
    draw.rectangle((8, 8, w - 9, 40), fill=(47, 111, 222))
    font = ImageFont.load_default(size=15)
    for k in range(6):
        draw.text((12, 50 + 22 * k), "The quick brown fox jumps over 0123", fill=(20, 30, 40),
                  font=font)
    return np.asarray(im)


def test_decoded_jpegs_are_found_at_their_grid_offset(clean_photo) -> None:
    for spec in (EncoderSpec(), EncoderSpec("libjpeg", "4:4:4"), EncoderSpec("mozjpeg"),
                 EncoderSpec("jpegli")):
        for quality in (15, 50, 80):
            decoded = compress_with(spec, clean_photo, quality)[0]
            verdict = detect(decoded[3:, 5:])
            assert verdict.found and verdict.judged, (spec, quality, verdict)
            # the blocks of a crop by (3, 5) start at (5, 3)
            if quality >= 50:
                assert verdict.offset == (5, 3), (spec, quality, verdict)
    grey = compress(clean_photo[:, :, :1].copy(), 40)[:, :, 0]
    assert detect(grey[1:, 6:]).found


def test_never_jpeg_images_are_not(clean_photo) -> None:
    ramp = np.linspace(0, 255, 300)[None, :, None].repeat(160, axis=0).repeat(3, axis=2)
    for pixels in (clean_photo, screenshot(), ramp.round().astype(np.uint8),
                   np.tile(screenshot(40, 40), (5, 5, 1))):  # a tiled pattern repeats blocks
        verdict = detect(pixels)
        assert not verdict.found and verdict.judged, verdict
    small = detect(compress(clean_photo[:48, :48].copy(), 20))
    assert not small.found and not small.judged


def write_png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def test_restore_leaves_never_jpeg_inputs_alone(tiny_named_models, tmp_path,
                                                clean_photo) -> None:
    (tmp_path / "in").mkdir()
    shot = write_png(tmp_path / "in" / "shot.png", screenshot())
    decoded = write_png(tmp_path / "in" / "decoded.png",
                        compress(clean_photo, 20)[2:, 7:].copy())
    out = tmp_path / "out"
    result = run("restore", tmp_path / "in", "-o", out)
    assert result.exit_code == 0, result.output
    assert "shot.png: no JPEG compression in its pixels, copied unchanged" in result.output
    assert "restored 1 of 2 image(s), copied 1 without JPEG compression unchanged" in \
        result.output
    assert np.array_equal(np.asarray(Image.open(out / "shot.png")), screenshot())
    restored = np.asarray(Image.open(out / "decoded.png"))
    assert not np.array_equal(restored, np.asarray(Image.open(decoded)))  # the network ran
    # skip: nothing written for it; restore: the network runs on it too
    result = run("restore", shot, "-o", tmp_path / "skip", "--not-jpeg", "skip")
    assert result.exit_code == 0 and "skipped (no JPEG compression" in result.output
    assert not (tmp_path / "skip" / "shot.png").exists()
    result = run("restore", shot, "-o", tmp_path / "forced", "--not-jpeg", "restore")
    assert result.exit_code == 0 and "copied" not in result.output
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "forced" / "shot.png")),
                              screenshot())
    # a JPEG file is always restored, whatever its pixels
    photo_jpeg = tmp_path / "shot.jpg"
    Image.fromarray(screenshot()).save(photo_jpeg, quality=95)
    result = run("restore", photo_jpeg, "-o", tmp_path / "jpeg")
    assert result.exit_code == 0 and "copied" not in result.output


def test_inspect_finds_the_first_qf_of_a_png_saved_double_jpeg(tiny_named_models,
                                                               tmp_path) -> None:
    """The example is a QF-10 JPEG: shifted by (3, 2), saved at QF 60, cropped by (1, 1) and
    written as PNG, the analysis of its pixels finds QF1 10 on the grid the crops left."""
    with Image.open(EXAMPLE) as im:
        first = np.asarray(im.convert("RGB"))
    second = compress(np.ascontiguousarray(first[3:, 2:]), 60)[1:, 1:]
    png = write_png(tmp_path / "double.png", np.ascontiguousarray(second))
    info = json.loads(run("inspect", "--json", png).output)
    assert info["jpeg_trace"]["found"] and info["jpeg_trace"]["offset"] == [7, 7]
    double = info["double"]
    assert double["detected"] and double["kind"] == "non-aligned"
    assert abs(double["qf1"] - 10) <= 5
    # the first grid: shifted by (3, 2), then (1, 1): its blocks start at (4, 5)
    assert double["offset"] == [4, 5]


def exif_jpeg(data: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    payload = payload if payload.startswith(b"Exif") else b"Exif\x00\x00" + payload
    return data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_unorient_undoes_every_exif_orientation(tmp_path, orientation) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), np.uint8)
    path = tmp_path / "o.jpg"
    path.write_bytes(exif_jpeg(encode_with(EncoderSpec("libjpeg", "4:4:4"), stored, 100),
                               orientation))
    image = read_image(path)
    with Image.open(path) as im:
        plain = np.asarray(im.convert("RGB"))  # Pillow does not apply the orientation
    assert image.transposed == (orientation != 1)
    assert np.array_equal(analysis.stored_pixels(image), plain)


def test_double_analysis_reads_the_stored_grid(tmp_path, clean_photo) -> None:
    """A single JPEG of odd size shown turned (EXIF 6): analysed on the turned pixels, its
    grid looks shifted and it read as a double JPEG; on its stored grid it is single."""
    with Image.open(EXAMPLE) as im:
        photo = np.asarray(im.convert("RGB").resize((im.width // 2, im.height // 2),
                                                    Image.LANCZOS))[:213, :251]
    path = tmp_path / "turned.jpg"
    path.write_bytes(exif_jpeg(encode_with(EncoderSpec(), np.ascontiguousarray(photo), 20), 6))
    image = read_image(path)
    assert image.transposed and image.pixels.shape[:2] == (251, 213)
    verdict = analysis.analyse_double(image)
    assert verdict is not None and not verdict.detected


def test_double_analysis_declines_tiny_images(tmp_path) -> None:
    path = tmp_path / "tiny.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)).save(
        path, quality=30)
    assert analysis.analyse_double(read_image(path)) is None


def test_no_aligned_claim_on_tables_outside_ijg(tmp_path, clean_photo, monkeypatch) -> None:
    """An aligned verdict on a file whose tables are not IJG's is withdrawn (jpegli's
    adaptive quantisation looks like an earlier, stronger aligned JPEG)."""
    from fbcnn.jpeg import recompress

    found = recompress.DoubleJpegVerdict(True, "aligned", 20, (0, 0), 0.9, 40)
    monkeypatch.setattr(recompress, "analyse", lambda *a, **k: found)
    path = tmp_path / "jpegli.jpg"
    path.write_bytes(encode_with(EncoderSpec("jpegli"), clean_photo, 40))
    verdict = analysis.analyse_double(read_image(path))
    assert verdict is not None and not verdict.detected and verdict.kind == "single"
    path = tmp_path / "ijg.jpg"
    path.write_bytes(encode_with(EncoderSpec(), clean_photo, 40))
    assert analysis.analyse_double(read_image(path)) is found


def test_inspect_names_tables_outside_ijg(tiny_named_models, tmp_path, clean_photo) -> None:
    path = tmp_path / "moz.jpg"
    path.write_bytes(encode_with(EncoderSpec("mozjpeg"), clean_photo, 30))
    result = run("inspect", path)
    assert result.exit_code == 0 and "tables: not IJG, equivalent QF 27" in result.output
    with Image.open(io.BytesIO(encode_with(EncoderSpec(), clean_photo, 30))) as im:
        im.save(tmp_path / "ijg.jpg", quality=30)
    assert "not IJG" not in run("inspect", tmp_path / "ijg.jpg").output
    path = tmp_path / "jpegli.jpg"
    path.write_bytes(encode_with(EncoderSpec("jpegli"), clean_photo, 60))
    result = run("inspect", "--json", path)
    assert json.loads(result.output)["tables"] == {"ijg": False, "equivalent_qf": 80,
                                                   "jpegli_quality": 60}
    assert "tables: not IJG, jpegli quality 60, equivalent QF 80" in run("inspect", path).output


def test_bad_not_jpeg_values_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="not_jpeg must be one of"):
        pipeline.RestoreOptions(not_jpeg="skp")
    png = write_png(tmp_path / "shot.png", screenshot())
    result = CliRunner().invoke(main, ["restore", str(png), "-o", str(tmp_path / "out"),
                                       "--not-jpeg", "skp"])
    assert result.exit_code == 2 and "Invalid value for '--not-jpeg'" in result.output
    assert not (tmp_path / "out").exists()
