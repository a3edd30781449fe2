"""The README's before/after crop, cut from what `make demo` wrote.

    make demo && .venv/bin/python scripts/make_readme_figure.py
"""

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
JPEG = ROOT / "examples" / "astronaut_qf10.jpg"
RESTORED = ROOT / "out" / "demo" / "astronaut_qf10.png"
OUT = ROOT / "docs" / "images" / "demo_crop.png"
BOX = (176, 64, 336, 224)  # left, top, right, bottom: the face and helmet
ZOOM = 2


def crop(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        part = im.convert("RGB").crop(BOX)
        size = (part.width * ZOOM, part.height * ZOOM)
        return np.asarray(part.resize(size, Image.NEAREST))


def main() -> None:
    before, after = crop(JPEG), crop(RESTORED)
    gap = np.full((before.shape[0], 8, 3), 255, np.uint8)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([before, gap, after], axis=1)).save(OUT, optimize=True)
    print(f"{OUT}: JPEG QF 10 (left) | fbcnn restore (right), crop {BOX}, x{ZOOM}")


if __name__ == "__main__":
    main()
