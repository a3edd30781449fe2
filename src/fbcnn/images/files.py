"""Image files <-> uint8 arrays: the only module of the library that touches image paths.

Reading checks the header before decoding (size limits, colour mode, frame count), applies
the EXIF orientation and keeps what restoration needs from the original file: alpha, ICC
profile, EXIF (its orientation then set to 1) and, for JPEGs, the quantisation tables,
their QF and the chroma subsampling (`loaded_from_pil` does the same for a PIL image).
CMYK and YCCK images (print JPEGs) are converted to RGB here, through their ICC profile
when they carry one (`LoadedImage.converted` says so; their tables then say nothing about
the RGB pixels). Palette images (GIF, PNG-8) are read as the colours they show.
Writing is atomic (temp file `.NAME.XXXXXXXX.tmp` in the same folder, then os.replace) and
never overwrites an input; `remove_stale_temps` clears the temp files a killed writer left.
Every failure is an ImageError with a one-line message "<path>: <reason>"; warnings of the
decoders are silenced (a damaged file is refused or decoded, never reported twice).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import re
import stat
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..device import available_cpus
from ..jpeg import tables as jpeg
from ..jpeg.color import is_neutral
from .png import write_png

DEFAULT_MAX_MEGAPIXELS = 200.0  # read_image refuses bigger images before decoding
MIN_SIDE = 8
# A Huffman-coded JPEG spends at least one bit on every 8x8 luma block (its DC code); a file
# with fewer bytes than W * H / _JPEG_MIN_PIXELS_PER_BYTE (half that bound) cannot hold its
# scan: it is a damaged or forged header (libjpeg would pad the missing blocks with grey).
_JPEG_MIN_PIXELS_PER_BYTE = 1024
# SOFn markers; SOF9..SOF15 are arithmetic-coded, which can go below a bit per block
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})
# the random part of tempfile.mkstemp names (tempfile._RandomNameSequence)
_TEMP_RANDOM = r"[a-z0-9_]{8}"

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
SKIP_FOLDER = "restored"

# output suffix -> (format, Pillow's save options). PNG is written by `fbcnn.images.png`, not
# Pillow (zlib level 1 on the CPUs' threads: on a restored 3-MP photo 0.08 s, where Pillow took
# 0.19 s at level 1 and 1.05 s at its default 6, for a file 1% larger than Pillow's level 1;
# measured by `scripts/probes/png_levels.py`, docs/benchmarks.md).
_WRITE_FORMATS: dict[str, tuple[str, dict[str, object]]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"lossless": True}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}
_NO_ALPHA_FORMATS = frozenset({"JPEG"})  # alpha flattened onto white (`flatten_alpha`)
DEFAULT_QUALITY = 95  # JPEG outputs, and lossy WebP outputs when a quality is asked for
# the largest side each format can hold (Pillow's encoders refuse bigger images)
_MAX_SIDE = {"JPEG": 65_535, "WEBP": 16_383}
_NO_ICC_FORMATS = frozenset({"BMP"})
# the formats an EXIF block is written into (TIFF keeps its own tags: not merged with it)
_EXIF_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
_JPEG_MAX_EXIF = 65533  # one APP1 segment: a longer block is left out of a JPEG

# the Pillow plugins read_image uses (JPEG also opens MPO, camera JPEGs with previews)
_READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
# the Pillow plugin of each: registering just these (not `Image.init()`, which imports every
# plugin Pillow has, 0.07 s) keeps other plugins from ever seeing a file's bytes
_PLUGINS = ("JpegImagePlugin", "PngImagePlugin", "WebPImagePlugin", "TiffImagePlugin",
            "BmpImagePlugin", "GifImagePlugin")
# first bytes of the formats we read: an unidentifiable file starting with one is corrupt
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
          b"MM\x00*")


class ImageError(Exception):
    """A file that cannot be read or written; str() is one user-facing line naming it."""

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        if reason is None:  # ImageError("path: reason") also works
            self.path: Path | None = None
            self.reason = _one_line(str(path))
            super().__init__(self.reason)
        else:
            self.path = Path(path)
            self.reason = _one_line(reason)
            super().__init__(f"{path}: {self.reason}")


class ImageTooLarge(ImageError):
    """An image over the pixel limit, refused from its header (before decoding)."""

    def __init__(self, path: str | Path, width: int, height: int, limit: float) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(path, f"{width} x {height} is {_megapixels(width * height)} MP, over "
                               f"the limit of {limit:g} MP (--max-megapixels)")


@dataclass(eq=False)
class LoadedImage:
    """Decoded pixels of an image file plus what is needed to restore and re-save it."""

    path: Path
    pixels: np.ndarray  # uint8 HxWx3 or HxWx1, EXIF orientation applied
    alpha: np.ndarray | None  # uint8 HxW, or None
    icc_profile: bytes | None
    format: str  # Pillow format ("JPEG", "PNG", ...)
    mode: str  # original Pillow mode ("RGB", "L", "RGBA", "LA", ...)
    header_qf: int | None
    subsampling: str | None
    # None also where the tables cannot serve JPEG consistency (zero entries, or a chroma
    # subsampling other than 4:2:0, 4:2:2, 4:4:4); header_qf is still read from them
    quantization: dict[int, list[int]] | None
    # True when the EXIF orientation turned the pixels: the JPEG block grid then no longer
    # starts at the top left, and the quantisation cells cannot be used as they are
    transposed: bool = False
    orientation: int = 1  # the EXIF orientation applied (1: none)
    # the EXIF block (b"Exif\0\0" + TIFF structure) to carry into outputs, its orientation
    # set to 1 when the pixels were turned by it; None if the file has none
    exif: bytes | None = None
    # what the reader did to the colours, for the report line: "CMYK converted to RGB" or
    # "YCCK converted to RGB", "... through its ICC profile" when it carried one (then
    # `icc_profile` is sRGB's); None for images read as they are. A converted JPEG's tables
    # quantised its C, M, Y, K (or Y, Cb, Cr, K) planes, not the RGB pixels: its
    # `quantization` is None and it is restored without JPEG consistency or double-JPEG
    # analysis (the engine's `jpeg_tables` and `analyse_double`)
    converted: str | None = None

    @property
    def is_gray(self) -> bool:
        """True for one-channel (HxWx1) pixels."""
        return self.pixels.shape[2] == 1

    @cached_property
    def looks_grey(self) -> bool:
        """One channel, or three equal ones (`jpeg.color.is_neutral`: a black-and-white photo
        saved in colour): restored by the grey model when the model is picked by image."""
        return self.is_gray or is_neutral(self.pixels)

    @property
    def width(self) -> int:
        """Width in pixels, after EXIF orientation."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, after EXIF orientation."""
        return int(self.pixels.shape[0])


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or folder"
    if isinstance(exc, NotADirectoryError):
        return "a parent path is not a folder"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def _pillow_reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "not enough memory to decode"
    if isinstance(exc, Image.DecompressionBombError):  # a GIF/TIFF frame over Pillow's limit
        return "image too large (possible decompression bomb)"
    detail = _one_line(str(exc)) if str(exc) else type(exc).__name__
    return f"corrupt or truncated image ({detail})"


