"""The evaluation harness: degrade clean images as the paper does, restore, measure.

For each clean image of a folder and each setting (a row of the paper's tables):

    clean --degrade--> JPEG --Restorer, finish--> restored
    metrics(JPEG, clean) and metrics(restored, clean): PSNR | SSIM | PSNR-B

Settings are single JPEG at a QF, or double JPEG (QF1, decode, crop [dy:, dx:], QF2) whose
ground truth is cropped alike. Colour is compressed with 4:2:0 chroma subsampling and
restored on the 16-pixel MCU grid; grey (the rounded BT.601 Y of colour images with
`gray=True`, grey files as they are) on the 8-pixel grid. After a crop the grid is the last
compression's, which starts at (0, 0), so the grid never changes.

The QF fed to the network is its own prediction, a fixed `qf_input`, or with
`correction='dominant'` the QF that dominates the artifacts of a double JPEG according to
the recompression analysis (`fbcnn.jpeg.recompress`).

`encoder` (`fbcnn.jpeg.encoders`) writes every JPEG of the evaluation (both of a double JPEG) at the
row's QF taken as that encoder's quality setting; the default, libjpeg, is the paper's IJG
tables at 4:2:0. What the restoration is given is then read off the file written last, as
`fbcnn restore` reads a file: its tables and chroma subsampling (JPEG consistency, the block
grid), and its IJG-equivalent QF (`jpeg.qf_from_tables`: the near-lossless share, the
recompression analysis' last QF), which for other encoders is not the quality setting.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..engine.finish import finish
from ..engine.restorer import Restorer
from ..jpeg.color import rgb_to_y
from ..jpeg.consistency import JpegTables
from ..jpeg.degrade import double_jpeg
from ..jpeg.encoders import EncoderSpec, decode_with_qf, encode_with, parse_encoder
from ..jpeg.qf import check_qf, single_jpeg_qf
from ..jpeg.tables import compress, grid_multiple, qf_from_tables, subsampling_of
from ..networks.network import FBCNN
from . import metrics

METRICS = ("psnr", "ssim", "psnrb")
CORRECTIONS = ("none", "dominant", "tables")
PAPER_SHIFT = (4, 4)


@dataclass(frozen=True)
class Setting:
    """One row: single JPEG at `qf`, or double JPEG `qf` (QF1) then `qf2` after a crop."""

    qf: int
    qf2: int | None = None
    shift: tuple[int, int] | None = None

    @property
    def is_double(self) -> bool:
        return self.qf2 is not None

    @property
    def last_qf(self) -> int:
        """The QF of the last compression (the one in the file's tables)."""
        return self.qf2 if self.qf2 is not None else self.qf

    @property
    def label(self) -> str:
        return f"{self.qf}:{self.qf2}" if self.is_double else str(self.qf)


def settings_for(qfs: Iterable[int] = (), double: Iterable[tuple[int, int]] | None = None,
                 shift: tuple[int, int] = PAPER_SHIFT) -> list[Setting]:
    """Single rows for `qfs`, then double rows (QF1, QF2) with `shift`."""
    rows = [Setting(int(q)) for q in qfs]
    dy, dx = (int(v) for v in shift)
    for qf1, qf2 in double or ():
        rows.append(Setting(int(qf1), int(qf2), (dy, dx)))
    for row in rows:
        for q in (row.qf, row.qf2):
            if q is not None:
                check_qf(q, "quality factors")
    if any(row.shift and not (0 <= row.shift[0] and 0 <= row.shift[1]) for row in rows):
        raise ValueError(f"shift must be non-negative, got {shift}")
    return rows


def degrade(clean: np.ndarray, setting: Setting) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, ground truth) of a clean uint8 image for one setting (4:2:0 colour)."""
    if setting.is_double:
        out = double_jpeg(clean, setting.qf, setting.last_qf, setting.shift or (0, 0))
        return out.degraded, np.ascontiguousarray(out.clean)
    return compress(clean, setting.qf), clean


def grid_of(channels: int) -> int:
    """The JPEG grid the restorer's tiles start on for our degradations (4:2:0 colour)."""
    return grid_multiple("4:2:0" if channels == 3 else None, channels)


