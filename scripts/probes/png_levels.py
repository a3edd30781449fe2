"""Time and size of the restored PNG: Pillow at each zlib level, and `fbcnn.images.png` (what
`fbcnn restore` writes: level 1, Sub/Up filters, on 1 and on all threads).

    python scripts/probes/png_levels.py [restored.png ...]

Without arguments it restores nothing: it needs PNGs (for example what `fbcnn restore` wrote).
Prints, per writer, the best of 3 save times and the file size, summed over the files."""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from fbcnn.device import available_cpus
from fbcnn.images.png import write_png


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PNG",
                        help="PNG files, for example what `fbcnn restore` wrote")
    paths = parser.parse_args(argv).paths
    images = [Image.open(p) for p in paths]
    for image in images:
        image.load()
    arrays = [np.asarray(image).reshape(image.height, image.width, -1) for image in images]
    threads = available_cpus()

    def pillow(level: int) -> Callable[[int, io.BytesIO], None]:
        return lambda i, buffer: images[i].save(buffer, "PNG", compress_level=level)

    def ours(workers: int) -> Callable[[int, io.BytesIO], None]:
        return lambda i, buffer: write_png(buffer, arrays[i], workers=workers)

    writers = [(f"Pillow, zlib level {level}", pillow(level)) for level in (6, 3, 2, 1)]
    writers += [("fbcnn.images.png, 1 thread", ours(1)),
                (f"fbcnn.images.png, {threads} threads", ours(threads))]
    print("| writer | seconds (best of 3) | MB |")
    print("| --- | ---: | ---: |")
    for name, save in writers:
        seconds, size = 0.0, 0
        for i in range(len(images)):
            best = float("inf")
            for _ in range(3):
                buffer = io.BytesIO()
                start = time.perf_counter()
                save(i, buffer)
                best = min(best, time.perf_counter() - start)
            seconds += best
            size += buffer.tell()
        print(f"| {name} | {seconds:.2f} | {size / 1e6:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
