"""How far the tiled restore is from the one-pass restore of the same JPEG.

    python scripts/probes/tile_agreement.py --folder ../shared/datasets/train/color/wikipedia \
        --limit 6 --qf 10,40 [--overlap 32 --edge 8 ...]
    python scripts/probes/tile_agreement.py --synthetic 6000x4000 --qf 30

Each image is JPEG-compressed at each QF and restored as `fbcnn restore` does (the shipped
model, the QF read once, JPEG consistency), once in one pass and once in tiles for each
(overlap, edge) pair given (`--overlap` and `--edge` are matched lists; edge = the outer
pixels of an overlap that weigh nothing in the blend, `fbcnn.engine.restorer.RAMP_EDGE`). Prints,
per pair, the largest difference from the one-pass pixels and the share of values more than one
grey level off, over all the images; per image, also the megapixels the tiles cover (what the
network runs on). `--synthetic HxW` uses the benchmarks' test image of
that size instead of a folder (one pass of 24 MP needs about 6 GB).
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

from fbcnn.engine import restorer as restore  # noqa: E402
from fbcnn.engine.finish import finish  # noqa: E402
from fbcnn.engine.model import load_model  # noqa: E402
from fbcnn.evaluation.benchmark import sample_image  # noqa: E402
from fbcnn.jpeg.consistency import JpegTables  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--synthetic", help="HxW: the benchmarks' test image of that size")
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--qf", type=_ints, default=[10, 40])
    parser.add_argument("--overlap", type=_ints, default=[restore.DEFAULT_OVERLAP])
    parser.add_argument("--edge", type=_ints, default=[restore.RAMP_EDGE])
    parser.add_argument("--model", default="color")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    if len(args.overlap) != len(args.edge):
        parser.error("--overlap and --edge need the same number of values")
    if args.synthetic:
        try:
            h, w = (int(v) for v in args.synthetic.lower().split("x"))
        except ValueError:
            parser.error(f"--synthetic takes HxW, like 1536x2048, not {args.synthetic!r}")
        images = [("synthetic", sample_image(h, w, 3))]
    elif args.folder:
        paths = sorted(p for p in args.folder.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:args.limit]
        images = [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]
    else:
        parser.error("give --folder or --synthetic")

    restorer = load_model(args.model, device="cpu", precision=args.precision).restorer
    pairs = list(zip(args.overlap, args.edge, strict=True))
    worst = dict.fromkeys(pairs, 0)
    off = dict.fromkeys(pairs, 0)
    count = 0
    for name, pixels in images:
        for qf in args.qf:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=qf)
            jpeg = Image.open(buffer)
            decoded = np.asarray(jpeg.convert("RGB"))
            tables = JpegTables.from_pillow(jpeg.quantization, "4:2:0")
            read = restorer.predict_qf(decoded, 16)
            restorer.tile = 0
            whole = finish(restorer.restore(decoded, grid=16, predicted_qf=read).pixels,
                           decoded, tables, read).astype(np.int16)
            count += whole.size
            line = [f"{name} QF {qf}:"]
            for overlap, edge in pairs:
                restorer.tile, restorer.overlap = restore.DEFAULT_TILE, overlap
                restore.RAMP_EDGE = edge
                tiled = finish(restorer.restore(decoded, grid=16, predicted_qf=read).pixels,
                               decoded, tables, read)
                diff = np.abs(tiled.astype(np.int16) - whole)
                worst[overlap, edge] = max(worst[overlap, edge], int(diff.max()))
                off[overlap, edge] += int((diff > 1).sum())
                h, w = decoded.shape[:2]
                sides = [sum(b - a for a, b in restore.tile_spans(n, restorer.tile, overlap, 16))
                         for n in (h, w)]
                line.append(f"overlap {overlap} edge {edge}: max {diff.max()}, tiles "
                            f"{sides[0] * sides[1] / 1e6:.2f} MP for {h * w / 1e6:.2f}")
            print(" ".join(line), flush=True)
    print()
    print("| overlap | edge | largest difference | values more than 1 level off |")
    print("| ---: | ---: | ---: | ---: |")
    for overlap, edge in pairs:
        print(f"| {overlap} | {edge} | {worst[overlap, edge]} | "
              f"{100 * off[overlap, edge] / count:.4f}% |")


if __name__ == "__main__":
    main()
