#!/usr/bin/env python
"""How well a model's QF decoupler reads the QF, by the size it reads at.

For each model and each QF, JPEG-compresses the first N clean images (grey models: their
luma, colour: 4:2:0), and reads the QF (a) from the whole image, as one pass of the network
does, and (b) as the mean of the decoupler over windows of each given side, spread over the
image as `fbcnn.engine.restorer` spreads its QF windows (`qf_tile_boxes`, at least 8). Prints the
mean error (signed) and the mean absolute error per QF and over all, per reading.

    python scripts/probes/qf_reading.py --models gray-double,gray --sides 64,96,128 --limit 30

With `--gains 90,95`, it also restores those QFs both ways (the whole image's reading, as a
one-pass restore reads it, and the windows of the last training stage's patch size, what
`fbcnn restore` does) and prints the mean PSNR gain over the JPEG (JPEG consistency on).
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

from fbcnn.engine.model import load_model  # noqa: E402
from fbcnn.engine.restorer import Restorer  # noqa: E402
from fbcnn.evaluation.evaluate import evaluate, list_images  # noqa: E402
from fbcnn.jpeg.qf import QF_WINDOWS_MAX, QF_WINDOWS_MIN  # noqa: E402
from fbcnn.networks.modelfiles import resolve_model, training_patch_size  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "val" / "color" / "bsds500_test"


def jpeg(pixels: Image.Image, qf: int) -> np.ndarray:
    buffer = io.BytesIO()
    pixels.save(buffer, "JPEG", quality=qf)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer))
    return decoded[:, :, None] if decoded.ndim == 2 else decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="color,gray,color-double,gray-double")
    parser.add_argument("--sides", default="64,96,128", help="window sides to compare")
    parser.add_argument("--qfs", default="10,20,30,40,50,60,70,80,90")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--gains", default=None, help="QFs to restore with both readings")
    args = parser.parse_args(argv)
    sides = [int(v) for v in args.sides.split(",")]
    qfs = [int(v) for v in args.qfs.split(",")]
    files = list_images(args.data, args.limit)
    for name in args.models.split(","):
        model = load_model(name, device="cpu", precision="fp32")
        net = model.network
        grey = model.channels == 1
        grid = 8 if grey else 16
        readers = {"whole image": Restorer.of(net, device="cpu", tile=0, precision="fp32")}
        for side in sides:
            readers[f"{side}-px windows"] = Restorer.of(net, device="cpu", tile=0,
                                                        precision="fp32", qf_tile=side)
        errors: dict[str, dict[int, list[float]]] = {k: {q: [] for q in qfs} for k in readers}
        images = [Image.open(f).convert("L" if grey else "RGB") for f in files]
        for qf in qfs:
            for image in images:
                pixels = jpeg(image, qf)
                for label, reader in readers.items():
                    errors[label][qf].append(reader.predict_qf(pixels, grid) - qf)
        trained = training_patch_size(resolve_model(name))
        print(f"\n{name} ({'grey' if grey else 'colour'}; last training stage's patches: "
              f"{trained} px; {len(files)} images of {args.data.name}; windows: at least "
              f"{QF_WINDOWS_MIN}, at most {QF_WINDOWS_MAX})")
        print("| reading | " + " | ".join(f"QF {q}" for q in qfs) + " | MAE |")
        print("| --- | " + " | ".join("---:" for _ in qfs) + " | ---: |")
        for label, per_qf in errors.items():
            cells = [f"{np.mean(per_qf[q]):+.1f}" for q in qfs]
            mae = float(np.mean([abs(e) for q in qfs for e in per_qf[q]]))
            print(f"| {label} | " + " | ".join(cells) + f" | {mae:.2f} |")
        if args.gains:
            gain_qfs = [int(v) for v in args.gains.split(",")]
            print("\n| reading | " + " | ".join(f"gain at QF {q} (dB)" for q in gain_qfs) + " |")
            print("| --- | " + " | ".join("---:" for _ in gain_qfs) + " |")
            for label, side in (("whole image", None), (f"{trained}-px windows", trained)):
                restorer = Restorer.of(net, device="cpu", precision="fp32", qf_tile=side)
                result = evaluate(args.data, restorer, gray=grey, qfs=gain_qfs,
                                  limit=args.limit, progress=False)
                cells = [f"{r['restored']['psnr'] - r['jpeg']['psnr']:+.2f}"
                         for r in result["rows"]]
                print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n(cells: mean of predicted - true QF; MAE: mean absolute error over all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
