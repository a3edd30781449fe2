"""JPEG encoders beyond Pillow's IJG default: libjpeg with any subsampling and with tables
outside the IJG family, MozJPEG (the real encoder, trellis quantisation included, run under
node) and jpegli. Training draws from them so the network learns JPEG rather than one
encoder; `fbcnn evaluate --encoder` compresses with them.

Every compression here is decoded by Pillow (libjpeg-turbo), as `fbcnn restore` reads files,
and labelled with the IJG-equivalent QF of the tables it wrote (`jpeg.qf_from_tables`): the
QF the network is taught to read, and the one `fbcnn inspect` reports for such a file.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .tables import SUBSAMPLING, qf_from_tables, subsampling_of

ENCODERS = ("libjpeg", "mozjpeg", "jpegli")

# MozJPEG's nine table families (its `quant_table` option) at quality 50, where libjpeg's
# quality scaling is 100%: luma and chroma in natural order, read off the encoder. 0 is the
# JPEG standard's Annex K (IJG) pair, 1 flat, 2 MS-SSIM tuned, 3 (MozJPEG's default) the
# ImageMagick/Robidoux table, 4 PSNR-HVS-M tuned, 5-8 tables from the perceptual literature
# (Klein et al., Watson et al., Ahumada et al., Peterson et al.); 3, 5-8 use one table for
# both planes.
_T3 = (16, 16, 16, 18, 25, 37, 56, 85, 16, 17, 20, 27, 34, 40, 53, 75, 16, 20, 24, 31, 43, 62,
       91, 135, 18, 27, 31, 40, 53, 74, 106, 156, 25, 34, 43, 53, 69, 94, 131, 189, 37, 40, 62,
       74, 94, 124, 169, 238, 56, 53, 91, 106, 131, 169, 226, 311, 85, 75, 135, 156, 189, 238,
       311, 418)
_T5 = (10, 12, 14, 19, 26, 38, 57, 86, 12, 18, 21, 28, 35, 41, 54, 76, 14, 21, 25, 32, 44, 63,
       92, 136, 19, 28, 32, 41, 54, 75, 107, 157, 26, 35, 44, 54, 70, 95, 132, 190, 38, 41, 63,
       75, 95, 125, 170, 239, 57, 54, 92, 107, 132, 170, 227, 312, 86, 76, 136, 157, 190, 239,
       312, 419)
_T6 = (7, 8, 10, 14, 23, 44, 95, 241, 8, 8, 11, 15, 25, 47, 102, 255, 10, 11, 13, 19, 31, 58,
       127, 255, 14, 15, 19, 27, 44, 83, 181, 255, 23, 25, 31, 44, 72, 136, 255, 255, 44, 47, 58,
       83, 136, 255, 255, 255, 95, 102, 127, 181, 255, 255, 255, 255, 241, 255, 255, 255, 255,
       255, 255, 255)
_T7 = (15, 11, 11, 12, 15, 19, 25, 32, 11, 13, 10, 10, 12, 15, 19, 24, 11, 10, 14, 14, 16, 18,
       22, 27, 12, 10, 14, 18, 21, 24, 28, 33, 15, 12, 16, 21, 26, 31, 36, 42, 19, 15, 18, 24, 31,
       38, 45, 53, 25, 19, 22, 28, 36, 45, 55, 65, 32, 24, 27, 33, 42, 53, 65, 77)
_T8 = (14, 10, 11, 14, 19, 25, 34, 45, 10, 11, 11, 12, 15, 20, 26, 33, 11, 11, 15, 18, 21, 25,
       31, 38, 14, 12, 18, 24, 28, 33, 39, 47, 19, 15, 21, 28, 36, 43, 51, 59, 25, 20, 25, 33, 43,
       54, 64, 74, 34, 26, 31, 39, 51, 64, 77, 91, 45, 33, 38, 47, 59, 74, 91, 108)
MOZJPEG_TABLES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    0: ((16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
         69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
         64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
         103, 99),
        (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99,
         99, 99, 47, 66) + (99,) * 38),
    1: ((16,) * 64, (16,) * 64),
    2: ((12, 17, 20, 21, 30, 34, 56, 63, 18, 20, 20, 26, 28, 51, 61, 55, 19, 20, 21, 26, 33, 58,
         69, 55, 26, 26, 26, 30, 46, 87, 86, 66, 31, 33, 36, 40, 46, 96, 100, 73, 40, 35, 46, 62,
         81, 100, 111, 91, 46, 66, 76, 86, 102, 121, 120, 101, 68, 90, 90, 96, 113, 102, 105,
         103),
        (8, 12, 15, 15, 86, 96, 96, 98, 13, 13, 15, 26, 90, 96, 99, 98, 12, 15, 18, 96, 99, 99,
         99, 99, 17, 16, 90, 96) + (99,) * 36),
    3: (_T3, _T3),
    4: ((9, 10, 12, 14, 27, 32, 51, 62, 11, 12, 14, 19, 27, 44, 59, 73, 12, 14, 18, 25, 42, 59,
         79, 78, 17, 18, 25, 42, 61, 92, 87, 92, 23, 28, 42, 75, 79, 112, 112, 99, 40, 42, 59, 84,
         88, 124, 132, 111, 42, 64, 78, 95, 105, 126, 125, 99, 70, 75, 100, 102, 116, 100, 107,
         98),
        (9, 10, 17, 19, 62, 89, 91, 97, 12, 13, 18, 29, 84, 91, 88, 98, 14, 19, 29, 93, 95, 95,
         98, 97, 20, 26, 84, 88, 95, 95, 98, 94, 26, 86, 91, 93, 97, 99, 98, 99, 99, 100, 98, 99,
         99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 97, 97, 99, 99, 99, 99, 97, 99)),
    5: (_T5, _T5),
    6: (_T6, _T6),
    7: (_T7, _T7),
    8: (_T8, _T8),
}


def scaled_table(base: tuple[int, ...] | np.ndarray, quality: int) -> list[int]:
    """libjpeg's quality scaling of a base table (100% at quality 50), clamped to the
    baseline range 1..255."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    values = (np.asarray(base, np.int64) * scale + 50) // 100
    return [int(v) for v in np.clip(values, 1, 255)]


