"""Fuzzing: damaged JPEG / PNG / WebP files through `imageio.read_image` and the CLI.

Small valid files (colour 4:2:0/4:2:2/4:4:4, grey and progressive JPEGs; RGB, RGBA, L and
16-bit PNGs; lossy and lossless WebPs) are made with Pillow and mutated: bit flips, byte
runs, truncations, duplicated / removed / swapped / spliced JPEG segments and PNG / RIFF
chunks, absurd dimensions in SOF / IHDR / VP8, huge ICC and EXIF segments, zlib bombs,
empty and random files. Every case is made from (seed, index) alone and its file name is
`f<index>_s<seed>_<kind>_<mutation>.<ext>`, so a failure names what reproduces it:
`make_case(seed, index)`; FBCNN_FUZZ_SEED picks another seed.

In-process, `read_image` must return a well-formed image or raise ImageError with one line
naming the file, warn nothing and take little time. Through the CLI (one `fbcnn restore`
and one `fbcnn inspect` process over the whole folder): no traceback, one `error: <path>:
<reason>` line per failed input and nothing else for it, an output for every other input,
no temp file anywhere, inputs unchanged, a non-zero exit when anything failed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_network
from PIL import Image

from fbcnn.images.files import MIN_SIDE, ImageError, read_image
from fbcnn.networks.checkpoints import save_network

SEED = int(os.environ.get("FBCNN_FUZZ_SEED", "1103"))
READ_SECONDS = 5.0  # one read_image of a tiny (or refused) file; a hang shows far above


# ---------------------------------------------------------------------------- valid files


def _content(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """Photo-like uint8 pixels: a smooth upscaled field, edges and a little noise."""
    coarse = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    field = Image.fromarray(coarse[:, :, 0] if channels == 1 else coarse, mode)
    arr = np.asarray(field.resize((w, h), Image.Resampling.BILINEAR), np.float64)
    if channels == 1:
        arr = arr[:, :, None]
    arr = arr + rng.normal(0, 6, arr.shape)
    arr[: h // 3, : w // 2] += 40
    return np.clip(arr, 0, 255).astype(np.uint8)


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _valid_jpeg(kind: str, rng: np.random.Generator, h: int, w: int, q: int) -> bytes:
    """A small valid JPEG of this kind (4:2:0, 4:2:2, 4:4:4, grey, progressive)."""
    grey = kind == "jpeggrey" or (kind == "jpegprog" and rng.random() < 0.4)
    img = _pil(_content(rng, h, w, 1 if grey else 3))
    options: dict[str, object] = {"quality": q}
    if kind == "jpegprog":
        options.update(progressive=True, optimize=bool(rng.random() < 0.5))
    elif not grey:
        options["subsampling"] = {"jpeg420": 2, "jpeg422": 1, "jpeg444": 0}[kind]
    if rng.random() < 0.3:
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(1, 9))  # orientation
        options["exif"] = exif.tobytes()
    return _save(img, "JPEG", **options)


def _valid(kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """(file bytes, extension) of a small valid image of this kind."""
    h, w = (int(v) for v in rng.integers(24, 65, 2))
    q = int(rng.integers(5, 96))
    if kind.startswith("jpeg"):
        return _valid_jpeg(kind, rng, h, w, q), "jpg"
    if kind == "pngrgb":
        return _save(_pil(_content(rng, h, w, 3)), "PNG"), "png"
    if kind == "pngl":
        return _save(_pil(_content(rng, h, w, 1)), "PNG"), "png"
    if kind == "pngrgba":
        img = _pil(_content(rng, h, w, 3)).convert("RGBA")
        img.putalpha(_pil(_content(rng, h, w, 1)))
        return _save(img, "PNG"), "png"
    if kind == "png16":
        arr = _content(rng, h, w, 1)[:, :, 0].astype(np.uint16) * 257
        return _save(Image.fromarray(arr), "PNG"), "png"
    if kind == "webp":
        return _save(_pil(_content(rng, h, w, 3)), "WEBP", quality=q), "webp"
    if kind == "webplossless":
        img = _pil(_content(rng, h, w, 3))
        if rng.random() < 0.5:
            img = img.convert("RGBA")
        return _save(img, "WEBP", lossless=True), "webp"
    raise AssertionError(kind)


KINDS = ("jpeg420", "jpeg422", "jpeg444", "jpeggrey", "jpegprog", "pngrgb", "pngl",
         "pngrgba", "png16", "webp", "webplossless")


# ----------------------------------------------------------------------- container parsing


@dataclass
class Part:
    start: int
    end: int
    tag: bytes  # JPEG marker (2 bytes), PNG chunk type or RIFF fourcc


def _jpeg_segments(data: bytes) -> tuple[list[Part], int]:
    """Header segments after SOI up to and including the first SOS; (parts, scan start)."""
    parts: list[Part] = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i:i + 2]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        parts.append(Part(i, i + 2 + length, marker))
        i += 2 + length
        if marker == b"\xff\xda":
            break
    return parts, i


def _png_chunks(data: bytes) -> list[Part]:
    parts, i = [], 8
    while i + 8 <= len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        parts.append(Part(i, min(len(data), i + 12 + length), data[i + 4:i + 8]))
        i += 12 + length
    return parts


def _riff_chunks(data: bytes) -> list[Part]:
    parts, i = [], 12
    while i + 8 <= len(data):
        length = struct.unpack("<I", data[i + 4:i + 8])[0]
        end = min(len(data), i + 8 + length + (length & 1))
        parts.append(Part(i, end, data[i:i + 4]))
        i = end
    return parts


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(tag + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)


def _riff_chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _riff_fix(data: bytes) -> bytes:
    return data[:4] + struct.pack("<I", len(data) - 8) + data[8:]


def _parts(data: bytes, ext: str) -> list[Part]:
    if ext == "jpg":
        return _jpeg_segments(data)[0]
    return _png_chunks(data) if ext == "png" else _riff_chunks(data)


# ------------------------------------------------------------------------------ mutations

Mutator = Callable[[bytes, str, np.random.Generator], bytes]


def _bitflip(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 17))):
        pos = int(rng.integers(2, len(out)))
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _bytes(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(1, 33))
        pos = int(rng.integers(2, max(3, len(out) - n)))
        out[pos:pos + n] = rng.bytes(n)
    return bytes(out)


def _truncate(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(1, len(data)))]


def _empty(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    return b""


def _random(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    body = rng.bytes(int(rng.integers(1, 4096)))
    magic = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "webp": b"RIFF"}[ext]
    return magic + body if rng.random() < 0.5 else body


def _trailing(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    return data + (data if rng.random() < 0.3 else rng.bytes(int(rng.integers(1, 2048))))


def _partdup(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    parts = _parts(data, ext)
    if not parts:
        return _bitflip(data, ext, rng)
    p = parts[int(rng.integers(len(parts)))]
    at = parts[int(rng.integers(len(parts)))].start
    out = data[:at] + data[p.start:p.end] + data[at:]
    return _riff_fix(out) if ext == "webp" else out


def _partdel(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    parts = _parts(data, ext)
    if not parts:
        return _truncate(data, ext, rng)
    p = parts[int(rng.integers(len(parts)))]
    out = data[:p.start] + data[p.end:]
    return _riff_fix(out) if ext == "webp" else out


def _partswap(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    parts = _parts(data, ext)
    if len(parts) < 2:
        return _partdup(data, ext, rng)
    i, j = sorted(int(v) for v in rng.choice(len(parts), 2, replace=False))
    a, b = parts[i], parts[j]
    out = (data[:a.start] + data[b.start:b.end] + data[a.end:b.start] + data[a.start:a.end]
           + data[b.end:])
    return _riff_fix(out) if ext == "webp" else out


def _splice(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    """A segment / chunk from a file of another kind, put in place of one of this file's."""
    other_kind = {"jpg": ["jpeg420", "jpeggrey", "jpegprog", "jpeg444"],
                  "png": ["pngrgb", "pngl", "pngrgba", "png16"],
                  "webp": ["webp", "webplossless"]}[ext]
    donor, _ = _valid(str(rng.choice(other_kind)), rng)
    mine, theirs = _parts(data, ext), _parts(donor, ext)
    if not mine or not theirs:
        return _bitflip(data, ext, rng)
    p = mine[int(rng.integers(len(mine)))]
    q = theirs[int(rng.integers(len(theirs)))]
    out = data[:p.start] + donor[q.start:q.end] + data[p.end:]
    return _riff_fix(out) if ext == "webp" else out


