"""fbcnn.images.files: reading, writing and listing image files (tiny images, fast)."""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import cmyk_jpeg, cmyk_profile, make_photo
from PIL import Image

from fbcnn.images.files import (
    MIN_SIDE,
    SRGB_PROFILE_DATE,
    ImageError,
    LoadedImage,
    check_output_size,
    check_writable_folder,
    list_inputs,
    read_image,
    remove_stale_temps,
    srgb_profile,
    write_image,
)


def _rgb(h: int = 16, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, **options: object) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


def _expect_error(path: Path, match: str) -> ImageError:
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert match in message, message
    return info.value


# ------------------------------------------------------------------------- round trips


def test_round_trip_colour(tmp_path: Path) -> None:
    pixels = _rgb()
    out = write_image(tmp_path / "out.png", pixels)
    assert out == tmp_path / "out.png"
    img = read_image(out)
    assert isinstance(img, LoadedImage)
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (16, 24, 3)
    np.testing.assert_array_equal(img.pixels, pixels)
    assert img.alpha is None and not img.is_gray
    assert (img.width, img.height) == (24, 16)
    assert (img.format, img.mode) == ("PNG", "RGB")
    assert img.header_qf is None and img.subsampling is None and img.quantization is None
    img.pixels[0, 0, 0] ^= 1  # writable


def test_round_trip_grey(tmp_path: Path) -> None:
    pixels = _rgb()[:, :, :1].copy()
    img = read_image(write_image(tmp_path / "grey.png", pixels))
    assert img.is_gray and img.pixels.shape == (16, 24, 1) and img.mode == "L"
    np.testing.assert_array_equal(img.pixels, pixels)
    assert img.alpha is None


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_alpha(tmp_path: Path, channels: int) -> None:
    pixels = _rgb()[:, :, :channels].copy()
    alpha = _rgb(seed=1)[:, :, 0].copy()
    img = read_image(write_image(tmp_path / "a.png", pixels, alpha=alpha))
    assert img.mode == ("LA" if channels == 1 else "RGBA")
    np.testing.assert_array_equal(img.pixels, pixels)
    assert img.alpha is not None
    np.testing.assert_array_equal(img.alpha, alpha)


def test_round_trip_webp_lossless_and_jpeg(tmp_path: Path) -> None:
    pixels = _rgb()
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "x.webp", pixels)).pixels,
                                  pixels)
    img = read_image(write_image(tmp_path / "x.jpg", pixels, alpha=pixels[:, :, 0]))
    assert img.format == "JPEG" and img.header_qf == 95 and img.alpha is None