# ------------------------------------------------------------------------------- encoders


DEFAULT_ENCODER = "libjpeg"


def as_encoder(encoder: EncoderSpec | str | None) -> EncoderSpec:
    """An EncoderSpec from a spec string (`encoders.parse_encoder`; ValueError with one line
    for a bad one), None meaning libjpeg."""
    if encoder is None:
        return EncoderSpec()
    if isinstance(encoder, EncoderSpec):
        return encoder
    return parse_encoder(str(encoder))


def encoder_text(spec: EncoderSpec) -> str:
    """The spec string of an encoder, as `parse_encoder` reads it ('mozjpeg:table=2');
    its label when it has no such string (libjpeg with base tables of its own)."""
    if spec.base_tables is not None:
        return spec.label
    parts = [spec.name]
    if spec.subsampling:
        parts.append(spec.subsampling)
    if spec.quant_table is not None:
        parts.append(f"table={spec.quant_table}")
    if spec.name == "mozjpeg" and not spec.trellis:
        parts.append("notrellis")
    return ":".join(parts)


def _paper_encoder(spec: EncoderSpec) -> bool:
    """libjpeg with IJG tables at 4:2:0: the paper's degradation (`degrade`)."""
    return (spec.name == "libjpeg" and spec.subsampling in (None, "4:2:0")
            and spec.quant_table is None and spec.base_tables is None)


@dataclass
class Degraded:
    """One degraded image and what restoring its file is given: the file's usable tables
    (None: none, as `imageio.read_image` finds them), its IJG-equivalent QF, and the
    chroma subsampling (None for grey)."""

    pixels: np.ndarray
    clean: np.ndarray
    tables: JpegTables | None
    header_qf: int
    subsampling: str | None


def _file_facts(data: bytes, channels: int) -> tuple[JpegTables | None, int, str | None]:
    """(tables, header QF, subsampling) of a JPEG file as `fbcnn restore` reads them
    (`imageio.read_image`, `analysis.jpeg_tables`). Grey: the luma plane of the file, its
    table alone (jpegli writes grey images as colour files)."""
    from ..images.files import _usable_tables

    with Image.open(io.BytesIO(data)) as im:
        subsampling = subsampling_of(im)
        header_qf, quantization = _usable_tables(im, subsampling)
        if channels == 1 and subsampling is not None:  # a colour file's luma plane
            header_qf = qf_from_tables({0: [int(v) for v in im.quantization[0]]})
    if channels == 1:
        subsampling = None  # JpegTables.from_pillow then keeps the luma table alone
    if header_qf is None:
        raise ValueError("the encoder wrote a JPEG without quantisation tables")
    return JpegTables.from_pillow(quantization, subsampling), header_qf, subsampling


def _encoded(spec: EncoderSpec, image: np.ndarray, quality: int
             ) -> tuple[np.ndarray, JpegTables | None, int, str | None]:
    """An image written by `spec` at `quality` and read back: pixels (Pillow's decoding,
    the input's shape, as `encoders.compress_with`) and the file's facts (`_file_facts`)."""
    channels = image.shape[2]
    data = encode_with(spec, np.ascontiguousarray(image), quality)
    pixels, _ = decode_with_qf(data, channels)
    return (pixels, *_file_facts(data, channels))


