"""What is known about one loaded image before restoring it, and its restoration with that
knowledge.

    LoadedImage --analyse--> Analysis (the grid, predicted QF, double-JPEG verdict, the QF to
    feed, a non-JPEG file's JPEG trace) --restore_loaded--> model.restore_array

`analyse` and `restore_loaded` are what `engine.pipeline` (per file), `Model.restore` (a path
or a PIL image) and the app (one analysis, a restoration per setting) call. The model is
anything shaped like `RestoringModel` (an `engine.model.Model`): this module sits below
model.py and pipeline.py and imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..jpeg.consistency import JpegTables
from ..jpeg.qf import TABLES_FLOOR_MAX, single_jpeg_qf
from ..jpeg.tables import grid_multiple, tables_are_ijg
from ..jpeg.trace import JpegTrace
from ..jpeg.trace import detect as detect_jpeg
from .restorer import Progress

if TYPE_CHECKING:
    from ..images.files import LoadedImage
    from ..networks.runtimes import ModelInfo


class RestoringModel(Protocol):
    """What `analyse` and `restore_loaded` use of a model (`engine.model.Model` is one)."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def name(self) -> str: ...

    def predict_qf(self, pixels: np.ndarray, grid: int = 8) -> float: ...

    def restore_array(self, pixels: np.ndarray, qf: float | None = None,
                      grid: int = 8, tables: JpegTables | None = None, *,
                      predicted_qf: float | None = None,
                      progress: Progress | None = None,
                      near_lossless: bool = True) -> Any: ...


@dataclass
class Analysis:
    """What is known about an image before restoring it."""

    model: RestoringModel
    grid: int  # the JPEG block grid tiles start on
    predicted_qf: float | None  # None: not read yet (the restore reads it)
    verdict: Any = None  # recompress.DoubleJpegVerdict, None when not analysed / not a JPEG
    # the QF to feed (a double JPEG's, or a single JPEG's tables' QF above the reading:
    # fbcnn.jpeg.qf), None: the prediction
    feed_qf: float | None = None
    # a file that is not a JPEG: whether its pixels bear JPEG compression (None: a JPEG file,
    # or not looked at)
    trace: JpegTrace | None = None

    @property
    def double(self) -> dict[str, Any] | None:
        return self.verdict.to_json() if self.verdict is not None else None

    @property
    def never_jpeg(self) -> bool:
        """A file that is not a JPEG and whose pixels show no JPEG compression."""
        return self.trace is not None and not self.trace.found


def jpeg_tables(image: LoadedImage) -> JpegTables | None:
    """The tables that bound where the original can be: for JPEG files read in their stored
    orientation (None otherwise, and for CMYK / YCCK JPEGs read as RGB: their tables
    quantised other planes)."""
    if image.format != "JPEG" or image.transposed or image.converted:
        return None
    return JpegTables.from_pillow(image.quantization, image.subsampling)


# the double-JPEG analysis declines smaller images: too few blocks to tell a dip from noise
# (a 16x16 single JPEG can read as double)
DOUBLE_MIN_SIDE = 64
DOUBLE_MIN_PIXELS = 96 * 128


def analyse_double(image: LoadedImage, progress: Callable[[float], None] | None = None,
                   trace: JpegTrace | None = None) -> Any:
    """The recompression verdict (None when not analysed); `progress(fraction)` as the
    analysis goes on (growing, the last one 1.0; not called when not analysed).

    A JPEG file is analysed on its stored pixel grid (before its EXIF orientation) with the
    last QF of its tables. Another file is analysed when `trace` found JPEG compression in
    its pixels: from its grid offset on, the last QF estimated; the verdict's offset is
    given in the file's pixels. Images under DOUBLE_MIN_SIDE / DOUBLE_MIN_PIXELS are not, nor
    CMYK / YCCK JPEGs read as RGB (`LoadedImage.converted`: their compression was of other
    planes)."""
    h, w = image.pixels.shape[:2]
    if min(h, w) < DOUBLE_MIN_SIDE or h * w < DOUBLE_MIN_PIXELS or image.converted:
        return None
    from ..jpeg.recompress import analyse as recompression

    if image.format == "JPEG":
        verdict = recompression(stored_pixels(image), last_qf=image.header_qf,
                                progress=progress)
        if verdict.kind == "aligned" and image.quantization is not None \
                and not tables_are_ijg(image.quantization):
            # the aligned test looks for a dip in recompressions with IJG tables below the
            # file's QF; a file written with other tables (or with jpegli's adaptive
            # quantisation, coarser than its tables) shows one of its own: no claim
            return replace(verdict, detected=False, kind="single", qf1=None, offset=None,
                           confidence=0.5)
        return verdict
    if trace is None or not trace.found:
        return None
    dy, dx = trace.offset
    verdict = recompression(image.pixels[dy:, dx:], last_qf=None, progress=progress)
    if verdict.offset is not None:
        verdict.offset = ((verdict.offset[0] + dy) % 8, (verdict.offset[1] + dx) % 8)
    return verdict


