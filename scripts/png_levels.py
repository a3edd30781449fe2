"""Time and size of the restored PNG at each zlib level: why `fbcnn restore` writes level 1.

    python scripts/png_levels.py [restored.png ...]

Without arguments it restores nothing: it needs PNGs (for example what `fbcnn restore` wrote).
Prints, per level, the best of 3 save times and the file size, summed over the files."""

from __future__ import annotations

import io
import sys
import time

from PIL import Image


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit("usage: python scripts/png_levels.py restored.png [...]")
    images = [Image.open(p) for p in paths]
    for image in images:
        image.load()
    print("| zlib level | seconds (best of 3) | MB |")
    print("| ---: | ---: | ---: |")
    for level in (6, 3, 2, 1):
        seconds, size = 0.0, 0
        for image in images:
            best = float("inf")
            for _ in range(3):
                buffer = io.BytesIO()
                start = time.perf_counter()
                image.save(buffer, "PNG", compress_level=level)
                best = min(best, time.perf_counter() - start)
            seconds += best
            size += buffer.tell()
        print(f"| {level} | {seconds:.2f} | {size / 1e6:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