class EncoderError(RuntimeError):
    """An encoder that is not installed or failed; one line for the user."""


@dataclass(frozen=True)
class EncoderSpec:
    """One way of writing a JPEG.

    name: libjpeg (Pillow), mozjpeg or jpegli. subsampling: '4:2:0', '4:2:2', '4:4:4', or
    None for the encoder's own choice (libjpeg: 4:2:0; MozJPEG: 4:2:0 below quality 80,
    4:2:2 from 80, 4:4:4 from 90; jpegli always chooses itself). quant_table: MozJPEG's
    table family (0..8; None is its default, 3), or for libjpeg a MozJPEG family scaled by
    quality instead of IJG's.
    base_tables: libjpeg only, base tables (luma, chroma) scaled by quality like IJG's.
    trellis: MozJPEG's trellis quantisation (its default).
    """

    name: str = "libjpeg"
    subsampling: str | None = None
    quant_table: int | None = None
    base_tables: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    trellis: bool = True

    def __post_init__(self) -> None:
        if self.name not in ENCODERS:
            raise ValueError(f"unknown encoder {self.name!r}: choose from {', '.join(ENCODERS)}")
        self._check_subsampling()
        if self.quant_table is not None and self.quant_table not in MOZJPEG_TABLES:
            raise ValueError(f"quant_table must be in 0..8, got {self.quant_table}")
        if self.name == "jpegli" and self.quant_table is not None:
            raise ValueError("jpegli writes its own tables (no table=N)")
        if self.name != "mozjpeg" and not self.trellis:
            raise ValueError("only MozJPEG has trellis quantisation to turn off")
        self._check_base_tables()

    def _check_subsampling(self) -> None:
        if self.subsampling is not None and self.subsampling not in SUBSAMPLING:
            raise ValueError(f"unknown subsampling {self.subsampling!r}: choose from "
                             f"{', '.join(SUBSAMPLING)}")
        if self.name == "mozjpeg" and self.subsampling == "4:2:2":
            raise ValueError("this MozJPEG build takes 4:2:0 or 4:4:4 (4:2:2 only by its own "
                             "choice, from quality 80)")
        if self.name == "jpegli" and self.subsampling is not None:
            raise ValueError("jpegli chooses its own subsampling")

    def _check_base_tables(self) -> None:
        if self.base_tables is None:
            return
        if self.name != "libjpeg" or self.quant_table is not None:
            raise ValueError("base_tables are for libjpeg, without quant_table")
        if len(self.base_tables) != 2 or any(
                len(t) != 64 or not all(1 <= v <= 32767 for v in t) for t in self.base_tables):
            raise ValueError("base_tables: two tables of 64 steps in 1..32767")

    @property
    def label(self) -> str:
        parts = [self.name]
        if self.subsampling:
            parts.append(self.subsampling)
        if self.quant_table is not None:
            parts.append(f"table {self.quant_table}")
        if self.base_tables is not None:
            parts.append("own tables")
        if self.name == "mozjpeg" and not self.trellis:
            parts.append("no trellis")
        return ", ".join(parts)