ABSURD = (0, 1, 7, 8, 9000, 12000, 16383, 16384, 20000, 30000, 65500, 65535)
ABSURD32 = (0, 1, 8, 12000, 100_000, 2**31 - 1, 2**31, 2**32 - 1)


def _dims(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    """Absurd width / height in the header (the data stays the small image's)."""
    out = bytearray(data)
    if ext == "jpg":
        sofs = [p for p in _jpeg_segments(data)[0]
                if p.tag[1] in range(0xC0, 0xD0) and p.tag[1] not in (0xC4, 0xC8, 0xCC)]
        if not sofs:
            return _bitflip(data, ext, rng)
        s = sofs[0].start
        h, w = (int(rng.choice(ABSURD)) if rng.random() < 0.7 else int(rng.integers(1, 65536))
                for _ in range(2))
        out[s + 5:s + 9] = struct.pack(">HH", h, w)
        if rng.random() < 0.2:  # component count, too
            out[s + 9] = int(rng.choice([0, 2, 4, 255]))
        return bytes(out)
    if ext == "png":
        ihdr = _png_chunks(data)[0]
        body = bytearray(data[ihdr.start + 8:ihdr.end - 4])
        body[0:8] = struct.pack(">II", int(rng.choice(ABSURD32)), int(rng.choice(ABSURD32)))
        if rng.random() < 0.3:  # bit depth, colour type, interlace
            body[int(rng.integers(8, 13))] = int(rng.choice([0, 1, 2, 3, 5, 7, 16, 255]))
        return data[:ihdr.start] + _png_chunk(b"IHDR", bytes(body)) + data[ihdr.end:]
    for p in _riff_chunks(data):  # webp: VP8 frame header or VP8L bit fields
        if p.tag == b"VP8 ":
            at = p.start + 8 + 6
            w, h = (int(rng.integers(0, 1 << 14)) for _ in range(2))
            out[at:at + 4] = struct.pack("<HH", w, h)
            return bytes(out)
        if p.tag == b"VP8L":
            at = p.start + 8 + 1
            bits = struct.unpack("<I", data[at:at + 4])[0]
            w, h = (int(rng.integers(0, 1 << 14)) for _ in range(2))
            bits = (bits & ~((1 << 28) - 1)) | w | (h << 14)
            out[at:at + 4] = struct.pack("<I", bits)
            return bytes(out)
    return _bitflip(data, ext, rng)


def _evil_exif(rng: np.random.Generator) -> bytes:
    """A TIFF-structured EXIF block that lies: huge entry counts, loops, offsets beyond it,
    odd orientation values, or plain garbage."""
    choice = int(rng.integers(0, 5))
    if choice == 0:
        return b"MM\x00*" + rng.bytes(int(rng.integers(8, 60000)))
    if choice == 1:  # IFD claiming 65535 entries
        return b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 65535) + rng.bytes(600)
    if choice == 2:  # IFD whose next-IFD offset points back at itself
        entry = struct.pack("<HHII", 0x0112, 3, 1, int(rng.integers(0, 65536)))
        return b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + entry + struct.pack("<I", 8)
    if choice == 3:  # entries with counts and offsets far beyond the block
        entries = b"".join(struct.pack("<HHII", int(rng.integers(0, 65536)),
                                       int(rng.integers(0, 14)), 0x7FFFFFFF,
                                       int(rng.integers(0, 2**32))) for _ in range(20))
        return b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 20) + entries + b"\0" * 4
    # a big block of valid-looking tags (a long maker note)
    entry = struct.pack("<HHII", 0x927C, 7, 60000, 26)
    return (b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + entry + b"\0" * 4
            + rng.bytes(60000))


