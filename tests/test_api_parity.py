"""`Model.restore` on a file or a PIL image does what `fbcnn restore` does to that file
(issue 28): same pixels, upright, ICC profile and EXIF carried; `Result.save` and the CLI's
outputs keep them (EXIF orientation reset to 1)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_photo
from PIL import Image, ImageCms

from fbcnn.engine.model import Result, load_model
from fbcnn.frontends.cli import main
from fbcnn.images.files import ImageError, read_image, write_image
from fbcnn.jpeg.tables import compress

MAKE, DATETIME, SHOT = 0x010F, 0x0132, 0x9003  # Make, DateTime (IFD0), DateTimeOriginal
ORIENTATION, EXIF_IFD = 0x0112, 0x8769
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
STORED = (48, 64)  # rows, columns of the pixels as the files store them


def phone_exif(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "TestCam"
    exif[ORIENTATION] = orientation
    exif[DATETIME] = "2024:05:06 07:08:09"
    exif.get_ifd(EXIF_IFD)[SHOT] = "2024:05:06 07:08:09"
    return exif.tobytes()


def phone_jpeg(path: Path, orientation: int = 6, channels: int = 3) -> Path:
    """A JPEG as a phone writes it: stored sideways with EXIF orientation, an ICC profile,
    EXIF Make / DateTime (IFD0) / DateTimeOriginal (Exif IFD)."""
    pixels = make_photo(*STORED, channels=channels, seed=3)
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    image.save(path, quality=30, icc_profile=ICC, exif=phone_exif(orientation))
    return path


def cli_restore(path: Path, outdir: Path, *args: str) -> np.ndarray:
    result = CliRunner().invoke(main, ["restore", str(path), "-o", str(outdir), *args])
    assert result.exit_code == 0, result.output
    with Image.open(outdir / f"{path.stem}.png") as out:
        return np.asarray(out)


def assert_metadata(path: Path) -> None:
    """ICC profile and EXIF of the phone JPEG, orientation 1, in the file at `path`."""
    with Image.open(path) as image:
        assert image.info.get("icc_profile") == ICC
        exif = image.getexif()
        assert exif.get(MAKE) == "TestCam"
        assert exif.get(DATETIME) == "2024:05:06 07:08:09"
        assert exif.get_ifd(EXIF_IFD).get(SHOT) == "2024:05:06 07:08:09"
        assert exif.get(ORIENTATION) == 1


@pytest.fixture(scope="module")
def color():
    return load_model("color", device="cpu")


def test_a_path_is_restored_as_the_cli_restores_that_file(tmp_path, color) -> None:
    """Was: TypeError 'expected a numpy array or PIL image, got str'. The API result of a
    path (str or Path) and of the PIL image opened from it are the CLI's output pixels."""
    path = phone_jpeg(tmp_path / "photo.jpg")
    expected = cli_restore(path, tmp_path / "cli")
    for given in (path, str(path)):
        result = color.restore(given)
        assert isinstance(result.image, Image.Image)
        assert np.array_equal(np.asarray(result.image), expected)
    with Image.open(path) as opened:
        assert np.array_equal(np.asarray(color.restore(opened).image), expected)


def test_grey_and_alpha_files_match_the_cli(tmp_path, color) -> None:
    """A grey JPEG (the CLI picks the grey model) stays grey; a PNG with alpha keeps it."""
    grey = phone_jpeg(tmp_path / "grey.jpg", orientation=1, channels=1)
    out = load_model("gray", device="cpu").restore(grey)
    assert out.image.mode == "L"
    assert np.array_equal(np.asarray(out.image), cli_restore(grey, tmp_path / "cli"))
    rgba = Image.fromarray(compress(make_photo(*STORED, seed=4), 25)).convert("RGBA")
    alpha = np.tile(np.arange(STORED[1], dtype=np.uint8) * 4, (STORED[0], 1))
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "alpha.png")
    out = color.restore(tmp_path / "alpha.png")
    assert out.image.mode == "RGBA" and np.array_equal(np.asarray(out.image)[..., 3], alpha)
    cli = cli_restore(tmp_path / "alpha.png", tmp_path / "cli", "--not-jpeg", "restore")
    assert np.array_equal(np.asarray(out.image), cli)


def test_orientation_6_comes_back_upright(tmp_path, color) -> None:
    """Was: a PIL image opened from a turned JPEG came back sideways (and a path failed)."""
    path = phone_jpeg(tmp_path / "photo.jpg")
    with Image.open(path) as opened:
        assert np.asarray(opened).shape[:2] == STORED
        from_pil = color.restore(opened)
    upright = (STORED[1], STORED[0])
    assert np.asarray(from_pil.image).shape[:2] == upright
    assert np.asarray(color.restore(path).image).shape[:2] == upright


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_result_save_keeps_icc_and_exif(tmp_path, color, suffix: str) -> None:
    """Was: no Result.save, and no ICC profile / EXIF on the result. Orientation is 1 in
    the file written (its pixels are upright); the image's info carries both too."""
    path = phone_jpeg(tmp_path / "photo.jpg")
    with Image.open(path) as opened:
        results = [color.restore(path), color.restore(opened)]
    for result in results:
        written = result.save(tmp_path / f"out{suffix}")
        assert written == tmp_path / f"out{suffix}"
        assert_metadata(written)
        with Image.open(written) as back:
            assert back.size == result.image.size == (STORED[0], STORED[1])
        assert result.image.info["icc_profile"] == ICC
        info = Image.Exif()
        info.load(result.image.info["exif"])
        assert info[MAKE] == "TestCam" and info[ORIENTATION] == 1


