"""What follows the network: a colour image whose pixels are all grey gets a grey result;
for a JPEG, keep the result inside the file's quantisation cells (`fbcnn.jpeg.consistency`),
and let a near-lossless JPEG keep only part of the change (`fbcnn.jpeg.nearlossless`).
Every restoration goes through it after `Restorer` (the API and `fbcnn restore` through
`Model.restore_array`, the evaluation, the benchmark), so that they all give the same
pixels.
"""

from __future__ import annotations

import numpy as np

from ..device import available_cpus
from ..jpeg import nearlossless
from ..jpeg.color import is_neutral
from ..jpeg.consistency import JpegTables, project


def finish(restored: np.ndarray, decoded: np.ndarray, tables: JpegTables | None,
           predicted_qf: float, *, near_lossless: bool = True,
           workers: int | None = None) -> np.ndarray:
    """`restored` (uint8, the network's output for `decoded`, same shape) made consistent
    with `tables`, the quantisation tables of the JPEG `decoded` was read from (None: not a
    JPEG, or consistency off); then, with `near_lossless`, for a JPEG of QF above 90 (by
    its tables, else by `predicted_qf`, the network's reading) only part of the change is
    kept. `near_lossless` is False when the QF was chosen (an override, a double JPEG's
    earlier QF): the rule is for the model's own reading of a single JPEG. `workers`:
    threads for the projection (default one per CPU). A colour `decoded` whose channels
    are all equal (a black-and-white photo saved as a colour JPEG) gets the mean of the
    network's channels in all three: the colour model leaves faint colour in a grey image
    (0.5-1.0 levels on average, up to 16, on Kodak at QF 10-40: docs/real_world.md)."""
    if is_neutral(decoded):
        mean = restored.mean(axis=2, keepdims=True, dtype=np.float32)
        restored = np.repeat(np.round(mean).astype(np.uint8), 3, axis=2)
    if tables is not None:
        restored = project(restored, decoded, tables,
                           workers=available_cpus() if workers is None else workers)
    if near_lossless:
        quality = nearlossless.quality(predicted_qf, None if tables is None else tables.quality)
        luma, chroma = nearlossless.strengths(
            quality, tables is not None and tables.chroma_steps_one)
        restored = nearlossless.keep_share(restored, decoded, luma, chroma)
    return restored