def parse_encoder(text: str) -> EncoderSpec:
    """'libjpeg', 'libjpeg:4:4:4', 'mozjpeg', 'mozjpeg:table=2', 'mozjpeg:4:4:4:table=0',
    'jpegli' -> an EncoderSpec (ValueError with one line otherwise)."""
    name, _, rest = text.strip().partition(":")
    spec = EncoderSpec(name=name)
    tokens = rest.split(":") if rest else []
    options: list[str] = []
    i = 0
    while i < len(tokens):  # a subsampling spans three tokens (4:2:0)
        joined = ":".join(tokens[i:i + 3])
        if joined in SUBSAMPLING:
            if spec.subsampling is not None:
                raise ValueError(f"two subsamplings in {text!r}")
            spec = replace(spec, subsampling=joined)
            i += 3
        else:
            options.append(tokens[i])
            i += 1
    for token in options:
        if token.startswith("table="):
            if not token[6:].isdigit():
                raise ValueError(f"table must be an integer in 0..8, got {token[6:]!r}")
            spec = replace(spec, quant_table=int(token[6:]))
        elif token == "notrellis":
            spec = replace(spec, trellis=False)
        else:
            raise ValueError(f"unknown encoder option {token!r} in {text!r} (options: a "
                             f"subsampling such as 4:4:4, table=N, notrellis)")
    return spec


