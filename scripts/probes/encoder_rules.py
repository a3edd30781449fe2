"""Which rules restore other encoders' JPEGs best (docs/real_world.md): for files whose
tables are not IJG's, (a) the QF fed: the network's prediction or the tables' IJG-equivalent
QF, and (b) the QF that decides the near-lossless share: the tables' or the lower of the
tables' and the prediction. Runs `fbcnn.evaluation.evaluate.evaluate` for each rule on the same
images and prints the mean gain over the JPEG and the worst image, per encoder and quality.

    python scripts/probes/encoder_rules.py --model color --data DIR --limit 30 \\
        --encoders mozjpeg,jpegli --qfs 10,30,60,90 --rule feed
    python scripts/probes/encoder_rules.py ... --qfs 90,95,100 --rule near-lossless
"""

from __future__ import annotations

import argparse
from unittest import mock

from fbcnn.evaluation.evaluate import evaluate
from fbcnn.evaluation.report import sweep_row
from fbcnn.jpeg import nearlossless


def gains(result: dict) -> list[tuple[int, float, float]]:
    """(quality, mean gain, worst image's gain) per row, as the QF sweeps report them."""
    rows = [sweep_row(row) for row in result["rows"]]
    return [(r["qf"], r["gain_db"], r["worst_image_gain_db"]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="color")
    parser.add_argument("--data", required=True)
    parser.add_argument("--gray", action="store_true")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--encoders", default="mozjpeg,jpegli")
    parser.add_argument("--qfs", default="10,30,60,90")
    parser.add_argument("--rule", choices=("feed", "near-lossless"), default="feed")
    args = parser.parse_args(argv)
    qfs = [int(q) for q in args.qfs.split(",")]
    tables_only = nearlossless.quality

    def lower_for_other_tables(predicted_qf, table_qf):  # the alternative measured
        return tables_only(predicted_qf, table_qf) if table_qf is None else \
            min(float(table_qf), predicted_qf)

    for encoder in args.encoders.split(","):
        arms = {}
        if args.rule == "feed":
            for name, correction in (("prediction", "none"), ("tables", "tables")):
                arms[name] = evaluate(args.data, args.model, qfs=qfs, gray=args.gray,
                                      limit=args.limit, encoder=encoder, correction=correction,
                                      progress=False)
        else:
            with mock.patch.object(nearlossless, "quality", lower_for_other_tables):
                arms["lower of tables, prediction"] = evaluate(
                    args.data, args.model, qfs=qfs, gray=args.gray, limit=args.limit,
                    encoder=encoder, progress=False)
            arms["tables"] = evaluate(args.data, args.model, qfs=qfs, gray=args.gray,
                                      limit=args.limit, encoder=encoder, progress=False)
        print(f"\n{args.model} on {args.data} ({args.limit} images), {encoder}, rule {args.rule}")
        print("| quality | " + " | ".join(f"{n}: mean (worst)" for n in arms) + " |")
        print("| --- |" + " --- |" * len(arms))
        rows = {n: gains(r) for n, r in arms.items()}
        for i, q in enumerate(qfs):
            cells = " | ".join(f"{rows[n][i][1]:+.3f} ({rows[n][i][2]:+.2f})" for n in arms)
            print(f"| {q} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
