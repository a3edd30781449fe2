"""Trade between two weights of one architecture (a parent and its fine-tune): the network
(1 - a) * parent + a * child for several a, validated as training validates (the Kodak centre
crops, `fbcnn.train.loop.validate`, no JPEG consistency) per encoder and QF. With `--write A
PATH` the mix at A is saved with the child's metadata plus `fbcnn.mix` (parent, child, a).

    python scripts/probes/weight_mix.py PARENT CHILD [--alphas 0,0.5,0.7,1] [--gray]
        [--encoders libjpeg,mozjpeg,jpegli] [--qfs 10,30,60,90] [--limit 8]
        [--write A PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fbcnn.networks.checkpoints import load_network, save_network
from fbcnn.networks.modelfiles import file_sha256
from fbcnn.train.config import TrainConfig
from fbcnn.train.loop import load_validation, validate

ROOT = Path(__file__).resolve().parents[2]


def mixed(parent, child, a: float):
    net = load_network(child).network
    p = load_network(parent).network.state_dict()
    c = net.state_dict()
    net.load_state_dict({k: (1 - a) * p[k] + a * c[k] if c[k].is_floating_point() else c[k]
                         for k in c})
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parent", type=Path)
    parser.add_argument("child", type=Path)
    parser.add_argument("--alphas", default="0,0.5,0.7,1")
    parser.add_argument("--gray", action="store_true")
    parser.add_argument("--encoders", default="libjpeg,mozjpeg,jpegli")
    parser.add_argument("--qfs", default="10,30,60,90")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--folder", default=str(ROOT.parent / "shared/datasets/val/color/kodak24"))
    parser.add_argument("--write", nargs=2, metavar=("A", "PATH"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    config = TrainConfig()
    config.data.gray = args.gray
    config.validation.folder = args.folder
    config.validation.limit = args.limit
    images = load_validation(config)
    encoders = args.encoders.split(",")
    qfs = [int(q) for q in args.qfs.split(",")]
    if args.write:
        a, path = float(args.write[0]), Path(args.write[1])
        meta = dict(load_network(args.child).metadata)
        meta["fbcnn.mix"] = json.dumps({"parent": str(args.parent),
                                        "parent_sha256": file_sha256(args.parent),
                                        "child": str(args.child),
                                        "child_sha256": file_sha256(args.child), "a": a})
        meta.pop("fbcnn.config", None)
        save_network(mixed(args.parent, args.child, a), path, meta)
        print(f"wrote {path} (a = {a})")
        return 0
    keys = [str(q) if e == "libjpeg" else f"{e}:{q}" for e in encoders for q in qfs]
    print(f"{len(images)} crops of {args.folder}; gain over the JPEG (dB), no consistency")
    print("| a | " + " | ".join(keys) + " | mean |")
    print("| --- |" + " ---: |" * (len(keys) + 1))
    for a in (float(v) for v in args.alphas.split(",")):
        val = validate(mixed(args.parent, args.child, a), images, qfs, torch.device("cpu"),
                       encoders)
        gains = [val[k]["restored"] - val[k]["jpeg"] for k in keys]
        print(f"| {a:g} | " + " | ".join(f"{g:+.3f}" for g in gains)
              + f" | {np.mean(gains):+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
