"""Models side by side as `fbcnn restore` restores (JPEG consistency, near-lossless share),
per encoder and quality: mean gain over the JPEG on the same images and the worst image.

    python scripts/probes/compare_models.py MODEL [MODEL ...] --data DIR [--gray]
        [--limit 50] [--encoders libjpeg,mozjpeg,jpegli] [--qfs 10,30,60,90]
"""

from __future__ import annotations

import argparse

from fbcnn.evaluation.evaluate import evaluate
from fbcnn.evaluation.report import sweep_row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--gray", action="store_true")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--encoders", default="libjpeg,mozjpeg,jpegli")
    parser.add_argument("--qfs", default="10,30,60,90")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    qfs = [int(q) for q in args.qfs.split(",")]
    print(f"{args.data}, first {args.limit} images{', grey (Y)' if args.gray else ''}: "
          f"mean gain over the JPEG in dB (worst image)")
    print("| encoder | quality | " + " | ".join(args.models) + " |")
    print("| --- | ---: |" + " ---: |" * len(args.models))
    for encoder in args.encoders.split(","):
        runs = [evaluate(args.data, m, qfs=qfs, gray=args.gray, limit=args.limit,
                         encoder=encoder, progress=False, precision=args.precision)
                for m in args.models]
        for i, q in enumerate(qfs):
            cells = []
            for run in runs:
                row = sweep_row(run["rows"][i])
                cells.append(f"{row['gain_db']:+.3f} ({row['worst_image_gain_db']:+.2f})")
            print(f"| {encoder} | {q} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
