"""Grey models against colour models converted to grey (`fbcnn.train.convert`), untrained.

On the first N grey images of a folder (default BSD68), in fp32: the gain over the JPEG at
single QFs, the QF read, the QF sensitivity (the gain with the QF fed 40 higher than the
true one: the lower, the more the QF input matters), and the double rows blind and, for
single models, with the dominant QF (FBCNN-D).

    python scripts/probes/grey_from_colour.py --limit 10
"""

from __future__ import annotations

import argparse

import torch

from fbcnn.evaluation.evaluate import evaluate
from fbcnn.networks.checkpoints import load_network
from fbcnn.networks.modelfiles import resolve_model
from fbcnn.train.convert import grey_from_colour


def gain(row: dict) -> str:
    return f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/val/gray/bsd68")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="color,color-double,gray,gray-double",
                        help="colour ones are converted to grey")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    common = dict(gray=True, limit=args.limit, progress=False, precision="fp32")
    for name in args.models.split(","):
        network = load_network(resolve_model(name)).network.eval()
        label = name
        if network.config.in_channels == 3:
            network, label = grey_from_colour(network), f"{name} as grey"
        single = evaluate(args.data, network, qfs=(10, 40, 90), **common)["rows"]
        line = [f"{r['qf']}: {gain(r)} (QF read {r['predicted_qf']:.1f})" for r in single]
        for qf in (10, 40):
            fed = evaluate(args.data, network, qfs=(qf,), qf_input=qf + 40, **common)["rows"][0]
            line.append(f"{qf} fed {qf + 40}: {gain(fed)}")
        corrections = ("none",) if "double" in name else ("none", "dominant")
        for correction in corrections:
            rows = evaluate(args.data, network, qfs=(), double=[(10, 30), (10, 50)],
                            correction=correction, **common)["rows"]
            line.append(f"{correction}: " + " / ".join(f"{r['label']} {gain(r)}" for r in rows))
        print(f"{label}: " + "; ".join(line), flush=True)


if __name__ == "__main__":
    main()
