"""Detection rates of the double-JPEG analysis on photos, and its time: the check behind the
scan's pixel budget (`fbcnn.jpeg.recompress._scan_budget`).

    python scripts/probes/double_jpeg_rates.py [--folder DIR] [--limit N] [--full-scan]
        [--scan-pixels N]
    python scripts/probes/double_jpeg_rates.py --timing      # on an idle machine

`--timing` instead times one analysis (best of 3) of a 3-MP photo (the first photo of the
folder enlarged to 2048x1536) saved at QF 20, 75 and 90, with the budget and with the full
scan, interleaved.

Each photo (colour, decoded as a JPEG decoder would) is compressed as single JPEGs at several
QFs and as non-aligned double JPEGs JPEG(shift(JPEG(x, QF1)), QF2); the analysis is run with
the file's last QF, as `fbcnn restore` does. `--full-scan` gives the scan its whole sample at
every QF (the analysis before the budget), for an A/B on the same photos. Prints, per case,
how many were called double, how many of the doubles had the right offset and QF1 within 5,
and the mean seconds per analysis."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fbcnn.jpeg import recompress
from fbcnn.jpeg.degrade import double_jpeg
from fbcnn.jpeg.tables import compress

DOUBLES = [(10, 30), (10, 50), (20, 60), (30, 50), (30, 75), (50, 90)]
SHIFTS = [(4, 4), (3, 5), (1, 6)]
SINGLES = [20, 50, 75, 90, 95]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="../shared/datasets/val/color/kodak24")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--full-scan", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--scan-pixels", type=int, default=None,
                        help="the scan's sample size (default: recompress._SCAN_PIXELS)")
    args = parser.parse_args()
    if args.scan_pixels:
        recompress._SCAN_PIXELS = args.scan_pixels  # noqa: SLF001 - an A/B switch
    if args.timing:
        timing(args.folder)
        return
    if args.full_scan:
        recompress._SCAN_QS = 10**9  # noqa: SLF001 - the A/B switch of this check
    paths = sorted(p for p in Path(args.folder).iterdir()
                   if p.suffix.lower() in {".png", ".jpg", ".bmp"})[:args.limit]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    print(f"{len(photos)} photos from {args.folder}, "
          f"{'full scan' if args.full_scan else 'scan with its pixel budget'}")
    print("| case | called double | right offset and QF1 (+-5) | seconds |")
    print("| --- | ---: | ---: | ---: |")
    for qf in SINGLES:
        called, seconds = 0, 0.0
        for photo in photos:
            start = time.perf_counter()
            verdict = recompress.analyse(compress(photo, qf), qf)
            seconds += time.perf_counter() - start
            called += verdict.detected
        print(f"| single QF {qf} | {called} / {len(photos)} | | {seconds / len(photos):.2f} |")
    for qf1, qf2 in DOUBLES:
        called = right = 0
        seconds = 0.0
        for shift in SHIFTS:
            for photo in photos:
                degraded = double_jpeg(photo, qf1, qf2, shift).degraded
                start = time.perf_counter()
                verdict = recompress.analyse(degraded, qf2)
                seconds += time.perf_counter() - start
                called += verdict.detected
                old_grid = ((8 - shift[0]) % 8, (8 - shift[1]) % 8)
                right += (verdict.detected and verdict.offset == old_grid
                          and verdict.qf1 is not None and abs(verdict.qf1 - qf1) <= 5)
        n = len(photos) * len(SHIFTS)
        print(f"| double {qf1} -> {qf2} | {called} / {n} | {right} / {n} | {seconds / n:.2f} |")


def timing(folder: str) -> None:
    first = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".png", ".jpg"})[0]
    photo = np.asarray(Image.open(first).convert("RGB").resize((2048, 1536),
                                                               Image.Resampling.LANCZOS))
    budget_qs = recompress._SCAN_QS  # noqa: SLF001
    print(f"{first.name} enlarged to 2048x1536, seconds per analysis (best of 3)")
    print("| last QF | with the budget | full scan |")
    print("| ---: | ---: | ---: |")
    for qf in (20, 75, 90):
        jpeg = compress(photo, qf)
        best = {"budget": float("inf"), "full": float("inf")}
        for _ in range(3):
            for mode, qs in (("budget", budget_qs), ("full", 10**9)):
                recompress._SCAN_QS = qs  # noqa: SLF001
                start = time.perf_counter()
                recompress.analyse(jpeg, qf)
                best[mode] = min(best[mode], time.perf_counter() - start)
        recompress._SCAN_QS = budget_qs  # noqa: SLF001
        print(f"| {qf} | {best['budget']:.2f} | {best['full']:.2f} |")


if __name__ == "__main__":
    main()