def test_write_jpeg_and_webp_at_the_quality_asked(tmp_path: Path) -> None:
    pixels = make_photo(48, 64)
    for q in (20, 60, 100):
        assert read_image(write_image(tmp_path / f"q{q}.jpg", pixels, quality=q)).header_qf == q
    assert read_image(write_image(tmp_path / "d.jpeg", pixels)).header_qf == 95
    sizes = {q: write_image(tmp_path / f"q{q}.webp", pixels, quality=q).stat().st_size
             for q in (10, 95)}
    assert sizes[10] < sizes[95]
    lossy = read_image(tmp_path / "q95.webp").pixels
    assert not np.array_equal(lossy, pixels) and np.abs(lossy.astype(int) - pixels).mean() < 4
    # the quality is ignored by lossless formats and checked everywhere
    assert read_image(write_image(tmp_path / "p.png", pixels, quality=10)).pixels.tobytes() == \
        pixels.tobytes()
    for bad in (0, 101, 50.5, True):
        with pytest.raises(ValueError, match="quality must be an integer in 1..100"):
            write_image(tmp_path / "bad.jpg", pixels, quality=bad)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_write_at_a_quality_keeps_icc_and_exif(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    out = write_image(tmp_path / f"o{suffix}", make_photo(32, 32), quality=50,
                      icc_profile=srgb_profile(), exif=b"Exif\0\0" + exif.tobytes())
    with Image.open(out) as back:
        assert back.info.get("icc_profile") == srgb_profile()
        assert back.getexif()[0x010F] == "TestCam"


def test_jpeg_flattens_alpha_onto_white(tmp_path: Path) -> None:
    """Was: the alpha was dropped, so transparent areas showed whatever colour they held
    (often black). Opaque pixels stay, transparent ones turn white, half ones blend."""
    pixels = np.zeros((16, 24, 3), np.uint8)  # black everywhere
    alpha = np.zeros((16, 24), np.uint8)
    alpha[:, 8:16], alpha[:, 16:] = 128, 255
    back = read_image(write_image(tmp_path / "a.jpg", pixels, alpha=alpha, quality=100))
    assert back.alpha is None
    means = [back.pixels[:, a:b].mean() for a, b in ((0, 8), (8, 16), (16, 24))]
    assert means[0] > 250 and abs(means[1] - 127) < 6 and means[2] < 5, means
    grey = read_image(write_image(tmp_path / "g.jpg", pixels[:, :, :1], alpha=alpha))
    assert grey.is_gray and grey.pixels[:, :8].mean() > 250


def test_check_output_size(tmp_path: Path) -> None:
    check_output_size(tmp_path / "ok.webp", 16383, 100)
    check_output_size(tmp_path / "big.png", 70000, 100)
    with pytest.raises(ImageError, match=r"big\.webp: cannot write a 16384x10 image as WEBP "
                                         r"\(at most 16383 pixels a side\)"):
        check_output_size(tmp_path / "big.webp", 16384, 10)
    with pytest.raises(ImageError, match="at most 65535"):
        check_output_size(tmp_path / "big.jpg", 10, 65536)


def test_write_without_suffix_is_png(tmp_path: Path) -> None:
    out = write_image(tmp_path / "noext", _rgb())
    assert out == tmp_path / "noext.png"
    assert read_image(out).format == "PNG"


def test_read_one_bit_and_1bit_to_grey(tmp_path: Path) -> None:
    path = tmp_path / "bw.png"
    Image.fromarray(_rgb()[:, :, 0] > 127).save(path)
    img = read_image(path)
    assert img.mode == "1" and img.is_gray
    assert set(np.unique(img.pixels)) <= {0, 255}


def test_exif_orientation_applied(tmp_path: Path) -> None:
    pil = Image.fromarray(_rgb(8, 16))  # 16 wide, 8 high
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    pil.save(path, quality=90, exif=exif.tobytes())
    img = read_image(path)
    assert (img.width, img.height) == (8, 16)
    assert img.header_qf == 90  # read before transposing
    assert img.quantization is not None


def test_icc_profile_carried(tmp_path: Path) -> None:
    icc = srgb_profile()
    src = _save(tmp_path / "in.png", _rgb(), icc_profile=icc)
    img = read_image(src)
    assert img.icc_profile == icc
    for name in ("out.png", "out.jpg", "out.webp"):
        out = write_image(tmp_path / name, img.pixels, icc_profile=img.icc_profile)
        assert read_image(out).icc_profile == icc, name


@pytest.mark.parametrize("qf", [10, 50, 90])
def test_header_qf(tmp_path: Path, qf: int) -> None:
    img = read_image(_save(tmp_path / "q.jpg", _rgb(), quality=qf))
    assert img.format == "JPEG" and img.header_qf == qf
    assert img.quantization is not None and sorted(img.quantization) == [0, 1]
    assert all(len(t) == 64 for t in img.quantization.values())


def test_header_qf_grey_jpeg(tmp_path: Path) -> None:
    img = read_image(_save(tmp_path / "g.jpg", _rgb()[:, :, 0], quality=30))
    assert img.is_gray and img.header_qf == 30 and img.subsampling is None


def test_header_qf_none_for_png(tmp_path: Path) -> None:
    assert read_image(_save(tmp_path / "p.png", _rgb())).header_qf is None


@pytest.mark.parametrize(("option", "expected"), [(None, "4:2:0"), (0, "4:4:4"), (1, "4:2:2")])
def test_subsampling(tmp_path: Path, option: int | None, expected: str) -> None:
    options = {} if option is None else {"subsampling": option}
    img = read_image(_save(tmp_path / "s.jpg", _rgb(), quality=75, **options))
    assert img.subsampling == expected


# ------------------------------------------------------------------------- bad inputs


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _save(tmp_path / "full.jpg", _rgb(64, 64)).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "corrupt or truncated")


