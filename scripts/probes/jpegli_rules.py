#!/usr/bin/env python
"""What QF to feed a jpegli JPEG, and by what quality its near-lossless share is decided
(docs/real_world.md, "jpegli's own quality")? jpegli's tables overstate its quality (quality
90 writes tables of IJG QF 95) and its adaptive quantisation damages more than they say, so
the tables' floor leaves its files alone (`fbcnn.jpeg.qf.single_jpeg_qf`). Its tables name the
jpegli quality that wrote them (`fbcnn.jpeg.qf.jpegli_quality`); each image is restored:

- `now`: the reading fed, the share decided by the tables' IJG-equivalent QF (the rule
  before this probe);
- `share`: the reading fed, the share decided by the jpegli quality;
- `floor-m` (m = 0, 5, 10): the higher of the reading and the jpegli quality less m fed, the
  share by the jpegli quality;
- `floor, tables' share`: the jpegli quality fed when the reading is below it, the share by
  the tables' QF (the floor of `fbcnn.jpeg.qf.single_jpeg_qf` with jpegli's quality in place
  of its tables' QF, the share as before).

JPEG consistency is on, as `fbcnn restore` has it. Prints, per quality and variant, the mean
gain over the JPEG and the worst image's; run it on training images (the rule is then judged
on the validation sets by `scripts/make_results.py`).

    python scripts/probes/jpegli_rules.py --data ../shared/datasets/train/color/bsds500_trainval \\
        --limit 60 --qualities 10,30,60,80,90,95
    python scripts/probes/jpegli_rules.py --model gray --data ../shared/datasets/train/gray/train400
"""

from __future__ import annotations

import argparse
import collections
import statistics

from fbcnn.engine.model import load_model
from fbcnn.evaluation import metrics
from fbcnn.evaluation.evaluate import Setting, as_encoder, degrade_with, list_images, load_clean
from fbcnn.jpeg import nearlossless
from fbcnn.jpeg.consistency import project
from fbcnn.jpeg.qf import jpegli_quality
from fbcnn.jpeg.tables import grid_multiple

MARGINS = (0, 5, 10)


def finished(restored, made, share_quality: float):
    """`fbcnn.engine.finish.finish` with the share decided by `share_quality`."""
    consistent = project(restored, made.pixels, made.tables)
    luma, chroma = nearlossless.strengths(share_quality, made.tables.chroma_steps_one)
    return nearlossless.keep_share(consistent, made.pixels, luma, chroma)


def one_image(restorer, made, channels: int) -> dict[str, float]:
    grid = grid_multiple(made.subsampling, channels)
    tables = made.tables
    quality = jpegli_quality(tables.luma, tables.chroma)
    assert quality is not None, "not jpegli's tables"
    predicted = restorer.predict_qf(made.pixels, grid)

    def psnr(pixels) -> float:
        return metrics.quality(pixels, made.clean)["psnr"]

    out = restorer.restore(made.pixels, grid=grid, predicted_qf=predicted).pixels
    found = {"jpeg": psnr(made.pixels), "reading": predicted, "tables": float(tables.quality),
             "now": psnr(finished(out, made, tables.quality)),
             "share": psnr(finished(out, made, quality))}
    for m in MARGINS:
        fed = max(predicted, quality - m)
        if fed == predicted:
            found[f"floor-{m}"] = found["share"]
            continue
        fed_out = restorer.restore(made.pixels, qf=min(100.0, fed), grid=grid,
                                   predicted_qf=predicted).pixels
        found[f"floor-{m}"] = psnr(finished(fed_out, made, quality))
        if m == 0:
            found["floor, tables' share"] = psnr(finished(fed_out, made, tables.quality))
    found.setdefault("floor, tables' share", found["now"])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="color")
    parser.add_argument("--data", default="../shared/datasets/train/color/bsds500_trainval")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--qualities", default="10,30,60,80,90,95")
    args = parser.parse_args(argv)
    model = load_model(args.model, precision="fp32")
    restorer, channels = model.restorer, model.channels
    variants = ["now", "share", *(f"floor-{m}" for m in MARGINS), "floor, tables' share"]
    paths = list_images(args.data, args.limit)
    print(f"{args.model} on {len(paths)} images of {args.data}, jpegli")
    print("| quality | reading | tables' QF | " + " | ".join(variants) + " |")
    print("| ---: | ---: | ---: | " + " | ".join("---:" for _ in variants) + " |")
    for quality in (int(q) for q in args.qualities.split(",")):
        rows = collections.defaultdict(list)
        for path in paths:
            clean = load_clean(path, gray=channels == 1)
            made = degrade_with(clean, Setting(quality), as_encoder("jpegli"))
            found = one_image(restorer, made, channels)
            for key, value in found.items():
                rows[key].append(value)
        gains = {v: [a - b for a, b in zip(rows[v], rows["jpeg"], strict=True)]
                 for v in variants}
        cells = [f"{statistics.mean(g):+.3f} ({min(g):+.2f})" for g in gains.values()]
        print(f"| {quality} | {statistics.mean(rows['reading']):.1f} | "
              f"{statistics.mean(rows['tables']):.1f} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
