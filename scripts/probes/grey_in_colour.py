"""Black-and-white photos saved as colour JPEGs: what each way of restoring them gives.

The first N images of a colour folder (default Kodak), turned grey, saved as colour JPEGs
(4:2:0, the IJG tables) at each QF, read as `fbcnn restore` reads them (three equal
channels), restored with the JPEG consistency step by: the colour model as it was (its
network's three channels, projected: the colour it leaves is measured), the colour model
now (the mean of its channels, `engine.finish`), and the grey model (what `fbcnn restore`
picks for such an image now). PSNR on the grey image, means over the images.

    python scripts/probes/grey_in_colour.py --limit 24
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fbcnn.engine.analysis import jpeg_tables
from fbcnn.engine.model import load_model
from fbcnn.evaluation.metrics import psnr
from fbcnn.images.files import list_inputs, read_image
from fbcnn.jpeg.consistency import project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/val/color/kodak24")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--qfs", default="10,20,40")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    colour = load_model("color", precision=args.precision)
    grey = load_model("gray", precision=args.precision)
    files = list_inputs([args.data])[:args.limit]
    print(f"{len(files)} images of {args.data}, {args.precision}")
    print("| QF | JPEG (dB) | colour model, as it was | its colour left: mean / max (levels) "
          "| colour model, mean of channels | grey model |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for qf in (int(q) for q in args.qfs.split(",")):
            sums = np.zeros(4)
            tint_mean, tint_max = 0.0, 0.0
            for path in files:
                truth = np.asarray(Image.open(path).convert("L"))
                saved = Path(tmp) / "neutral.jpg"
                Image.fromarray(truth).convert("RGB").save(saved, quality=qf)
                image = read_image(saved)
                tables = jpeg_tables(image)
                raw = colour.restorer.restore(image.pixels).pixels
                was = project(raw, image.pixels, tables)
                tint = np.abs(was.astype(np.float32) - was.mean(axis=2, keepdims=True)).max(2)
                tint_mean += float(tint.mean()) / len(files)
                tint_max = max(tint_max, float(tint.max()))
                now = colour.restore_array(image.pixels, tables=tables).image
                by_grey = grey.restore_array(image.pixels, tables=tables).image
                grey_of = [image.pixels[..., 0], was.mean(axis=2).round().astype(np.uint8),
                           now[..., 0], by_grey[..., 0]]
                sums += [psnr(x, truth) for x in grey_of]
            means = sums / len(files)
            print(f"| {qf} | {means[0]:.2f} | {means[1]:.2f} | {tint_mean:.2f} / "
                  f"{tint_max:.0f} | {means[2]:.2f} | {means[3]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