def _megapixels(pixels: float) -> str:
    mp = pixels / 1_000_000
    return f"{mp:.1f}" if mp >= 1 else f"{mp:.2g}"


# ------------------------------------------------------------------------------- reading


def _check_mode(path: Path, mode: str) -> None:
    if mode.startswith("I;16") or mode == "I":
        raise ImageError(path, f"16-bit images are not supported (mode {mode}); "
                               "convert to 8 bits per channel first")
    if mode == "F":
        raise ImageError(path, "floating-point images are not supported (mode F); "
                               "convert to 8 bits per channel first")
    if mode not in ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "YCbCr",
                    "CMYK"):
        raise ImageError(path, f"colour mode {mode} is not supported")


def _split(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxWx3 / HxWx1 pixels and optional HxW alpha of a loaded image."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:  # PNG/GIF colour key
        mode = "LA" if mode == "L" else "RGBA"
        img = img.convert(mode)
    if mode == "L":  # (convert would copy the pixels once more)
        return np.array(img)[:, :, None], None
    if mode == "1":
        return np.array(img.convert("L"))[:, :, None], None
    if mode in ("P", "PA"):  # GIFs, PNG-8 (screenshots through pngquant): their colours
        return _unpalette(img)
    if mode in ("LA", "La"):
        arr = np.array(img.convert("LA"))
        return np.ascontiguousarray(arr[:, :, :1]), np.ascontiguousarray(arr[:, :, 1])
    if mode in ("RGBA", "RGBa"):
        arr = np.array(img.convert("RGBA"))
        return np.ascontiguousarray(arr[:, :, :3]), np.ascontiguousarray(arr[:, :, 3])
    return np.array(img if mode == "RGB" else img.convert("RGB")), None


def _unpalette(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """The colours a palette image shows, grey (one channel) when they all are, with its
    transparency as alpha when it has any."""
    alpha = img.mode == "PA" or img.has_transparency_data
    arr = np.array(img.convert("RGBA" if alpha else "RGB"))
    grey = is_neutral(arr[:, :, :3])
    pixels = np.ascontiguousarray(arr[:, :, :1] if grey else arr[:, :, :3])
    return pixels, np.ascontiguousarray(arr[:, :, 3]) if alpha else None


@cache
def _register_plugins() -> None:
    for name in _PLUGINS:
        importlib.import_module(f"PIL.{name}")


def _open_checked(path: Path, fh: BinaryIO) -> Image.Image:
    """Identify the file among the formats we read (no other Pillow plugin sees its bytes)
    and parse its header, without decoding. The size limit is read_image's; Pillow's own
    decompression-bomb check (which Image.open applies) is not used, so a caller may allow
    bigger images than Pillow's default."""
    try:
        prefix = fh.read(16)
        _register_plugins()
        for fmt in _READ_FORMATS:
            if fmt not in Image.OPEN:
                continue
            factory, accept = Image.OPEN[fmt]
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):  # a str: "this format, unsupported"
                continue
            fh.seek(0)
            try:
                return factory(fh, str(path))
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # as Image.open: not this format after all
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types on bad headers
        raise ImageError(path, _pillow_reason(exc)) from None
    known = prefix.startswith(_MAGIC) or (prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP")
    reason = "corrupt or truncated image (unreadable header)" if known else "not an image"
    raise ImageError(path, reason)


def read_image(path: str | Path,
               max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> LoadedImage:
    """Decode an image file into uint8 pixels (EXIF orientation applied) and metadata.

    Raises ImageError (one line, naming the file) for anything that is not a readable
    8-bit grey/RGB image of at least MIN_SIDE pixels a side and at most `max_megapixels`
    million pixels (checked on the header, before decoding).
    """
    if not max_megapixels > 0:
        raise ValueError(f"max_megapixels must be positive, got {max_megapixels}")
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read: {_os_reason(exc)}") from None
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not path.is_file():
        raise ImageError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageError(path, "empty file")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ImageError(path, f"cannot read: {_os_reason(exc)}") from None
    with fh, warnings.catch_warnings():
        # damaged files make the plugins warn (corrupt EXIF, truncated chunks, ...): the
        # file is either decoded or refused with an ImageError, the warning adds nothing
        warnings.simplefilter("ignore")
        img = _open_checked(path, fh)
        with img:
            return _decode(path, img, fh, st.st_size, max_megapixels)


def _jpeg_sof(fh: BinaryIO) -> int | None:
    """The SOFn marker of a JPEG file (None if none is found before the first scan)."""
    try:
        where = fh.tell()
    except (OSError, ValueError):
        return None
    try:
        fh.seek(2)
        for _ in range(10_000):  # a header has a few dozen segments
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            marker, length = head[1], struct.unpack(">H", head[2:])[0]
            if marker in _JPEG_SOF:
                return marker
            if marker == 0xDA or length < 2:  # start of scan, or not a segment
                return None
            fh.seek(length - 2, os.SEEK_CUR)
        return None
    except (OSError, ValueError):
        return None
    finally:
        with contextlib.suppress(OSError, ValueError):
            fh.seek(where)


def _check_size(path: Path, img: Image.Image, fh: BinaryIO, file_size: int,
                max_megapixels: float) -> None:
    width, height = img.size
    if width * height > max_megapixels * 1_000_000:
        raise ImageTooLarge(path, width, height, max_megapixels)
    if min(width, height) < MIN_SIDE:
        raise ImageError(path, f"image too small: {width}x{height} "
                               f"(each side must be at least {MIN_SIDE} pixels)")
    if (img.format in ("JPEG", "MPO")
            and width * height > file_size * _JPEG_MIN_PIXELS_PER_BYTE
            and _jpeg_sof(fh) in _JPEG_HUFFMAN_SOF):
        raise ImageError(path, f"corrupt or truncated image (a {width}x{height} JPEG cannot "
                               f"fit in {file_size} bytes)")


def _usable_tables(img: Image.Image, subsampling: str | None
                   ) -> tuple[int | None, dict[int, list[int]] | None]:
    """(header QF, quantisation tables) of a JPEG. The tables are None where restoration
    cannot use them to keep the result consistent with the file: missing or zero entries,
    or a colour JPEG whose chroma subsampling is not one of 4:2:0, 4:2:2, 4:4:4."""
    tables = getattr(img, "quantization", None)
    if not tables:
        return None, None
    tables = {int(k): [int(v) for v in t] for k, t in tables.items()}
    luma = tables.get(0)
    if luma is None or len(luma) != 64:
        return None, None
    qf = jpeg.qf_from_tables(tables)
    usable = all(len(t) == 64 and min(t) >= 1 for t in tables.values())
    if img.mode not in ("L", "1") and subsampling is None:
        usable = False
    return qf, tables if usable else None


def _decode(path: Path, img: Image.Image, fh: BinaryIO, file_size: int,
            max_megapixels: float) -> LoadedImage:
    _check_size(path, img, fh, file_size, max_megapixels)
    try:
        if img.format == "MPO":
            # camera JPEGs with embedded previews: the first frame is the JPEG itself
            img.format = "JPEG"
        else:
            frames = int(getattr(img, "n_frames", 1))
            if frames > 1:
                raise ImageError(path, f"animated or multi-frame images are not supported "
                                       f"({frames} frames)")
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(path, _pillow_reason(exc)) from None
    return _loaded(path, img)


def loaded_from_pil(img: Image.Image, path: str | Path | None = None) -> LoadedImage:
    """A PIL image (opened from a file or made in memory) as `read_image` would give it: EXIF
    orientation applied, alpha, ICC profile, EXIF and, for one opened from a JPEG, its
    tables. Its current frame; no size limits (it is decoded already). `path` (default its
    file name) names it in errors. ImageError for modes that cannot be restored."""
    name = path if path is not None else (getattr(img, "filename", "") or "<PIL image>")
    return _loaded(Path(name), img)


def _loaded(path: Path, img: Image.Image) -> LoadedImage:
    """Pixels and metadata of an opened image (header checked by the caller)."""
    try:
        mode = img.mode
        _check_mode(path, mode)
        fmt = "JPEG" if img.format == "MPO" else str(img.format or "")
        icc = img.info.get("icc_profile") or None
        if not isinstance(icc, bytes):
            icc = None
        subsampling = _subsampling(img, fmt)
        qf, quantization = _usable_tables(img, subsampling) if fmt == "JPEG" else (None, None)
        img.load()
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(path, _pillow_reason(exc)) from None
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)  # EXIF Orientation
        oriented = ImageOps.exif_transpose(img) if 2 <= orientation <= 8 else img
    except Exception:  # unreadable EXIF: keep the stored orientation
        orientation, oriented = 1, img
    transposed = oriented is not img
    converted = None
    try:
        if mode == "CMYK":
            ycck = img.info.get("adobe_transform") == 2
            oriented, icc, converted = _cmyk_to_rgb(oriented, icc, "YCCK" if ycck else "CMYK")
            quantization = None  # the tables quantised ink planes, not these pixels
        pixels, alpha = _split(oriented)
    except Exception as exc:
        raise ImageError(path, _pillow_reason(exc)) from None
    return LoadedImage(path=path, pixels=pixels, alpha=alpha, icc_profile=icc, format=fmt,
                       mode=mode, header_qf=qf, subsampling=subsampling,
                       quantization=quantization, transposed=transposed,
                       orientation=orientation if transposed else 1,
                       exif=_exif_of(img, upright=transposed), converted=converted)


# the creation date written in the header of the sRGB profile we attach (ICC.1 7.2.8):
# Little CMS stamps the time it made the profile, so one image restored twice, or by two
# processes, came out with different bytes
SRGB_PROFILE_DATE = (2021, 1, 1, 0, 0, 0)


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The ICC profile of sRGB (Little CMS's), given to images converted into it; the same
    bytes in every run."""
    from PIL import ImageCms

    made = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # the date is not covered by a checksum: Little CMS leaves the profile ID (84..99) zero
    return made[:24] + struct.pack(">6H", *SRGB_PROFILE_DATE) + made[36:]


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None,
                 name: str) -> tuple[Image.Image, bytes | None, str]:
    """A CMYK image (Pillow decodes YCCK JPEGs into CMYK, and undoes the inverted values of
    Adobe's files) as RGB: through its ICC profile into sRGB (perceptual intent, Little CMS)
    when it carries a usable CMYK profile, the result then tagged with sRGB's profile; else
    Pillow's plain conversion (R = (255 - C)(255 - K) / 255, ...), untagged. Returns the
    image, its ICC profile and the note for `LoadedImage.converted`."""
    note = f"{name} converted to RGB"
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if source.profile.xcolor_space.strip() == "CMYK":
                rgb = ImageCms.profileToProfile(
                    img, source, ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())),
                    outputMode="RGB")
                if rgb is not None:
                    return rgb, srgb_profile(), f"{note} through its ICC profile"
        except Exception:  # noqa: BLE001 - a damaged or foreign profile: the plain way
            pass
        note += " (its ICC profile is unusable: plain conversion)"
    return img.convert("RGB"), None, note


def _subsampling(img: Image.Image, fmt: str) -> str | None:
    """`jpeg.subsampling_of`, also for a JPEG whose Pillow format is "MPO" (a PIL image given
    as it was opened; read_image renames the format first)."""
    if fmt == "JPEG" and img.format == "MPO" and img.mode in ("RGB", "YCbCr"):
        from PIL import JpegImagePlugin

        return jpeg.SUBSAMPLING_NAMES.get(JpegImagePlugin.get_sampling(img))
    return jpeg.subsampling_of(img)


_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112


def _exif_of(img: Image.Image, upright: bool) -> bytes | None:
    """The image's EXIF block as it was stored (JPEG APP1, PNG eXIf, WebP EXIF; b"Exif\\0\\0"
    then the TIFF structure), None if it has none or it cannot be read. `upright`: the
    pixels were turned by its orientation, which is then set to 1 (top-left), in place so
    that every other byte, maker notes included, is kept."""
    raw = img.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    tiff = raw[6:] if raw.startswith(_EXIF_HEADER) else raw
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    if upright:
        try:
            tiff = _upright_exif(tiff)
        except (struct.error, ValueError, IndexError):
            try:  # not patchable in place: Pillow rewrites it
                exif = Image.Exif()
                exif.load(_EXIF_HEADER + tiff)
                exif[_ORIENTATION] = 1
                tiff = exif.tobytes()[6:]
            except Exception:  # unreadable EXIF: not carried
                return None
    return _EXIF_HEADER + tiff


def _upright_exif(tiff: bytes) -> bytes:
    """The TIFF structure of an EXIF block with the Orientation entry of IFD0 set to 1
    (unchanged when it has none). ValueError / struct.error when it cannot be patched."""
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag != _ORIENTATION:
            continue
        if kind != 3 or n != 1:  # not one SHORT
            raise ValueError("orientation entry is not one SHORT")
        out = bytearray(tiff)
        struct.pack_into(order + "H", out, entry + 8, 1)
        return bytes(out)
    return tiff


# ------------------------------------------------------------------------------- writing


def _with_alpha(path: Path, pixels: np.ndarray,
                alpha: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Checked uint8 H x W x C pixels with the alpha as a last channel, and their Pillow
    mode (L, LA, RGB, RGBA)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValueError(f"{path}: pixels must be a uint8 array, got "
                         f"{getattr(pixels, 'dtype', type(pixels).__name__)}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"{path}: pixels must be HxWx3 or HxWx1, got shape {pixels.shape}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[:, :, 0]
        if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
            raise ValueError(f"{path}: alpha must be uint8 {pixels.shape[:2]}, got "
                             f"{alpha.dtype} {alpha.shape}")
        return (np.concatenate([pixels, alpha[:, :, None]], axis=2),
                "LA" if pixels.shape[2] == 1 else "RGBA")
    return pixels, "L" if pixels.shape[2] == 1 else "RGB"


def _is_protected(target: Path, protect: Iterable[Path]) -> bool:
    resolved = target.resolve()
    for p in protect:
        p = Path(p)
        if p.resolve() == resolved:
            return True
        try:  # hard links, case-insensitive file systems
            if target.exists() and os.path.samefile(target, p):
                return True
        except OSError:
            pass
    return False


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def flatten_alpha(pixels: np.ndarray, alpha: np.ndarray,
                  background: int = 255) -> np.ndarray:
    """uint8 pixels composited over a plain background (white) by their HxW alpha: what a
    format without alpha (JPEG) gets, so that transparent areas do not show whatever colour
    they happen to hold."""
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    flat = pixels.astype(np.float32) * a + float(background) * (1.0 - a)
    return np.clip(np.round(flat), 0, 255).astype(np.uint8)


def check_quality(quality: int | None) -> int | None:
    """`quality` if it is None or an integer in 1..100, else ValueError."""
    if quality is None:
        return None
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            or not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    return int(quality)


def output_format(path: str | Path) -> str | None:
    """The format `write_image` writes to `path` ("PNG", "JPEG", ...; a path without a
    suffix is a PNG), None for suffixes it cannot write."""
    suffix = Path(path).suffix.lower() or ".png"
    found = _WRITE_FORMATS.get(suffix)
    return None if found is None else found[0]


def check_output_size(path: str | Path, width: int, height: int) -> None:
    """ImageError when `path`'s format cannot hold a width x height image (WebP: 16383
    pixels a side; JPEG: 65535), to refuse before restoring rather than when writing."""
    fmt = output_format(path)
    limit = _MAX_SIDE.get(fmt or "")
    if limit is not None and max(width, height) > limit:
        raise ImageError(path, f"cannot write a {width}x{height} image as {fmt} (at most "
                               f"{limit} pixels a side); write PNG instead")


def write_image(path: str | Path, pixels: np.ndarray, *, alpha: np.ndarray | None = None,
                icc_profile: bytes | None = None, protect: Iterable[Path] = (),
                workers: int | None = None, exif: bytes | None = None,
                quality: int | None = None) -> Path:
    """Atomically save uint8 HxWx3 / HxWx1 pixels (plus optional HxW alpha, ICC profile and
    EXIF block, as `LoadedImage.exif`).

    The format follows the suffix (none -> .png appended). JPEG (.jpg/.jpeg): at `quality`
    (default 95), alpha flattened onto white. WebP: lossless, or lossy at `quality` when it
    is given; alpha kept. `quality` (1..100) is ignored by the other formats. The ICC
    profile goes into every format but BMP; EXIF into PNG (eXIf), JPEG and WebP files
    only. Refuses to overwrite any path in `protect`. A PNG is deflated on `workers`
    threads (default: the CPUs this process may use). Returns the path written; raises
    ImageError on failure, leaving nothing behind (ValueError for bad arguments).
    """
    quality = check_quality(quality)
    path, fmt, options = _target_format(Path(path), quality)
    if fmt in _NO_ALPHA_FORMATS and alpha is not None:
        checked, _ = _with_alpha(path, pixels, alpha)
        pixels, alpha = flatten_alpha(checked[:, :, :-1], checked[:, :, -1]), None
    if fmt not in _EXIF_FORMATS or (fmt == "JPEG" and exif and len(exif) > _JPEG_MAX_EXIF):
        exif = None
    arr, mode = _with_alpha(path, pixels, alpha)
    save = _saver(fmt, options, arr, mode, icc_profile=icc_profile, exif=exif, workers=workers)
    _prepare_target(path, protect)
    _save_atomically(path, save)
    return path


def _target_format(path: Path, quality: int | None) -> tuple[Path, str, dict]:
    """The path `write_image` writes (.png appended to a path without a suffix), its PIL
    format and save options (`quality` applied to JPEG and WebP); ImageError for a suffix it
    cannot write."""
    if path.suffix == "":
        path = path.with_name(path.name + ".png")
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        known = " ".join(sorted(_WRITE_FORMATS))
        raise ImageError(path, f"cannot write {suffix} files (use one of: {known})")
    fmt, options = _WRITE_FORMATS[suffix]
    if fmt == "JPEG" and quality is not None:
        options = {**options, "quality": quality}
    elif fmt == "WEBP" and quality is not None:
        options = {"quality": quality}
    return path, fmt, dict(options)


def _saver(fmt: str, options: dict, arr: np.ndarray, mode: str, *, icc_profile: bytes | None,
           exif: bytes | None, workers: int | None) -> Callable[[BinaryIO], None]:
    """What writes `arr` (HxWxC, PIL `mode`) as `fmt` into an open file: our PNG writer
    (deflated on `workers` threads), or PIL with the ICC profile where the format holds one."""
    if fmt == "PNG":
        threads = available_cpus() if workers is None else max(1, workers)

        def save_png(f: BinaryIO) -> None:
            write_png(f, arr, icc_profile=icc_profile or None, workers=threads,
                      exif=exif or None)
        return save_png
    img = Image.frombytes(mode, (arr.shape[1], arr.shape[0]),
                          np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr))
    if icc_profile and fmt not in _NO_ICC_FORMATS:
        options["icc_profile"] = icc_profile
    if exif:
        options["exif"] = exif

    def save(f: BinaryIO) -> None:
        img.save(f, format=fmt, **options)
    return save


def check_writable_folder(folder: str | Path, probe_bytes: int = 4096) -> None:
    """Make sure image files can be written into `folder`, creating it (and its parents)
    when missing: writes a small temporary file (`probe_bytes` of zeros) there, unnamed
    where the system allows (Linux: a run killed meanwhile leaves nothing; a named probe was
    left behind), else deleted as soon as it is made. ImageError with one line naming the
    folder otherwise: a file where the folder should be, a parent that cannot be created,
    no permission, a read-only or full file system."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ImageError(folder, "cannot write there: not a folder (a file has that name)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageError(folder, "cannot write there: not a folder (a file has that name)"
                         ) from None
    except OSError as exc:
        raise ImageError(folder, f"cannot create the folder: {_os_reason(exc)}") from None
    try:
        probe = tempfile.TemporaryFile(prefix=".fbcnn-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ImageError(folder, f"cannot write there: {_os_reason(exc)}") from None
    try:
        with probe:  # a full disk fails the write or the flush
            probe.write(bytes(probe_bytes))
            probe.flush()
    except OSError as exc:
        raise ImageError(folder, f"cannot write there: {_os_reason(exc)}") from None


def _prepare_target(path: Path, protect: Iterable[Path]) -> None:
    """Refuse a protected path or a folder; create the parent folder."""
    if _is_protected(path, protect):
        raise ImageError(path, "refusing to overwrite an input image")
    if path.is_dir():
        raise ImageError(path, "cannot write: is a folder")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageError(path, f"cannot write: {parent} is not a folder") from None
    except OSError as exc:
        raise ImageError(path, f"cannot create folder {parent}: {_os_reason(exc)}") from None


def _save_atomically(path: Path, save: Callable[[BinaryIO], None]) -> None:
    """`save` into a temp file beside `path`, then rename it; nothing is left on failure."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:
        raise ImageError(path, "cannot write: no such folder") from None
    except OSError as exc:
        raise ImageError(path, f"cannot write: {_os_reason(exc)}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            save(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ImageError(path, f"cannot write: {_os_reason(exc)}") from None
        if isinstance(exc, Exception):
            raise ImageError(path, f"cannot write: {_one_line(str(exc))}") from None
        raise


def remove_stale_temps(*targets: str | Path) -> list[Path]:
    """Delete the temp files that writers of each target left behind when they were killed
    mid-write: regular files named `.<target name>.XXXXXXXX.tmp` (write_image's and
    write_text_atomic's pattern, exactly) beside it. Returns the paths removed.

    Call it before (re)writing or skipping a target when no other process writes it at the
    same time (a temp file being written now would be taken away from its writer, whose
    write then fails with an error; no finished file is ever touched)."""
    removed: list[Path] = []
    for target in map(Path, targets):
        pattern = re.compile(re.escape(f".{target.name}.") + _TEMP_RANDOM + r"\.tmp")
        try:
            names = os.listdir(target.parent)
        except OSError:  # no folder yet: nothing left over
            continue
        for name in sorted(names):
            if not pattern.fullmatch(name):
                continue
            stale = target.parent / name
            try:
                if not stat.S_ISREG(stale.lstat().st_mode):  # never a link, folder, fifo
                    continue
                stale.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ImageError(stale, "cannot remove stale temp file: "
                                        f"{_os_reason(exc)}") from None
            removed.append(stale)
    return removed


# ------------------------------------------------------------------------------- inputs


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != SKIP_FOLDER and not d.startswith(".")]
        if not recursive:
            dirs[:] = []
        for name in files:
            if name.startswith("."):  # temp files, macOS "._" resource forks
                continue
            p = Path(root, name)
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                found.append(p)
    return sorted(found, key=lambda p: p.parts)


def list_inputs(inputs: Sequence[str | Path], recursive: bool = False) -> list[Path]:
    """Files to process: files (and missing paths) as given, folders expanded to the images
    inside (sorted; `restored` and hidden folders skipped), duplicates dropped."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        candidates = _folder_images(p, recursive) if p.is_dir() else [p]
        for c in candidates:
            try:
                key = c.resolve()
            except OSError:
                key = c.absolute()
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


def header_megapixels(path: str | Path) -> float | None:
    """An image file's megapixels from its header (no decoding); None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.width * img.height / 1e6
    except Exception:  # any unreadable file: reported when it is restored
        return None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file (a JSON report) atomically; ImageError on failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ImageError(path, f"cannot write: {_os_reason(e)}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ImageError(path, f"cannot write: {_os_reason(e)}") from None
        raise
    return path