def test_user_saves_of_the_pil_result_keep_the_metadata(tmp_path, color) -> None:
    result = color.restore(phone_jpeg(tmp_path / "photo.jpg"))
    result.image.save(tmp_path / "own.png", exif=result.image.info["exif"])  # ICC by itself
    assert_metadata(tmp_path / "own.png")


def test_result_save_never_overwrites_the_input(tmp_path, color) -> None:
    path = phone_jpeg(tmp_path / "photo.jpg")
    before = path.read_bytes()
    with Image.open(path) as opened:
        results = [color.restore(path), color.restore(opened)]
    for result in results:
        with pytest.raises(ImageError, match="refusing to overwrite"):
            result.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["photo.jpg"]  # no temp file left


def test_array_results_save_too(tmp_path, color) -> None:
    result = color.restore(compress(make_photo(*STORED), 30))
    assert isinstance(result, Result) and result.icc_profile is None and result.exif is None
    with Image.open(result.save(tmp_path / "a")) as back:  # no suffix: PNG
        assert back.format == "PNG" and np.array_equal(np.asarray(back), result.image)


def test_cli_png_keeps_exif_with_orientation_1(tmp_path) -> None:
    """Was: `fbcnn restore` dropped the EXIF (camera, dates) from its PNG outputs."""
    path = phone_jpeg(tmp_path / "photo.jpg")
    cli_restore(path, tmp_path / "cli")
    assert_metadata(tmp_path / "cli" / "photo.png")


def test_exif_is_carried_byte_for_byte_but_the_orientation(tmp_path) -> None:
    """Only the orientation value changes (maker notes keep their offsets); a file that was
    not turned keeps its EXIF as it is."""
    turned = read_image(phone_jpeg(tmp_path / "turned.jpg"))
    original = phone_exif(6)
    assert turned.exif is not None and len(turned.exif) == len(original)
    differ = [i for i, (a, b) in enumerate(zip(turned.exif, original, strict=True)) if a != b]
    assert len(differ) == 1 and turned.exif[differ[0]] == 1
    assert read_image(phone_jpeg(tmp_path / "upright.jpg", orientation=1)).exif == \
        phone_exif(1)
    plain = tmp_path / "plain.jpg"
    Image.fromarray(make_photo(*STORED)).save(plain)
    assert read_image(plain).exif is None


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_write_image_writes_exif(tmp_path, suffix: str) -> None:
    out = write_image(tmp_path / f"x{suffix}", make_photo(*STORED), icc_profile=ICC,
                      exif=phone_exif(1))
    assert_metadata(out)


def test_unsupported_inputs_are_refused_clearly(tmp_path, color) -> None:
    for wrong in (b"photo.jpg", 42, io.BytesIO()):
        with pytest.raises(TypeError, match=r"image file path \(str or pathlib.Path\), a PIL "
                                            r"image or a numpy array, got"):
            color.restore(wrong)
    with pytest.raises(ImageError, match="no such file"):
        color.restore(tmp_path / "missing.jpg")


def test_cmyk_jpeg_file_is_restored_as_rgb_as_the_cli_does(tmp_path, color) -> None:
    """Was: ImageError "CMYK images are not supported; convert to RGB first" from the
    API, the CLI and the app alike. Now read as RGB (through the file's CMYK profile into
    sRGB when it has one), restored close to the RGB original, the CLI's pixels."""
    from conftest import cmyk_jpeg, cmyk_profile

    from fbcnn.images.files import srgb_profile

    rgb = make_photo(*STORED, seed=5)
    plain = cmyk_jpeg(tmp_path / "plain.jpg", rgb, quality=30)
    result = color.restore(plain)
    assert result.image.mode == "RGB" and result.image.size == (STORED[1], STORED[0])
    restored = np.asarray(result.image).astype(int)
    assert np.abs(restored - rgb).mean() < 6
    assert result.icc_profile is None
    assert np.array_equal(np.asarray(result.image), cli_restore(plain, tmp_path / "cli"))
    with Image.open(plain) as opened:  # a CMYK PIL image goes the same way as its file
        assert opened.mode == "CMYK"
        assert np.array_equal(np.asarray(color.restore(opened).image),
                              np.asarray(result.image))
    profiled = cmyk_jpeg(tmp_path / "profiled.jpg", rgb, quality=30, icc=cmyk_profile())
    result = color.restore(str(profiled))
    assert result.icc_profile == srgb_profile() == result.image.info["icc_profile"]
    assert np.abs(np.asarray(result.image).astype(int) - rgb).mean() < 6
    with Image.open(result.save(tmp_path / "out.jpg", quality=80)) as back:
        assert back.mode == "RGB" and back.info.get("icc_profile") == srgb_profile()


def test_result_save_quality(tmp_path, color) -> None:
    result = color.restore(phone_jpeg(tmp_path / "photo.jpg"))
    assert read_image(result.save(tmp_path / "q.jpg", quality=55)).header_qf == 55
    assert read_image(result.save(tmp_path / "d.jpg")).header_qf == 95
    small = result.save(tmp_path / "s.webp", quality=10).stat().st_size
    assert small < result.save(tmp_path / "l.webp").stat().st_size  # lossless by default
