"""False double-JPEG claims on single JPEGs, as `fbcnn restore` and `fbcnn inspect` see files.

Writes single JPEGs of varied size (crops of 48 to 1300 pixels a side), EXIF orientation
(1..8), encoder (libjpeg 4:2:0 / 4:4:4, MozJPEG, jpegli) and quality (10..95) from the
validation photos, reads each back with `fbcnn.images.files.read_image` and runs the pipeline's
double-JPEG analysis (`fbcnn.engine.analysis.analyse_double`). Every file is a single JPEG, so
every "detected" is a false claim; images under the analysis' minimum size are declined.
Also: PNG files holding decoded, shifted double JPEGs (QF1 then QF2, cropped) and whether
the analysis from pixels finds QF1 within 5.

    python scripts/probes/double_jpeg_false_claims.py [--count 200] [--data ../shared/datasets]
        [--turned] [--sides 64,96x128,128,256,320 --judge-all]

`--sides` writes square (or HxW) crops of those sizes instead, EXIF orientation 1, and
prints the claims per encoder and size; `--judge-all` lifts the analysis' minimum size.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from fbcnn.engine.analysis import analyse_double
from fbcnn.images.files import read_image
from fbcnn.jpeg.encoders import EncoderSpec, available, compress_with, encode_with
from fbcnn.jpeg.trace import detect

ROOT = Path(__file__).resolve().parents[2]


def with_orientation(data: bytes, orientation: int) -> bytes:
    """JPEG bytes with an EXIF APP1 segment carrying `orientation`, pixels untouched."""
    if orientation == 1:
        return data
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    if not payload.startswith(b"Exif"):
        payload = b"Exif\x00\x00" + payload
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[:2] + segment + data[2:]


def single_claims(paths: list[Path], encoders: list[EncoderSpec], sizes: list[tuple[int, ...]],
                  count: int, rng: np.random.Generator, tmp: Path) -> None:
    """Write `count` single JPEGs (random crops of the photos, or crops of `sizes`, each
    encoder in turn) and print the double claims the analysis makes on them."""
    claims, declined, by_kind, per_size = 0, 0, Counter(), Counter()
    for i in range(count):
        photo = np.asarray(Image.open(paths[int(rng.integers(len(paths)))]).convert("RGB"))
        h, w = photo.shape[:2]
        if sizes:
            side_h, side_w = sizes[(i // len(encoders)) % len(sizes)]
        else:
            side_h, side_w = (int(rng.integers(48, s + 1)) for s in (h, w))
        y, x = int(rng.integers(0, h - side_h + 1)), int(rng.integers(0, w - side_w + 1))
        crop = np.ascontiguousarray(photo[y:y + side_h, x:x + side_w])
        spec = encoders[i % len(encoders)]
        quality = int(rng.integers(10, 96))
        orientation = 1 if sizes else int(rng.integers(1, 9))
        path = tmp / f"single_{i}.jpg"
        path.write_bytes(with_orientation(encode_with(spec, crop, quality), orientation))
        verdict = analyse_double(read_image(path))
        if verdict is None:
            declined += 1
        elif verdict.detected:
            claims += 1
            per_size[(spec.label, f"{side_h}x{side_w}")] += 1
            by_kind[f"{spec.label}, orientation {orientation}, {side_w}x{side_h}, "
                    f"quality {quality}: {verdict.kind} QF1 {verdict.qf1}"] += 1
    print(f"single JPEGs: {count}, declined (too small) {declined}, "
          f"false double claims {claims} ({100 * claims / count:.1f}%)")
    for what in by_kind:
        print(f"  claim: {what}")
    if sizes:
        for (label, size), n in sorted(per_size.items()):
            print(f"  {label}, {size}: {n} claims")


def png_doubles(paths: list[Path], doubles: int, rng: np.random.Generator, tmp: Path) -> None:
    """Save `doubles` shifted double JPEGs (QF 20, then 60, cropped) as PNGs and print how
    often the analysis from pixels finds QF1 within 5."""
    found = 0
    for i in range(doubles):
        photo = np.asarray(Image.open(paths[int(rng.integers(len(paths)))]).convert("RGB"))
        first = compress_with(EncoderSpec("libjpeg"), photo, 20)[0]
        dy, dx = (int(v) for v in rng.integers(1, 8, 2))
        second = compress_with(EncoderSpec("libjpeg"), np.ascontiguousarray(first[dy:, dx:]),
                               60)[0]
        ey, ex = (int(v) for v in rng.integers(0, 8, 2))
        path = tmp / f"double_{i}.png"
        Image.fromarray(np.ascontiguousarray(second[ey:, ex:])).save(path)
        image = read_image(path)
        verdict = analyse_double(image, trace=detect(image.pixels))
        ok = verdict is not None and verdict.detected and verdict.qf1 is not None \
            and abs(verdict.qf1 - 20) <= 5
        found += ok
    print(f"PNG-saved double JPEGs (QF 20, shifted, then 60, cropped): QF1 found within 5 "
          f"in {found} of {doubles}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--doubles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turned", action="store_true",
                        help="analyse the pixels as shown (EXIF orientation applied), as "
                             "fbcnn did before it analysed the stored grid: for comparison")
    parser.add_argument("--sides", default=None)
    parser.add_argument("--judge-all", action="store_true")
    args = parser.parse_args(argv)
    if args.judge_all:
        from fbcnn.engine import analysis

        analysis.DOUBLE_MIN_SIDE, analysis.DOUBLE_MIN_PIXELS = 1, 0
    if args.turned:
        from fbcnn.engine import analysis

        analysis.stored_pixels = lambda image: image.pixels
    rng = np.random.default_rng(args.seed)
    folders = [args.data / "val/color/kodak24", args.data / "val/color/bsds500_test"]
    paths = sorted(p for f in folders for p in f.iterdir())
    encoders = [EncoderSpec("libjpeg"), EncoderSpec("libjpeg", "4:4:4")]
    encoders += [EncoderSpec(n) for n in ("mozjpeg", "jpegli") if available(n)]
    sizes = [tuple(int(v) for v in (s.split("x") if "x" in s else (s, s)))
             for s in args.sides.split(",")] if args.sides else []
    with tempfile.TemporaryDirectory() as tmp:
        single_claims(paths, encoders, sizes, args.count, rng, Path(tmp))
        png_doubles(paths, args.doubles, rng, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
