"""What making training patches costs (docs/real_world.md, "Training data: on the fly"):
milliseconds per batch of `PatchSampler.sample` with libjpeg alone and with the encoder
mixture of the stage configs, and per patch for each encoder, in one process, interleaved.

    python scripts/probes/sampler_speed.py [--batches 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fbcnn.jpeg.encoders import EncoderSpec, compress_with
from fbcnn.train.config import DataConfig, load_config
from fbcnn.train.data import PatchSampler

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    image = np.asarray(Image.open(ROOT.parent / "shared/datasets/val/color/kodak24/kodim01.png")
                       .convert("RGB"))
    stage = load_config(ROOT / "configs/color-stage6.yaml").data
    plain = PatchSampler(DataConfig(patch_size=stage.patch_size, batch_size=stage.batch_size),
                         [image])
    mixed = PatchSampler(stage, [image])
    rng = np.random.default_rng(0)
    mixed.sample(rng)  # starts MozJPEG's node process
    times: dict[str, list[float]] = {"libjpeg alone": [], "the stage mixture": []}
    for _ in range(args.repeats):
        for name, sampler in (("libjpeg alone", plain), ("the stage mixture", mixed)):
            start = time.perf_counter()
            for _ in range(args.batches):
                sampler.sample(rng)
            times[name].append(1000 * (time.perf_counter() - start) / args.batches)
    print(f"batches of {stage.batch_size} patches of {stage.patch_size}x{stage.patch_size}, "
          f"ms per batch (median of {args.repeats} x {args.batches} batches)")
    for name, values in times.items():
        print(f"  {name}: {np.median(values):.1f}")
    patch = np.ascontiguousarray(image[:stage.patch_size + 8, :stage.patch_size + 8])
    print("ms per patch, encode + decode:")
    for spec in (EncoderSpec(), EncoderSpec("mozjpeg"), EncoderSpec("jpegli")):
        start = time.perf_counter()
        for _ in range(200):
            compress_with(spec, patch, 30)
        print(f"  {spec.label}: {1000 * (time.perf_counter() - start) / 200:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