def test_corrupt_bytes(tmp_path: Path) -> None:
    data = bytearray(_save(tmp_path / "ok.png", _rgb(32, 32)).read_bytes())
    data[data.find(b"IDAT") + 20] ^= 0xFF  # damaged compressed data, CRC mismatch
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt or truncated")


def test_corrupt_header(tmp_path: Path) -> None:
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(500))
    _expect_error(path, "corrupt or truncated")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    _expect_error(path, "empty file")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    _expect_error(path, "not an image")


def _png_with_size(small_png: bytes, width: int, height: int) -> bytes:
    assert small_png[12:16] == b"IHDR"
    ihdr = bytearray(small_png[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return small_png[:12] + bytes(ihdr) + crc + small_png[33:]


def test_decompression_bomb_refused_fast(tmp_path: Path) -> None:
    small = _save(tmp_path / "small.png", _rgb(8, 8)).read_bytes()
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_size(small, 100_000, 100_000))
    start = time.perf_counter()
    _expect_error(path, "100000 x 100000 is 10000.0 MP, over the limit of 200 MP")
    assert time.perf_counter() - start < 2.0


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any pixel decoding fail the test: limits must be checked on the header."""
    from PIL import ImageFile

    def refuse(self: object) -> None:
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_max_megapixels_refused_before_decoding(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # a 2000 x 1000 header on an 8x8 image: nothing of that size is ever allocated
    small = _save(tmp_path / "small.png", _rgb(8, 8)).read_bytes()
    path = tmp_path / "big.png"
    path.write_bytes(_png_with_size(small, 2000, 1000))
    _no_decoding(monkeypatch)
    with pytest.raises(ImageError) as info:
        read_image(path, max_megapixels=1.5)
    assert str(info.value) == (f"{path}: 2000 x 1000 is 2.0 MP, over the limit of 1.5 MP "
                               "(--max-megapixels)")
    with pytest.raises(ImageError, match="0.00038 MP, over the limit of 0.0001 MP"):
        read_image(_save(tmp_path / "p.png", _rgb()), max_megapixels=0.0001)
    with pytest.raises(ValueError):
        read_image(path, max_megapixels=0)


def test_max_megapixels_above_pillows_bomb_limit(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow refuses images over 2 * MAX_IMAGE_PIXELS in Image.open; our limit is the one
    # that counts, in both directions (header-only: the image is never decoded)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's check would stop at 200
    small = _save(tmp_path / "small.png", _rgb(8, 8)).read_bytes()
    path = tmp_path / "big.png"
    path.write_bytes(_png_with_size(small, 30, 20))
    with pytest.raises(ImageError, match="corrupt or truncated"):  # over Pillow's, under ours
        read_image(path)
    with pytest.raises(ImageError, match="30 x 20 is 0.0006 MP, over the limit"):
        read_image(path, max_megapixels=0.0005)


def _sof_at(data: bytes) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        if (at := data.find(marker)) > 0:
            return at
    raise AssertionError("no SOF0/SOF2")


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    at = _sof_at(data)
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def test_forged_jpeg_size_refused_before_decoding(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a 3 KB JPEG whose SOF says 12000 x 12000: libjpeg would pad the missing blocks with
    # grey and hand over a 144-MP image (seconds and ~3 GB to read, hours to restore)
    small = _save(tmp_path / "small.jpg", _rgb(48, 48), quality=50).read_bytes()
    path = tmp_path / "forged.jpg"
    path.write_bytes(_jpeg_with_size(small, 12000, 12000))
    _no_decoding(monkeypatch)
    start = time.perf_counter()
    _expect_error(path, "a 12000x12000 JPEG cannot fit in")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_big_flat_jpegs_are_not_mistaken_for_forged_ones(tmp_path: Path, mode: str) -> None:
    # the most compressible JPEGs there are (flat, QF 1, progressive, optimised Huffman
    # tables) still spend over a bit per 8x8 block: the size check leaves them alone
    side = 2048
    path = tmp_path / "flat.jpg"
    Image.new(mode, (side, side), 128 if mode == "L" else (90, 120, 200)).save(
        path, quality=1, progressive=True, optimize=True)
    assert path.stat().st_size < side * side / 128  # under 4 bits per luma block
    assert read_image(path).width == side


def _jpeg_with_zero_table(tmp_path: Path) -> Path:
    data = bytearray(_save(tmp_path / "q.jpg", _rgb(32, 32), quality=50).read_bytes())
    dqt = data.find(b"\xff\xdb")
    data[dqt + 5:dqt + 5 + 64] = bytes(64)  # luma table all zeros: libjpeg accepts it
    path = tmp_path / "zero.jpg"
    path.write_bytes(bytes(data))
    return path


def test_zero_quantisation_tables_are_not_used(tmp_path: Path) -> None:
    path = _jpeg_with_zero_table(tmp_path)
    assert min(Image.open(path).quantization[0]) == 0
    img = read_image(path)
    # consistency would divide by these zeros (NaN pixels, RuntimeWarnings): no tables
    assert img.quantization is None
    assert img.header_qf is not None and img.format == "JPEG"


def test_tables_of_unknown_chroma_subsampling_are_not_used(tmp_path: Path) -> None:
    # 4:4:0 (luma sampled 1x2): not one of the layouts consistency knows
    data = bytearray(_save(tmp_path / "s.jpg", _rgb(32, 32), quality=60,
                           subsampling=0).read_bytes())
    sof = _sof_at(bytes(data))
    assert data[sof + 9] == 3 and data[sof + 11] == 0x11  # 3 components, luma 1x1
    data[sof + 11] = 0x12
    path = tmp_path / "s440.jpg"
    path.write_bytes(bytes(data))
    img = read_image(path)
    assert img.subsampling is None and img.quantization is None and img.header_qf == 60


def test_decoder_warnings_do_not_escape(tmp_path: Path) -> None:
    # EXIF whose only tag points far past its end: Pillow warns "Truncated File Read"
    entry = struct.pack("<HHII", 0x010F, 2, 100, 0xFFF0)
    exif = b"Exif\0\0II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + entry + b"\0" * 4
    path = _save(tmp_path / "exif.jpg", _rgb(), exif=exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = read_image(path)
    assert img.width == 24
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "ICO"])
def test_only_our_formats_are_opened(tmp_path: Path, fmt: str) -> None:
    # Pillow has some 40 readers, several without magic bytes: only JPEG, PNG, WebP, TIFF,
    # BMP and GIF ever see a file's bytes (as the suffixes we list)
    path = tmp_path / "other.png"
    Image.fromarray(_rgb()).save(path, format=fmt)
    assert Image.open(path).format == fmt
    assert str(_expect_error(path, "not an image")).endswith(": not an image")


def test_16bit_png(tmp_path: Path) -> None:
    path = _save(tmp_path / "deep.png", np.arange(256, dtype=np.uint16).reshape(16, 16) * 200)
    assert Image.open(path).mode.startswith("I")
    _expect_error(path, "16-bit images are not supported")


def test_cmyk_jpeg_is_read_as_rgb(tmp_path: Path) -> None:
    """Was: refused ("CMYK images are not supported; convert to RGB first"). Without a
    profile: Pillow's plain conversion (Adobe's inverted values undone by Pillow), no ICC
    profile on the result, no tables to keep consistency with (they quantised C, M, Y, K)."""
    rgb = make_photo(37, 53)  # odd sizes: no block grid to lean on
    img = read_image(cmyk_jpeg(tmp_path / "cmyk.jpg", rgb, quality=90))
    assert img.mode == "CMYK" and img.format == "JPEG" and img.pixels.shape == (37, 53, 3)
    assert img.converted == "CMYK converted to RGB" and img.icc_profile is None
    assert img.quantization is None and img.subsampling is None and img.alpha is None
    assert np.abs(img.pixels.astype(int) - rgb).mean() < 4


def test_the_srgb_profile_is_the_same_bytes_in_every_run() -> None:
    """Was: Little CMS stamped the time into each profile it made, so a CMYK photo restored
    twice (or by two processes) came out with different bytes; CI failed comparing two
    profiles made either side of a second boundary."""
    from PIL import ImageCms

    made = srgb_profile.__wrapped__()
    assert made[24:36] == struct.pack(">6H", *SRGB_PROFILE_DATE)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(made))
    assert ImageCms.getProfileDescription(profile).strip() == "sRGB built-in"
    fresh = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert made[:24] + made[36:] == fresh[:24] + fresh[36:]  # only the date is set


@pytest.mark.parametrize("swap", [False, True])
def test_cmyk_jpeg_with_a_profile_is_converted_through_it(tmp_path: Path, swap: bool) -> None:
    """A CMYK profile in the file decides the colours (converted into sRGB, tagged sRGB):
    the swapped profile turns the image into BGR, which a plain conversion never would."""
    rgb = make_photo(40, 56)
    path = cmyk_jpeg(tmp_path / "cmyk.jpg", rgb, quality=95, icc=cmyk_profile(swap))
    img = read_image(path)
    assert img.converted == "CMYK converted to RGB through its ICC profile"
    assert img.icc_profile == srgb_profile()
    expected = rgb[..., ::-1] if swap else rgb
    assert np.abs(img.pixels.astype(int) - expected).mean() < 3


def test_cmyk_jpeg_with_a_bad_profile_falls_back_to_the_plain_conversion(tmp_path: Path
                                                                         ) -> None:
    rgb = make_photo(24, 32)
    for icc in (b"not a profile at all", srgb_profile()):  # garbage; an RGB profile
        img = read_image(cmyk_jpeg(tmp_path / "cmyk.jpg", rgb, quality=95, icc=icc))
        assert img.converted == "CMYK converted to RGB (its ICC profile is unusable: " \
            "plain conversion)"
        assert img.icc_profile is None and np.abs(img.pixels.astype(int) - rgb).mean() < 3


def test_ycck_jpeg_is_read_as_rgb(tmp_path: Path) -> None:
    img = read_image(cmyk_jpeg(tmp_path / "ycck.jpg", make_photo(24, 40), ycck=True))
    assert img.converted == "YCCK converted to RGB" and img.pixels.shape == (24, 40, 3)


def test_turned_cmyk_jpeg_is_upright_and_keeps_its_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    path = tmp_path / "turned.jpg"
    Image.fromarray(make_photo(16, 32)).convert("CMYK").save(path, exif=exif.tobytes())
    img = read_image(path)
    assert img.pixels.shape == (32, 16, 3) and img.transposed and img.converted
    kept = Image.Exif()
    kept.load(img.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "TestCam"


def test_palette_images_are_read_as_the_colours_they_show(tmp_path: Path) -> None:
    """Was: refused ("palette images are not supported"), so a folder of memes and PNG-8
    screenshots failed file by file."""
    colours = Image.fromarray(_rgb()).quantize(64)
    shown = np.array(colours.convert("RGB"))
    for name in ("pal.gif", "pal.png"):
        path = tmp_path / name
        colours.save(path)
        assert Image.open(path).mode == "P"
        img = read_image(path)
        np.testing.assert_array_equal(img.pixels, shown)
        assert img.alpha is None and img.pixels.shape[2] == 3
    # a grey palette gives one channel; a transparent index gives alpha
    grey = Image.fromarray(make_photo(24, 32, channels=1)[:, :, 0]).convert("P")
    grey.save(tmp_path / "grey.png")
    img = read_image(tmp_path / "grey.png")
    assert img.pixels.shape == (24, 32, 1)
    np.testing.assert_array_equal(img.pixels[:, :, 0], np.array(grey.convert("L")))
    colours.save(tmp_path / "clear.png", transparency=0)
    img = read_image(tmp_path / "clear.png")
    index = np.array(colours)
    assert img.alpha is not None and img.pixels.shape[2] == 3
    np.testing.assert_array_equal(img.alpha == 0, index == 0)
    assert (index == 0).any() and (index != 0).any()


def test_animated_gif(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    _expect_error(path, "animated")


def test_tiny_image(tmp_path: Path) -> None:
    dot = _save(tmp_path / "dot.png", np.zeros((1, 1, 3), np.uint8))
    _expect_error(dot, "image too small: 1x1")
    side = MIN_SIDE
    assert read_image(_save(tmp_path / "ok.png", np.zeros((side, side, 3), np.uint8))).width == side


def test_missing_path(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.jpg", "no such file")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _expect_error(folder, "folder")


def test_error_message_for_string_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.png: no such file$"):
        read_image(str(tmp_path / "nope.png"))


# ------------------------------------------------------------------------- writing


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_atomic_no_temp_left(tmp_path: Path) -> None:
    out = write_image(tmp_path / "sub" / "dir" / "o.png", _rgb())  # parents created
    assert out.is_file()
    assert _leftovers(out.parent) == []
    assert (out.stat().st_mode & 0o777) != 0o600  # not mkstemp's private mode
    write_image(out, _rgb(seed=3))  # overwriting a non-protected output is fine
    np.testing.assert_array_equal(read_image(out).pixels, _rgb(seed=3))
    assert _leftovers(out.parent) == []


def test_remove_stale_temps(tmp_path: Path) -> None:
    target = tmp_path / "photo.png"
    target.write_bytes(b"done")
    stale = [tmp_path / ".photo.png.ab_12xyz.tmp", tmp_path / ".photo.png.00000000.tmp"]
    kept = [tmp_path / ".photo.png.png.ab12cd34.tmp",  # another target's (photo.png.png)
            tmp_path / ".photo.png.short.tmp",  # not mkstemp's 8 random characters
            tmp_path / ".photo.png.AB12CD34.tmp",  # nor its alphabet
            tmp_path / "photo.png.ab12cd34.tmp",  # not hidden
            tmp_path / ".photo.png.ab12cd34.tmp.bak",
            tmp_path / ".other.png.ab12cd34.tmp"]
    for p in stale + kept:
        p.write_bytes(b"partial")
    folder = tmp_path / ".photo.png.dir12345.tmp"  # a folder of that name: left alone
    folder.mkdir()
    link = tmp_path / ".photo.png.link1234.tmp"  # a link too (its target is no temp file)
    link.symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("keep")

    assert sorted(remove_stale_temps(target)) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and folder.is_dir() and link.is_symlink()
    assert target.read_bytes() == b"done" and (tmp_path / "elsewhere.txt").exists()
    assert remove_stale_temps(target) == []
    assert remove_stale_temps(tmp_path / "missing" / "x.png") == []  # no folder: nothing


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_remove_stale_temps_after_a_killed_write(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a writer killed (SIGKILL: no cleanup) between mkstemp and os.replace leaves its temp
    # file; the next writer of the same target clears it (several targets at once)
    import signal

    import fbcnn.images.files as imageio

    pid = os.fork()
    if pid == 0:  # the child dies in the middle of write_image
        monkeypatch.setattr(imageio.os, "replace",
                            lambda a, b: os.kill(os.getpid(), signal.SIGKILL))
        try:
            write_image(tmp_path / "a.png", _rgb())
        finally:
            os._exit(1)  # not reached unless the kill failed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".a.png.") and left[0].endswith(".tmp")
    assert not (tmp_path / "a.png").exists()
    assert remove_stale_temps(tmp_path / "a.png", tmp_path / "b.png") == [tmp_path / left[0]]
    assert list(tmp_path.iterdir()) == []


def test_write_under_a_file_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for target in (blocker / "o.png", blocker / "deeper" / "o.png"):
        with pytest.raises(ImageError) as info:
            write_image(target, _rgb())
        message = str(info.value)
        assert message.startswith(str(target)) and "\n" not in message
        assert "cannot" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_write_failure_removes_temp(tmp_path: Path) -> None:
    # LA cannot be stored as BMP: Pillow fails mid-save, the temp file must go
    with pytest.raises(ImageError, match="cannot write"):
        write_image(tmp_path / "o.bmp", _rgb()[:, :, :1], alpha=_rgb()[:, :, 0])
    assert list(tmp_path.iterdir()) == []


def test_write_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"o\.xyz: cannot write \.xyz"):
        write_image(tmp_path / "o.xyz", _rgb())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores folder permissions")
def test_write_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            write_image(folder / "o.png", _rgb())
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_check_writable_folder_creates_and_leaves_nothing(tmp_path: Path) -> None:
    check_writable_folder(tmp_path / "new" / "sub")
    assert (tmp_path / "new" / "sub").is_dir() and list((tmp_path / "new" / "sub").iterdir()) == []
    check_writable_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_check_writable_folder_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "restored"
    blocker.write_text("x")
    with pytest.raises(ImageError, match=r"restored: cannot write there: not a folder"):
        check_writable_folder(blocker)
    with pytest.raises(ImageError, match=r"sub: cannot create the folder: a parent path is "
                                         r"not a folder$"):
        check_writable_folder(blocker / "sub")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(("error", "reason"), [
    (PermissionError(13, "Permission denied"), "permission denied"),
    (OSError(30, "Read-only file system"), "read-only file system"),
    (OSError(28, "No space left on device"), "no space left on device")])
def test_check_writable_folder_reasons(tmp_path: Path, monkeypatch, error: OSError,
                                       reason: str) -> None:
    # runs as root too: the probe file is refused as such a folder would refuse it
    import fbcnn.images.files as imageio

    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(imageio.tempfile, "TemporaryFile", refuse)
    with pytest.raises(ImageError, match=f"out: cannot write there: {reason}$"):
        check_writable_folder(tmp_path / "out")


def test_check_writable_folder_full_disk_on_write(tmp_path: Path, monkeypatch) -> None:
    """A full file system may let the empty probe file be created and refuse its bytes."""
    import tempfile

    import fbcnn.images.files as imageio

    real = tempfile.TemporaryFile
    made = []

    class Full:
        def __init__(self, **kwargs: object) -> None:
            self.f = real(**kwargs)
            made.append(self.f)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.tempfile, "TemporaryFile", Full)
    with pytest.raises(ImageError, match="cannot write there: no space left on device$"):
        check_writable_folder(tmp_path)
    monkeypatch.undo()
    assert made[0].closed and list(tmp_path.iterdir()) == []  # the probe is gone


def test_check_writable_folder_leaves_no_probe_when_killed(tmp_path: Path) -> None:
    """Was: a run killed while its probe file existed left `.fbcnn-check.XXXXXXXX.tmp` in
    the output folder for good (a slow test's kills found one). The probe has no name where
    the system allows it: a process killed in the middle of the probe leaves nothing."""
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("needs O_TMPFILE (Linux)")
    code = ("import os, sys, fbcnn.images.files as f\n"
            "real = f.tempfile.TemporaryFile\n"
            "def killed(**kw):\n"
            "    real(**kw)\n"  # the probe made, then the process dies
            "    os._exit(9)\n"
            "f.tempfile.TemporaryFile = killed\n"
            f"f.check_writable_folder({str(tmp_path)!r})\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 9 and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores folder permissions")
def test_check_writable_folder_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageError, match="ro: cannot write there: permission denied$"):
            check_writable_folder(folder)
        with pytest.raises(ImageError, match="cannot create the folder: permission denied$"):
            check_writable_folder(folder / "sub")
    finally:
        folder.chmod(0o755)


def test_write_permission_denied_message(tmp_path: Path, monkeypatch) -> None:
    # runs as root too: the folder refuses the temp file
    import fbcnn.images.files as imageio

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(imageio.tempfile, "mkstemp", refuse)
    with pytest.raises(ImageError, match=r"o\.png: cannot write: permission denied$"):
        write_image(tmp_path / "o.png", _rgb())
    assert list(tmp_path.iterdir()) == []


def test_write_failure_in_replace_removes_temp(tmp_path: Path, monkeypatch) -> None:
    import fbcnn.images.files as imageio

    def broken(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.os, "replace", broken)
    with pytest.raises(ImageError, match="no space left on device"):
        write_image(tmp_path / "o.png", _rgb())
    assert list(tmp_path.iterdir()) == []


def test_mpo_reads_as_jpeg(tmp_path: Path) -> None:
    # camera JPEGs often carry an embedded preview and open as two-frame MPO
    first, second = Image.fromarray(_rgb()), Image.fromarray(_rgb(seed=2))
    path = tmp_path / "camera.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=70)
    assert Image.open(path).format == "MPO"
    img = read_image(path)
    assert img.format == "JPEG" and img.header_qf == 70 and img.subsampling == "4:2:0"
    assert img.pixels.shape == (16, 24, 3)


def test_refuses_to_overwrite_input(tmp_path: Path) -> None:
    src = _save(tmp_path / "in.png", _rgb())
    before = src.read_bytes()
    other = tmp_path / "x" / ".." / "in.png"
    (tmp_path / "x").mkdir()
    for target in (src, other):
        with pytest.raises(ImageError, match="overwrite"):
            write_image(target, _rgb(seed=5), protect=[tmp_path / "other.png", src])
    assert src.read_bytes() == before
    assert write_image(tmp_path / "out.png", _rgb(), protect=[src]).is_file()


def test_write_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_image(tmp_path / "f.png", _rgb().astype(np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "f.png", _rgb(), alpha=np.zeros((3, 3), np.uint8))


# ------------------------------------------------------------------------- list_inputs


def test_list_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "restored").mkdir()
    for name in ("b.JPG", "a.png", "notes.txt", ".hidden.png", "nested/c.webp",
                 "restored/a.png"):
        (folder / name).write_bytes(b"x")
    loose = tmp_path / "loose.xyz"
    loose.write_bytes(b"x")
    missing = tmp_path / "missing.jpg"

    flat = list_inputs([folder, loose, missing, folder / "a.png"])
    assert flat == [folder / "a.png", folder / "b.JPG", loose, missing]
    deep = list_inputs([str(folder)], recursive=True)
    assert deep == [folder / "a.png", folder / "b.JPG", folder / "nested" / "c.webp"]
    assert list_inputs([]) == []


def test_loaded_image_from_bytes_like_pillow(tmp_path: Path) -> None:
    # pixels must match what Pillow decodes (no colour conversions of our own)
    path = _save(tmp_path / "p.jpg", _rgb(), quality=60)
    expected = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))
    np.testing.assert_array_equal(read_image(path).pixels, expected)