def _bigmeta(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    """Huge or lying ICC / EXIF / text metadata, in the container's own way."""
    what = str(rng.choice(["icc", "exif"]))
    if ext == "jpg":
        parts, _ = _jpeg_segments(data)
        at = parts[0].start if parts else 2
        if what == "icc":  # many APP2 ICC_PROFILE chunks, numbered or not consistently
            count = int(rng.integers(1, 256))
            chunks = []
            for i in range(int(rng.integers(1, 40))):
                seq = i + 1 if rng.random() < 0.8 else int(rng.integers(0, 256))
                body = b"ICC_PROFILE\0" + bytes([seq, count]) + rng.bytes(65000)
                chunks.append(b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body)
            return data[:at] + b"".join(chunks) + data[at:]
        body = (b"Exif\0\0" + _evil_exif(rng))[:65533]
        return data[:at] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[at:]
    if ext == "png":
        chunks = _png_chunks(data)
        at = chunks[1].start if len(chunks) > 1 else 8
        if what == "icc":
            size = int(rng.choice([1_000, 2_000_000, 50_000_000]))  # a zlib bomb at the top
            payload = b"icc\0\0" + zlib.compress(b"\0" * size if size > 2_000_000
                                                 else rng.bytes(size), 9)
            extra = _png_chunk(b"iCCP", payload)
        elif rng.random() < 0.5:
            extra = _png_chunk(b"eXIf", _evil_exif(rng))
        else:
            extra = _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 30_000_000, 9))
        return data[:at] + extra + data[at:]
    # webp: a VP8X container with ICCP / EXIF chunks (Pillow writes the layout)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        icc = rng.bytes(int(rng.integers(1, 300_000))) if what == "icc" else None
        exif = (b"Exif\0\0" + _evil_exif(rng)) if what == "exif" else None
        options: dict[str, object] = {"lossless": True}
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
        return _save(im, "WEBP", **options)


