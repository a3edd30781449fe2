"""Make the bundled example: scikit-image's public-domain 'astronaut' photo (NASA), saved
as a JPEG at quality 10 with Pillow (4:2:0), the kind of file fbcnn is for.

    .venv/bin/python scripts/make_example.py   # writes examples/astronaut_qf10.jpg
"""

from pathlib import Path

from PIL import Image
from skimage import data

out = Path(__file__).resolve().parent.parent / "examples" / "astronaut_qf10.jpg"
Image.fromarray(data.astronaut()).save(out, quality=10, subsampling=2)
print(out, out.stat().st_size, "bytes")
