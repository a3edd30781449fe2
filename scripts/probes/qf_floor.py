#!/usr/bin/env python
"""Would a floor on the QF fed help (docs/real_world.md, "A floor from the tables")? For each
image the network's reading is fed (what `fbcnn restore` does), and then the higher of the
reading and the tables' IJG-equivalent QF less a margin m (m = 0, 5, 10), JPEG consistency
and the near-lossless share applied as `fbcnn restore` applies them. With `--double QF1`
every JPEG is first written at QF1 and shifted by `--shift` (default 4,4; 0,0: aligned)
before the file's own compression (an earlier, stronger JPEG the analysis may miss), to see
what the floor does to those.
Prints mean gain over the JPEG and the worst image per quality, mean reading and tables' QF.

    python scripts/probes/qf_floor.py --encoder mozjpeg --limit 60 --qfs 30,60,80,85,90,95
    python scripts/probes/qf_floor.py --encoder mozjpeg --limit 30 --qfs 60,90 --double 20
    python scripts/probes/qf_floor.py --encoder libjpeg --limit 30 --qfs 30,60,90 --double 10 \\
        --shift 0,0
"""

from __future__ import annotations

import argparse
import collections
import statistics

from fbcnn.engine.finish import finish
from fbcnn.engine.model import load_model
from fbcnn.evaluation import metrics
from fbcnn.evaluation.evaluate import (
    Setting,
    as_encoder,
    degrade_with,
    list_images,
    load_clean,
)
from fbcnn.jpeg.tables import grid_multiple

MARGINS = (0, 5, 10)


def one_image(restorer, made) -> dict[str, float]:
    """PSNR of the JPEG, of the default restore and of each floor."""
    grid = grid_multiple(made.subsampling, 3)
    predicted = restorer.predict_qf(made.pixels, grid)
    psnr = {"jpeg": metrics.quality(made.pixels, made.clean)["psnr"],
            "reading": predicted, "tables": float(made.header_qf)}
    out = restorer.restore(made.pixels, grid=grid, predicted_qf=predicted)
    psnr["default"] = metrics.quality(finish(out.pixels, made.pixels, made.tables, predicted),
                                      made.clean)["psnr"]
    for m in MARGINS:
        fed = max(predicted, made.header_qf - m)
        if fed == predicted:
            psnr[f"m{m}"] = psnr["default"]
            continue
        out = restorer.restore(made.pixels, qf=min(100.0, fed), grid=grid, predicted_qf=predicted)
        psnr[f"m{m}"] = metrics.quality(finish(out.pixels, made.pixels, made.tables, predicted),
                                        made.clean)["psnr"]
    return psnr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="color")
    parser.add_argument("--data", default="../shared/datasets/val/color/bsds500_test")
    parser.add_argument("--encoder", default="mozjpeg")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--qfs", default="30,60,80,85,90,95")
    parser.add_argument("--double", type=int, default=None, help="an earlier JPEG at this QF")
    parser.add_argument("--shift", default="4,4", help="its grid shift, dy,dx")
    args = parser.parse_args(argv)
    restorer = load_model(args.model, precision="fp32").restorer
    spec = as_encoder(args.encoder)
    rows = collections.defaultdict(list)
    shift = tuple(int(v) for v in args.shift.split(","))
    for path in list_images(args.data, args.limit):
        clean = load_clean(path, False)
        for qf in (int(q) for q in args.qfs.split(",")):
            setting = Setting(qf) if args.double is None else Setting(args.double, qf, shift)
            rows[qf].append(one_image(restorer, degrade_with(clean, setting, spec)))
    print(f"{args.encoder}, {args.limit} images of {args.data}"
          + (f", an earlier JPEG at QF {args.double} shifted by {shift}" if args.double else ""))
    print("| quality | reading | tables' QF | fed the reading | floor m=0 | m=5 | m=10 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for qf, found in sorted(rows.items()):
        cells = []
        for key in ("default", *(f"m{m}" for m in MARGINS)):
            gains = [f[key] - f["jpeg"] for f in found]
            cells.append(f"{statistics.fmean(gains):+.3f} ({min(gains):+.2f})")
        print(f"| {qf} | {statistics.fmean(f['reading'] for f in found):.1f} | "
              f"{statistics.fmean(f['tables'] for f in found):.1f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
