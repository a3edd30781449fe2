#!/usr/bin/env python
"""Pack ../shared/datasets into .gpudata/ (under 64 MiB with the repository) for a lent GPU
machine, where the datasets are not reachable:

    python scripts/pack_training_data.py [--source ../shared/datasets] [--out .gpudata]

- train/color/wikipedia: centre 85% crops (sides multiples of 16), JPEG quality 95, 4:4:4
- train/color/div2k_crops: JPEG quality 97, 4:4:4
- train/color/bsds500_trainval, train/gray/train400: copied (already JPEG q~95 / small PNG)
- val/color/kodak24: the first 8 images as their 256x256 centre crops (what the training
  validation reads: `validation.limit: 8`, `crop: 256`), PNG

Targets stored at quality 95-97 4:4:4 differ from the originals by far less than the
artifacts trained on (QF <= 90); the QF 95-100 samples learn near-identity either way.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image


def pack(source: Path, out: Path) -> None:
    def target(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    for f in sorted((source / "train/color/wikipedia").glob("*.png")):
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            cw, ch = int(w * 0.85) // 16 * 16, int(h * 0.85) // 16 * 16
            x, y = (w - cw) // 2, (h - ch) // 2
            im.crop((x, y, x + cw, y + ch)).save(
                target(out / "train/color/wikipedia" / f"{f.stem}.jpg"), quality=95,
                subsampling=0)
    for f in sorted((source / "train/color/div2k_crops").glob("*.png")):
        with Image.open(f) as im:
            im.convert("RGB").save(target(out / "train/color/div2k_crops" / f"{f.stem}.jpg"),
                                   quality=97, subsampling=0)
    for folder in ("train/color/bsds500_trainval", "train/gray/train400"):
        shutil.copytree(source / folder, out / folder, dirs_exist_ok=True)
    for f in sorted((source / "val/color/kodak24").glob("*.png"))[:8]:
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            y, x = max(0, (h - 256) // 2) // 16 * 16, max(0, (w - 256) // 2) // 16 * 16
            im.crop((x, y, x + 256, y + 256)).save(target(out / "val/color/kodak24" / f.name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path(".gpudata"))
    args = parser.parse_args()
    pack(args.source, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