def degrade_with(clean: np.ndarray, setting: Setting,
                 encoder: EncoderSpec | None = None) -> Degraded:
    """`degrade` with every JPEG written by `encoder` at the setting's QFs taken as its
    quality (None or libjpeg 4:2:0: `degrade` itself, the paper's IJG tables)."""
    channels = clean.shape[2]
    spec = encoder or EncoderSpec()
    if _paper_encoder(spec):
        degraded, truth = degrade(clean, setting)
        colour = channels == 3
        return Degraded(degraded, truth, JpegTables.standard(setting.last_qf, colour),
                        setting.last_qf, "4:2:0" if colour else None)
    truth = clean
    source = clean
    if setting.is_double:
        dy, dx = setting.shift or (0, 0)
        source = _encoded(spec, clean, setting.qf)[0][dy:, dx:]
        truth = np.ascontiguousarray(clean[dy:, dx:])
    pixels, tables, header_qf, subsampling = _encoded(spec, source, setting.last_qf)
    return Degraded(pixels, truth, tables, header_qf, subsampling)


# ----------------------------------------------------------------------------------- data


def list_images(data_dir: str | Path, limit: int | None = None) -> list[Path]:
    """The image files of a folder (sorted, not recursive), the first `limit` of them."""
    from ..images.files import list_inputs

    folder = Path(data_dir)
    if not folder.exists():
        raise ValueError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = list_inputs([folder])
    if not files:
        raise ValueError(f"{folder}: no images found (.png, .jpg, .bmp, .tif, ... files)")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        files = files[:limit]
    return files


def load_clean(path: Path, gray: bool) -> np.ndarray:
    """A clean uint8 image: HxWx1 grey (BT.601 Y of colour files) or HxWx3 colour (grey
    files repeated over three channels)."""
    from ..images.files import ImageError, read_image

    try:
        pixels = read_image(path).pixels
    except ImageError as e:
        raise ValueError(str(e)) from None
    if gray:
        return rgb_to_y(pixels) if pixels.shape[2] == 3 else pixels
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


# ------------------------------------------------------------------------------- evaluate


def _as_restorer(model: Restorer | FBCNN | str | Path, device: str,
                 precision: str, backend: str = "auto") -> tuple[Restorer, str]:
    if isinstance(model, Restorer):
        return model, "network"
    if isinstance(model, FBCNN):
        return Restorer.of(model, device=device, precision=precision), "network"
    from ..engine.model import (
        load_model,  # the runtime `fbcnn restore` would pick (fbcnn.networks.runtimes)
    )

    loaded = load_model(model, device=device, precision=precision, backend=backend)
    return loaded.restorer, str(model)


def _qf_to_feed(degraded: np.ndarray, made: Degraded, predicted_qf: float,
                double: bool) -> float | None:
    """The QF `fbcnn restore` feeds this JPEG (None: the reading), by the rules of
    `fbcnn.jpeg.qf`: with `double` (FBCNN-D), the double-JPEG QF when the recompression
    analysis finds an earlier compression; else (and without `double`) a single JPEG's
    tables' floor."""
    if double:
        from ..jpeg.recompress import analyse  # FBCNN-D: only needed for this correction

        verdict = analyse(degraded, last_qf=made.header_qf)
        if verdict.detected:
            return verdict.qf_to_feed(predicted_qf)
    if made.tables is None:
        return None
    return single_jpeg_qf(predicted_qf, made.header_qf, made.tables.luma, made.tables.chroma)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _restore_measured(restorer: Restorer, made: Degraded, name: str, consistency: bool,
                      correction: str, qf_input: int | None) -> dict:
    """One degraded image restored as `fbcnn restore` would (the QF fed by `correction` or
    `qf_input`), and its metrics: a `per_image` entry of `evaluate`."""
    degraded, clean = made.pixels, made.clean
    grid = grid_multiple(made.subsampling, restorer.channels)
    feed: float | None = qf_input
    predicted = None
    if correction == "tables":
        feed = float(made.header_qf)
    elif qf_input is None and restorer.info.has_qf_input:
        predicted = restorer.predict_qf(degraded, grid)
        feed = _qf_to_feed(degraded, made, predicted, correction == "dominant")
    out = restorer.restore(degraded, qf=feed, grid=grid, predicted_qf=predicted)
    restored = finish(out.pixels, degraded, made.tables if consistency else None,
                      out.predicted_qf, near_lossless=feed is None)
    return {
        "name": name,
        "jpeg": metrics.quality(degraded, clean),
        "restored": metrics.quality(restored, clean),
        "predicted_qf": float(out.predicted_qf),
        "used_qf": float(out.used_qf),
        "header_qf": int(made.header_qf),
    }