def encode_with(spec: EncoderSpec, image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a uint8 HxW, HxWx1 or HxWx3 array, written by `spec` at `quality`."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {image.dtype}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    plane = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if spec.name == "mozjpeg":
        return _mozjpeg().encode(np.ascontiguousarray(plane), int(quality), spec)
    if spec.name == "jpegli":
        return _jpegli_encode(plane, int(quality))
    pil = Image.fromarray(plane)
    options: dict[str, object] = {"quality": int(quality)}
    base = spec.base_tables
    if base is None and spec.quant_table is not None:
        base = MOZJPEG_TABLES[spec.quant_table]
    if base is not None:
        tables = [scaled_table(base[0], quality)]
        if pil.mode == "RGB":
            tables.append(scaled_table(base[1], quality))
        options = {"qtables": tables}
    if pil.mode == "RGB":
        options["subsampling"] = SUBSAMPLING[spec.subsampling or "4:2:0"]
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", **options)
    return buf.getvalue()


def decode_with_qf(data: bytes, channels: int) -> tuple[np.ndarray, int]:
    """Pillow's decoding (HxWxchannels) and the IJG-equivalent QF of the file's tables."""
    with Image.open(io.BytesIO(data)) as im:
        tables = dict(im.quantization)
        pixels = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    if channels == 1:
        pixels = pixels[:, :, None]
        tables = {0: tables[0]}
    return pixels, qf_from_tables(tables)


def file_subsampling(data: bytes) -> str | None:
    """The chroma subsampling written in JPEG bytes (None for grey)."""
    with Image.open(io.BytesIO(data)) as im:
        return subsampling_of(im)


def compress_with(spec: EncoderSpec, image: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """decode(encode_with(...)) in the input's shape, and the file's IJG-equivalent QF."""
    channels = 1 if image.ndim == 2 or image.shape[2] == 1 else 3
    pixels, qf = decode_with_qf(encode_with(spec, image, quality), channels)
    if image.ndim == 2:
        pixels = pixels[:, :, 0]
    return pixels, qf


def _jpegli_encode(plane: np.ndarray, quality: int) -> bytes:
    try:
        import pyjpegli
    except ImportError:
        raise EncoderError('jpegli is not installed: pip install "fbcnn[encoders]"') from None
    rgb = np.repeat(plane[:, :, None], 3, axis=2) if plane.ndim == 2 else plane
    h, w = rgb.shape[:2]
    return bytes(pyjpegli.encode(np.ascontiguousarray(rgb).tobytes(), w, h, quality))


MOZJPEG_DIR = Path(__file__).parents[1] / "mozjpeg"
# the WebAssembly build takes one luma sampling factor for both axes
_MOZJPEG_SAMPLING = {"4:4:4": 1, "4:2:0": 2}


class _MozjpegServer:
    """One node process per Python process (a forked DataLoader worker starts its own),
    answering encode requests in order."""

    def __init__(self) -> None:
        node = shutil.which("node")
        folder = MOZJPEG_DIR
        if not node:
            raise EncoderError("MozJPEG needs Node.js (node not found on PATH)")
        if not (folder / "node_modules" / "@jsquash" / "jpeg").is_dir():
            raise EncoderError(f"MozJPEG is not installed: run `npm ci --prefix {folder}` "
                               f"(make setup does it)")
        self.pid = os.getpid()
        self.lock = threading.Lock()
        # node's messages go to a file: a pipe nobody reads would fill and stop it
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen([node, str(folder / "server.mjs")], cwd=folder,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.errors)
        atexit.register(self.close)

    def encode(self, plane: np.ndarray, quality: int, spec: EncoderSpec) -> bytes:
        h, w = plane.shape[:2]
        channels = 1 if plane.ndim == 2 else 3
        subsample = -1 if spec.subsampling is None else _MOZJPEG_SAMPLING[spec.subsampling]
        table = 3 if spec.quant_table is None else spec.quant_table
        header = struct.pack("<8i", w, h, channels, quality, table, subsample,
                             int(spec.trellis), 0)
        with self.lock:
            assert self.process.stdin and self.process.stdout
            try:
                self.process.stdin.write(header + plane.tobytes())
                self.process.stdin.flush()
                size = struct.unpack("<I", _read_exactly(self.process.stdout, 4))[0]
                data = _read_exactly(self.process.stdout, size)
            except (BrokenPipeError, EOFError):
                raise EncoderError(f"the MozJPEG encoder stopped: {self._stderr()}") from None
        if size == 0:
            raise EncoderError(f"MozJPEG could not encode a {w}x{h} image")
        return data

    def _stderr(self) -> str:
        self.process.kill()
        self.process.wait()
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def close(self) -> None:
        if self.process.poll() is None and self.pid == os.getpid():
            self.process.stdin.close()  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _read_exactly(stream: io.BufferedIOBase | object, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError
        data += chunk
    return data


_server: _MozjpegServer | None = None
_server_lock = threading.Lock()


def _mozjpeg() -> _MozjpegServer:
    global _server
    with _server_lock:
        if _server is None or _server.pid != os.getpid() or _server.process.poll() is not None:
            _server = _MozjpegServer()
        return _server


def available(name: str) -> bool:
    """Whether encoder `name` can run here (MozJPEG needs node and its npm package, jpegli
    the pyjpegli wheel)."""
    try:
        encode_with(EncoderSpec(name=name), np.zeros((8, 8, 3), np.uint8), 50)
    except EncoderError:
        return False
    return True
