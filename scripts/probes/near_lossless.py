#!/usr/bin/env python
"""The probe behind `fbcnn.jpeg.nearlossless`: the gain over the JPEG when only a share of the
network's correction is kept, a_Y of its luma change and a_C of its chroma change (split in
the JPEG's YCbCr), for a grid of shares, per QF. The restoration is taken with the
near-lossless rule off (`--qf` = the model's own reading, JPEG consistency on), so the
shares apply to the full correction.

    python scripts/probes/near_lossless.py --model color --qfs 90,95,100 --limit 30 \
        --data ../shared/datasets/val/color/bsds500_test
    python scripts/probes/near_lossless.py --model color --qfs 90,95,100 \
        --data ../shared/datasets/val/color/kodak24
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import fbcnn  # noqa: E402
from fbcnn.images.files import list_inputs  # noqa: E402
from fbcnn.jpeg import nearlossless  # noqa: E402

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="color")
    parser.add_argument("--qfs", default="90,95,100")
    parser.add_argument("--data", default="../shared/datasets/val/color/bsds500_test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = fbcnn.load_model(args.model, precision="fp32")
    model.set_threads(args.threads)
    grey = model.channels == 1
    paths = list_inputs([args.data])[:args.limit]
    for qf in (int(q) for q in args.qfs.split(",")):
        gains: dict[tuple[float, float], list[float]] = {}
        for path in paths:
            with Image.open(path) as im:
                source = im.convert("L" if grey else "RGB")
            truth = np.asarray(source)
            buf = io.BytesIO()
            source.save(buf, "JPEG", quality=qf)
            buf.seek(0)
            jpeg = Image.open(buf)
            decoded = np.asarray(jpeg.convert(source.mode))
            reading = model.restore(jpeg).predicted_qf
            full = np.asarray(model.restore(jpeg, qf=reading).image)
            if grey:
                decoded, full = decoded[..., None], full[..., None]
            base = psnr(decoded, truth.reshape(decoded.shape))
            for a_y in SHARES:
                for a_c in ((1.0,) if grey else SHARES):
                    kept = nearlossless.keep_share(full, decoded, a_y, a_c)
                    gains.setdefault((a_y, a_c), []).append(
                        psnr(kept, truth.reshape(decoded.shape)) - base)
        print(f"{args.model} QF {qf}, {len(paths)} images of {args.data}")
        print("| a_Y | a_C | mean gain (dB) | worst image (dB) | images worse |")
        print("| --- | --- | ---: | ---: | ---: |")
        for (a_y, a_c), g in gains.items():
            v = np.asarray(g)
            print(f"| {a_y:g} | {a_c:g} | {v.mean():+.3f} | {v.min():+.3f} | {(v < 0).sum()} |")


if __name__ == "__main__":
    main()