def _summary(setting: Setting, images: list[dict]) -> dict:
    """A row of `evaluate`: the setting and the means over its images."""
    return {
        "qf": setting.qf,
        "qf2": setting.qf2,
        "shift": list(setting.shift) if setting.shift else None,
        "label": setting.label,
        "jpeg": {m: _mean([im["jpeg"][m] for im in images]) for m in METRICS},
        "restored": {m: _mean([im["restored"][m] for im in images]) for m in METRICS},
        "predicted_qf": _mean([im["predicted_qf"] for im in images]),
        "used_qf": _mean([im["used_qf"] for im in images]),
        "header_qf": _mean([im["header_qf"] for im in images]),
        "images": len(images),
        "per_image": images,
    }


def evaluate(data_dir: str | Path, restorer_or_network: Restorer | FBCNN | str | Path, *,
             gray: bool | None = False, qfs: Sequence[int] = (10, 20, 30, 40),
             double: Sequence[tuple[int, int]] | None = None,
             shift: tuple[int, int] = PAPER_SHIFT, correction: str = "none",
             qf_input: int | None = None, limit: int | None = None, progress: bool = True,
             model_name: str | None = None, device: str = "auto",
             consistency: bool = True, precision: str = "auto",
             backend: str = "auto", encoder: EncoderSpec | str | None = DEFAULT_ENCODER
             ) -> dict:
    """Evaluate a model on a folder of clean images; returns a JSON-ready dict.

    `restorer_or_network`: a Restorer, an FBCNN network, or a model name/path.
    `gray`: True evaluates the grey (BT.601 Y) versions, False colour, None follows the
    model's channels. `qfs`: single-JPEG rows; `double`: (QF1, QF2) rows, cropped by `shift`.
    `correction`: 'none' feeds the predicted QF, 'tables' the file's IJG-equivalent QF (what
    its quantisation tables are nearest to), 'dominant' the recompression analysis'
    dominant QF; `qf_input` feeds that QF instead (exclusive with 'dominant').
    `consistency`: keep results inside the JPEG's quantisation cells, as `fbcnn restore`
    does by default (the tables are the last compression's, 4:2:0 for colour).
    `precision`: 'auto', 'fp32' or 'bf16' (as `fbcnn restore --precision`); `backend`:
    'auto', 'torch' or 'onnx' (as `fbcnn restore --backend`), for a model name or path.
    `encoder`: what writes every JPEG (an `EncoderSpec` or a spec string such as 'mozjpeg',
    'mozjpeg:table=2', 'jpegli'; the QFs are its quality settings); consistency, the block
    grid, the near-lossless share and the dominant correction then go by the tables,
    subsampling and IJG-equivalent QF of the file it wrote, as `fbcnn restore` would.

    Shape: {"dataset", "gray", "model", "correction", "encoder", "rows": [{"qf", "qf2",
    "shift", "jpeg": {psnr, ssim, psnrb}, "restored": {...}, "predicted_qf", "header_qf",
    "per_image": [{"name", "jpeg", "restored", "predicted_qf", "used_qf", "header_qf"}],
    ...}], ...}; row values are means over the images; `header_qf` is the IJG-equivalent
    QF of the (last) JPEG file's tables.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if qf_input is not None:
        if correction != "none":
            raise ValueError(f"qf_input and correction={correction!r} cannot be used together")
        check_qf(qf_input, "qf_input")
    spec = as_encoder(encoder)
    settings = settings_for(qfs, double, shift)
    if not settings:
        raise ValueError("nothing to evaluate: give single QFs or double (QF1, QF2) pairs")
    files = list_images(data_dir, limit)
    restorer, default_name = _as_restorer(restorer_or_network, device, precision, backend)
    channels = restorer.channels
    if gray is None:
        gray = channels == 1
    if channels != (1 if gray else 3):
        kind = "grey" if channels == 1 else "colour"
        raise ValueError(f"the model takes {kind} images: evaluate with gray={channels == 1}")

    per_row: list[list[dict]] = [[] for _ in settings]
    start = time.perf_counter()
    with tqdm(total=len(files) * len(settings), file=sys.stderr, disable=not progress,
              unit="img", desc=Path(data_dir).name) as bar:
        for path in files:
            clean_full = load_clean(path, gray)
            for row, setting in zip(per_row, settings, strict=True):
                made = degrade_with(clean_full, setting, spec)
                row.append(_restore_measured(restorer, made, path.name, consistency,
                                             correction, qf_input))
                bar.update(1)

    rows = [_summary(setting, images) for setting, images in zip(settings, per_row, strict=True)]
    return {
        "dataset": Path(data_dir).name,
        "data_dir": str(data_dir),
        "gray": bool(gray),
        "model": model_name or default_name,
        "correction": correction,
        "encoder": encoder_text(spec),
        "qf_input": qf_input,
        "consistency": consistency,
        "precision": restorer.info.precision,
        "backend": restorer.info.runtime,
        "qf_tile": restorer.qf_tile,
        "images": len(files),
        "seconds": round(time.perf_counter() - start, 2),
        "rows": rows,
    }


# --------------------------------------------------------------------------------- tables


def _triple(m: dict) -> str:
    return f"{m['psnr']:.2f}|{m['ssim']:.3f}|{m['psnrb']:.2f}"


def format_table(result: dict) -> str:
    """A plain-text table of an `evaluate` result: per row the JPEG and restored
    PSNR|SSIM|PSNR-B (2/3/2 decimals as in the paper), the PSNR gain, the mean predicted
    QF and, when something else was fed (dominant correction, qf_input), the mean used QF.
    With an encoder other than libjpeg, the title names it, QF is its quality setting and
    a column gives the mean IJG-equivalent QF of the files it wrote."""
    kind = "grey" if result["gray"] else "colour"
    encoder = result.get("encoder") or DEFAULT_ENCODER
    other = encoder != DEFAULT_ENCODER
    title = (f"{result['dataset']} ({kind}), model {result['model']}, "
             f"correction {result['correction']}")
    if other:
        title += f", encoder {encoder}"
    if result.get("qf_input") is not None:
        title += f", QF input {result['qf_input']}"
    if result.get("consistency") is not None:
        title += f", consistency {'on' if result['consistency'] else 'off'}"
    if "images" in result:
        title += f", {result['images']} images"
    fed = result["correction"] != "none" or result.get("qf_input") is not None
    header = (f"{'QF':<8}{'JPEG PSNR|SSIM|PSNR-B':<24}{'restored PSNR|SSIM|PSNR-B':<28}"
              f"{'gain dB':>8}{'pred. QF':>10}" + (f"{'used QF':>9}" if fed else "")
              + (f"{'file QF':>9}" if other else ""))
    lines = [title, header, "-" * len(header)]
    for row in result["rows"]:
        label = f"{row['qf']}:{row['qf2']}" if row.get("qf2") is not None else str(row["qf"])
        gain = row["restored"]["psnr"] - row["jpeg"]["psnr"]
        line = (f"{label:<8}{_triple(row['jpeg']):<24}{_triple(row['restored']):<28}"
                f"{gain:>+8.2f}{row['predicted_qf']:>10.1f}")
        if fed:
            line += f"{row.get('used_qf', float('nan')):>9.1f}"
        if other:
            line += f"{row.get('header_qf', float('nan')):>9.1f}"
        lines.append(line)
    return "\n".join(lines)
