#!/usr/bin/env python
"""src/fbcnn/jpeg/jpegli_tables.json: the quantisation tables jpegli (PyPI `pyjpegli`, the
`encoders` extra) writes at each quality 1..100, so that `fbcnn.jpeg.qf` can tell its files
(whose adaptive quantisation damages more than their tables say) without jpegli installed.
The tables do not depend on the image (checked on three here).

    python scripts/make_jpegli_tables.py
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn.jpeg.encoders import encode_with, parse_encoder  # noqa: E402

OUT = ROOT / "src" / "fbcnn" / "jpeg" / "jpegli_tables.json"


def tables_at(image: np.ndarray, quality: int) -> list[list[int]]:
    spec = parse_encoder("jpegli")
    with Image.open(io.BytesIO(encode_with(spec, image, quality))) as im:
        found = im.quantization
    return [list(found[k]) for k in sorted(found)]


def main() -> int:
    import pyjpegli

    rng = np.random.default_rng(0)
    images = [(rng.random(shape) * 255).astype(np.uint8)
              for shape in ((64, 96, 3), (300, 200, 3), (97, 131, 3))]
    by_quality = {}
    for quality in range(1, 101):
        found = [tables_at(image, quality) for image in images]
        if any(f != found[0] for f in found):
            sys.exit(f"jpegli's tables at quality {quality} depend on the image")
        by_quality[str(quality)] = found[0]
    OUT.write_text(json.dumps({"encoder": f"pyjpegli {pyjpegli.__version__}",
                               "command": "python scripts/make_jpegli_tables.py",
                               "tables": by_quality}, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(by_quality)} qualities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