def stored_pixels(image: LoadedImage) -> np.ndarray:
    """The pixels as the file stores them, its EXIF orientation undone (a view): the grid a
    JPEG's blocks sit on."""
    return unorient(image.pixels, image.orientation) if image.transposed else image.pixels


def unorient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Undo what EXIF orientation `orientation` (1..8) did to stored pixels (HxWxC)."""
    undo = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, 1),  # shown turned clockwise: turn it back
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, -1),
    }.get(orientation)
    return pixels if undo is None else undo(pixels)


def analyse(image: LoadedImage, model: RestoringModel | Callable[[], RestoringModel],
            double: bool = True, need_qf: bool = False,
            progress: Callable[[float], None] | None = None,
            trace: bool = True) -> Analysis:
    """The grid, whether a non-JPEG file's pixels bear JPEG compression (`trace`), and with
    `double` the double-JPEG verdict and the QF it asks to feed; the predicted QF is read
    here only when needed for that (or `need_qf`), otherwise the restoration reads it in its
    own pass. `progress`: that of the double-JPEG analysis. `model` may come as a function
    that gives it, called once the pixels are analysed (they need no model): a model still
    loading in another thread, as `fbcnn restore`'s first is, then holds up only the QF
    reading."""
    grid = grid_multiple(image.subsampling, image.pixels.shape[2])
    found_trace = None
    if image.format != "JPEG" and (trace or double):
        found_trace = detect_jpeg(image.pixels)
    verdict = analyse_double(image, progress, found_trace) if double else None
    chosen = model() if callable(model) else model
    found = Analysis(chosen, grid, None, verdict=verdict, trace=found_trace)
    detected = verdict is not None and verdict.detected
    floor = None if detected else _tables_floor(image)
    if need_qf or detected or (floor is not None and chosen.info.has_qf_input):
        found.predicted_qf = chosen.predict_qf(image.pixels, grid)
    if found.predicted_qf is not None and chosen.info.has_qf_input:
        if detected:
            found.feed_qf = verdict.qf_to_feed(found.predicted_qf)
        elif floor is not None:
            found.feed_qf = floor(found.predicted_qf)
    return found


def _tables_floor(image: LoadedImage) -> Callable[[float], float | None] | None:
    """For a JPEG file whose tables may raise the QF fed (`fbcnn.jpeg.qf.single_jpeg_qf`),
    that rule on a reading; None when it cannot apply (not a JPEG, no usable tables, tables
    above the floor's range: no floor, jpegli's included, `fbcnn.jpeg.qf.tables_floor`), so
    that no reading is taken for it."""
    tables = image.quantization
    if image.format != "JPEG" or not tables or 0 not in tables or image.header_qf is None \
            or image.header_qf > TABLES_FLOOR_MAX:
        return None
    luma, chroma = tables[0], tables.get(1)
    return lambda reading: single_jpeg_qf(reading, image.header_qf, luma, chroma)


def restore_loaded(image: LoadedImage, analysis: Analysis, qf: float | None = None,
                   consistency: bool = True, progress: Progress | None = None, *,
                   near_lossless: bool = True) -> Any:
    """Restore decoded pixels with what `analyse` found: `qf` overrides the QF (else the
    QF the analysis chose: a double JPEG's, a single JPEG's tables' floor; else the
    prediction); a double JPEG is not treated as near-lossless,
    whatever its last QF, nor is any image with `near_lossless` False. Returns a
    `model.Result` of arrays."""
    feed = qf if qf is not None else analysis.feed_qf
    tables = jpeg_tables(image) if consistency else None
    double = analysis.verdict is not None and analysis.verdict.detected
    return analysis.model.restore_array(image.pixels, feed, analysis.grid, tables,
                                        predicted_qf=analysis.predicted_qf, progress=progress,
                                        near_lossless=near_lossless and not double)
