"""What other encoders' files say and do (docs/real_world.md): per encoder and quality, the
mean over photos of the IJG-equivalent QF of the tables written (`jpeg.qf_from_tables`),
the IJG QF at which libjpeg damages the photo as much (`degrade.matched_qf`, the training
label), and the PSNR of the file.

    python scripts/probes/encoder_labels.py [--data ../shared/datasets/val/color/kodak24]
        [--limit 8] [--qualities 10,30,60,90]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from fbcnn.evaluation.metrics import psnr
from fbcnn.jpeg.degrade import matched_qf
from fbcnn.jpeg.encoders import EncoderSpec, compress_with

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=ROOT.parent / "shared/datasets/val/color/kodak24")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--qualities", default="10,30,60,90")
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("RGB"))
              for p in sorted(args.data.iterdir())[:args.limit]]
    print(f"{len(photos)} photos from {args.data}")
    print("| encoder | quality | tables' IJG QF | libjpeg QF of equal damage | PSNR (dB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("libjpeg", "mozjpeg", "jpegli"):
        for q in (int(v) for v in args.qualities.split(",")):
            tables, matched, quality = [], [], []
            for photo in photos:
                pixels, qf = compress_with(EncoderSpec(name), photo, q)
                tables.append(qf)
                matched.append(matched_qf(pixels, photo))
                quality.append(psnr(pixels, photo))
            print(f"| {name} | {q} | {np.mean(tables):.1f} | {np.mean(matched):.1f} | "
                  f"{np.mean(quality):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