def _wrongext(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    return data  # saved under another format's extension (see make_case)


MUTATIONS: dict[str, tuple[float, Mutator]] = {
    "valid": (0.08, lambda d, e, r: d),
    "bitflip": (0.18, _bitflip),
    "bytes": (0.10, _bytes),
    "trunc": (0.10, _truncate),
    "empty": (0.01, _empty),
    "random": (0.04, _random),
    "trailing": (0.04, _trailing),
    "partdup": (0.08, _partdup),
    "partdel": (0.08, _partdel),
    "partswap": (0.05, _partswap),
    "splice": (0.06, _splice),
    "dims": (0.10, _dims),
    "bigmeta": (0.05, _bigmeta),
    "wrongext": (0.03, _wrongext),
}


def make_case(seed: int, index: int) -> tuple[str, bytes]:
    """(file name, bytes) of fuzz case `index` of `seed`: reproducible on its own."""
    rng = np.random.default_rng([seed, index])
    kind = str(rng.choice(KINDS))
    names = list(MUTATIONS)
    weights = np.array([MUTATIONS[n][0] for n in names])
    mutation = str(rng.choice(names, p=weights / weights.sum()))
    data, ext = _valid(kind, rng)
    data = MUTATIONS[mutation][1](data, ext, rng)
    if mutation == "wrongext":
        ext = str(rng.choice([e for e in ("jpg", "png", "webp") if e != ext]))
    return f"f{index:05d}_s{seed}_{kind}_{mutation}.{ext}", data


def write_cases(folder: Path, seed: int, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        name, data = make_case(seed, index)
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


CASE_ID = re.compile(r"f(\d{5})_s\d+_")


def case_id(text: str) -> int | None:
    m = CASE_ID.search(text)
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------- in-process checks


@dataclass
class ReadOutcome:
    path: Path
    ok: bool
    message: str
    seconds: float


def read_one(path: Path) -> ReadOutcome:
    """read_image on one file; AssertionError naming the case for anything but a
    well-formed image or a one-line ImageError, or for a warning that got out."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            img = read_image(path)
        except ImageError as e:
            message = str(e)
            assert message.startswith(f"{path}: ") and len(message) > len(f"{path}: "), message
            assert "\n" not in message and "\r" not in message, message
            outcome = ReadOutcome(path, False, message, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - what the fuzzer is for
            raise AssertionError(f"{path.name}: read_image raised\n"
                                 f"{traceback.format_exc()}") from exc
        else:
            h, w, c = img.pixels.shape
            assert img.pixels.dtype == np.uint8 and c in (1, 3), (path.name, img.pixels.shape)
            assert min(h, w) >= MIN_SIDE, (path.name, img.pixels.shape)
            assert img.alpha is None or img.alpha.shape == (h, w), path.name
            if img.quantization is not None:
                assert all(len(t) == 64 and min(t) >= 1 for t in img.quantization.values())
            outcome = ReadOutcome(path, True, "", time.perf_counter() - start)
    assert not caught, f"{path.name}: warnings escaped: {[str(w.message) for w in caught]}"
    assert outcome.seconds < READ_SECONDS, f"{path.name}: read took {outcome.seconds:.1f} s"
    return outcome


def fuzz_read(folder: Path, seed: int, count: int) -> dict[str, Counter]:
    paths = write_cases(folder, seed, count)
    tally: dict[str, Counter] = {"decoded": Counter(), "refused": Counter()}
    slowest = 0.0
    for path in paths:
        outcome = read_one(path)
        mutation = path.stem.split("_")[-1]
        tally["decoded" if outcome.ok else "refused"][mutation] += 1
        slowest = max(slowest, outcome.seconds)
    print(f"read_image: {count} files (seed {seed}): "
          f"{sum(tally['decoded'].values())} decoded, {sum(tally['refused'].values())} "
          f"refused; slowest {slowest:.2f} s; decoded by mutation {dict(tally['decoded'])}")
    return tally


# ------------------------------------------------------------------------------ CLI checks


def _cli_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="default",
               COLUMNS="120")
    env.pop("PYTHONPATH", None)
    return env


def fbcnn_together(*commands: list[str | Path],
                   timeout: float) -> list[subprocess.CompletedProcess[str]]:
    """Run `fbcnn ARGS` processes at the same time (one thread each); their results."""
    procs = [subprocess.Popen([sys.executable, "-m", "fbcnn", *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_cli_env()) for args in commands]
    results = []
    try:
        for proc, args in zip(procs, commands, strict=True):
            stdout, stderr = proc.communicate(timeout=timeout)  # a hang fails the test here
            results.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def stderr_lines(text: str) -> list[str]:
    """Lines as a terminal shows them: tqdm redraws with \\r, the last segment is seen."""
    return [line.split("\r")[-1].strip() for line in text.split("\n")]


def error_lines(stderr: str, paths: list[Path]) -> dict[int, list[str]]:
    """`error: <path>: <reason>` lines by case id; every line naming a case must be one."""
    by_id: dict[int, list[str]] = {}
    for line in stderr_lines(stderr):
        cid = case_id(line)
        if cid is None:
            continue
        m = re.fullmatch(r"error: (\S+?): (\S.*)", line)
        assert m, f"a line about an input that is not a one-line error: {line!r}"
        assert case_id(m.group(1)) == cid, line
        by_id.setdefault(cid, []).append(line)
    return by_id


def sha256s(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def check_cli_batch(tmp_path: Path, paths: list[Path], timeout: float) -> dict[str, int]:
    folder, out = paths[0].parent, tmp_path / "out"
    model = tmp_path / "tiny_color.safetensors"
    save_network(tiny_network(3), model)
    before = sha256s(paths)
    ids = {case_id(p.name) for p in paths}
    assert len(ids) == len(paths)  # unique stems

    done, shown = fbcnn_together(["restore", folder, "-o", out, "--model", model],
                                 ["inspect", "--json", "--model", model, *paths],
                                 timeout=timeout)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    errors = error_lines(done.stderr, paths)
    assert all(len(v) == 1 for v in errors.values()), {k: v for k, v in errors.items()
                                                       if len(v) > 1}
    outputs: dict[int, list[Path]] = {}
    for p in out.rglob("*") if out.exists() else []:
        cid = case_id(p.name)
        assert cid is not None, f"unexpected file in the output folder: {p}"
        outputs.setdefault(cid, []).append(p)
    assert not set(errors) & set(outputs), f"output written for failed inputs: " \
                                           f"{sorted(set(errors) & set(outputs))}"
    assert set(errors) | set(outputs) == ids, f"inputs with neither output nor error: " \
                                              f"{sorted(ids - set(errors) - set(outputs))}"
    assert (done.returncode != 0) == bool(errors), (done.returncode, len(errors))
    for files in outputs.values():
        for f in files:
            with Image.open(f) as im:
                im.load()
    assert not list(tmp_path.rglob("*.tmp")), list(tmp_path.rglob("*.tmp"))
    assert sha256s(paths) == before

    # every input read_image accepts must restore: a refusal after decoding is a bug too
    readable = {case_id(p.name) for p in paths if read_one(p).ok}
    assert not readable & set(errors), [errors[i] for i in sorted(readable & set(errors))]

    assert "Traceback" not in shown.stderr + shown.stdout, shown.stderr[-3000:]
    assert "Warning" not in shown.stderr, shown.stderr[-3000:]
    inspect_errors = error_lines(shown.stderr, paths)
    assert all(len(v) == 1 for v in inspect_errors.values())
    infos = json.loads(shown.stdout) if shown.stdout.strip() else []
    infos = infos if isinstance(infos, list) else [infos]
    info_ids = {case_id(i["path"]) for i in infos}
    assert len(infos) == len(info_ids) and not info_ids & set(inspect_errors)
    assert info_ids | set(inspect_errors) == ids
    assert set(inspect_errors) == set(errors)  # the same files fail both ways
    assert (shown.returncode != 0) == bool(inspect_errors)
    assert not list(tmp_path.rglob("*.tmp"))
    figures = {"inputs": len(paths), "restored": len(outputs), "failed": len(errors)}
    print(f"fbcnn restore + inspect: {figures}")
    return figures


# ----------------------------------------------------------------------------------- tests


def test_cases_are_reproducible_and_named_by_mutation() -> None:
    for index in (0, 7, 123):
        assert make_case(SEED, index) == make_case(SEED, index)
    names = [make_case(SEED, i)[0] for i in range(200)]
    kinds = {n.split("_")[2] for n in names}
    mutations = {n.split("_")[3].split(".")[0] for n in names}
    assert kinds == set(KINDS) and mutations == set(MUTATIONS), (kinds, mutations)


def test_fuzz_read_image_quick(tmp_path: Path) -> None:
    tally = fuzz_read(tmp_path / "in", SEED, 100)
    assert sum(tally["decoded"].values()) >= 10  # the valid and lightly damaged ones
    assert sum(tally["refused"].values()) >= 30


def test_fuzz_cli_quick(tmp_path: Path) -> None:
    paths = write_cases(tmp_path / "in", SEED + 1, 40)
    figures = check_cli_batch(tmp_path, paths, timeout=240)
    assert figures["restored"] >= 5 and figures["failed"] >= 10


@pytest.mark.slow
def test_fuzz_read_image_campaign(tmp_path: Path) -> None:
    total = 0
    for seed in (SEED, SEED + 2):
        tally = fuzz_read(tmp_path / f"in{seed}", seed, 1500)
        total += sum(tally["decoded"].values()) + sum(tally["refused"].values())
    assert total >= 2000


@pytest.mark.slow
def test_fuzz_cli_campaign(tmp_path: Path) -> None:
    paths = write_cases(tmp_path / "in", SEED + 3, 400)
    figures = check_cli_batch(tmp_path, paths, timeout=1800)
    assert figures["inputs"] == 400
