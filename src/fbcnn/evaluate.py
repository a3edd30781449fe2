"""The evaluation harness: degrade clean images as the paper does, restore, measure.

For each clean image of a folder and each setting (a row of the paper's tables):

    clean --degrade--> JPEG --Restorer--> restored
    metrics(JPEG, clean) and metrics(restored, clean): PSNR | SSIM | PSNR-B

Settings are single JPEG at a QF, or double JPEG (QF1, decode, crop [dy:, dx:], QF2) whose
ground truth is cropped alike. Colour is compressed with 4:2:0 chroma subsampling and
restored on the 16-pixel MCU grid; grey (the rounded BT.601 Y of colour images with
`gray=True`, grey files as they are) on the 8-pixel grid. After a crop the grid is the last
compression's, which starts at (0, 0), so the grid never changes.

The QF fed to the network is its own prediction, a fixed `qf_input`, or with
`correction='dominant'` the QF that dominates the artifacts of a double JPEG according to
the recompression analysis (`fbcnn.recompress`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import metrics
from .color import rgb_to_y
from .consistency import JpegTables
from .degrade import double_jpeg
from .jpeg import check_qf, compress, grid_multiple
from .network import FBCNN
from .restore import Restorer

METRICS = ("psnr", "ssim", "psnrb")
CORRECTIONS = ("none", "dominant")
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


# ----------------------------------------------------------------------------------- data


def list_images(data_dir: str | Path, limit: int | None = None) -> list[Path]:
    """The image files of a folder (sorted, not recursive), the first `limit` of them."""
    from .imageio import list_inputs

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
    from .imageio import ImageError, read_image

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
        return Restorer(model, device=device, precision=precision), "network"
    from .model import load_model  # the engine `fbcnn restore` would pick (fbcnn.backend)

    loaded = load_model(model, device=device, precision=precision, backend=backend)
    return loaded.restorer, str(model)


def _dominant_qf(degraded: np.ndarray, last_qf: int, predicted_qf: float) -> float | None:
    """The QF `fbcnn restore` feeds this double JPEG (None: the prediction)."""
    from .recompress import analyse  # FBCNN-D: only needed for this correction

    return analyse(degraded, last_qf=last_qf).qf_to_feed(predicted_qf)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def evaluate(data_dir: str | Path, restorer_or_network: Restorer | FBCNN | str | Path, *,
             gray: bool | None = False, qfs: Sequence[int] = (10, 20, 30, 40),
             double: Sequence[tuple[int, int]] | None = None,
             shift: tuple[int, int] = PAPER_SHIFT, correction: str = "none",
             qf_input: int | None = None, limit: int | None = None, progress: bool = True,
             model_name: str | None = None, device: str = "auto",
             consistency: bool = True, precision: str = "auto",
             backend: str = "auto") -> dict:
    """Evaluate a model on a folder of clean images; returns a JSON-ready dict.

    `restorer_or_network`: a Restorer, an FBCNN network, or a model name/path.
    `gray`: True evaluates the grey (BT.601 Y) versions, False colour, None follows the
    model's channels. `qfs`: single-JPEG rows; `double`: (QF1, QF2) rows, cropped by `shift`.
    `correction`: 'none' feeds the predicted QF, 'dominant' the recompression analysis'
    dominant QF; `qf_input` feeds that QF instead (exclusive with 'dominant').
    `consistency`: keep results inside the JPEG's quantisation cells, as `fbcnn restore`
    does by default (the tables are the last compression's, 4:2:0 for colour).
    `precision`: 'auto', 'fp32' or 'bf16' (as `fbcnn restore --precision`); `backend`:
    'auto', 'torch' or 'onnx' (as `fbcnn restore --backend`), for a model name or path.

    Shape: {"dataset", "gray", "model", "correction", "rows": [{"qf", "qf2", "shift",
    "jpeg": {psnr, ssim, psnrb}, "restored": {...}, "predicted_qf", "per_image": [{"name",
    "jpeg", "restored", "predicted_qf", "used_qf"}], ...}], ...}; row values are means over
    the images.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if qf_input is not None:
        if correction != "none":
            raise ValueError("qf_input and correction='dominant' cannot be used together")
        check_qf(qf_input, "qf_input")
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
    grid = grid_of(channels)

    per_row: list[list[dict]] = [[] for _ in settings]
    start = time.perf_counter()
    with tqdm(total=len(files) * len(settings), file=sys.stderr, disable=not progress,
              unit="img", desc=Path(data_dir).name) as bar:
        for path in files:
            clean_full = load_clean(path, gray)
            for row, setting in zip(per_row, settings, strict=True):
                degraded, clean = degrade(clean_full, setting)
                tables = (JpegTables.standard(setting.last_qf, channels == 3)
                          if consistency else None)
                feed: float | None = qf_input
                predicted = None
                if correction == "dominant":
                    predicted = restorer.predict_qf(degraded, grid)
                    feed = _dominant_qf(degraded, setting.last_qf, predicted)
                out = restorer.restore(degraded, qf=feed, grid=grid, tables=tables,
                                       predicted_qf=predicted)
                predicted, used = out.predicted_qf, out.used_qf
                row.append({
                    "name": path.name,
                    "jpeg": metrics.quality(degraded, clean),
                    "restored": metrics.quality(out.pixels, clean),
                    "predicted_qf": float(predicted),
                    "used_qf": float(used),
                })
                bar.update(1)

    rows = []
    for setting, images in zip(settings, per_row, strict=True):
        rows.append({
            "qf": setting.qf,
            "qf2": setting.qf2,
            "shift": list(setting.shift) if setting.shift else None,
            "label": setting.label,
            "jpeg": {m: _mean([im["jpeg"][m] for im in images]) for m in METRICS},
            "restored": {m: _mean([im["restored"][m] for im in images]) for m in METRICS},
            "predicted_qf": _mean([im["predicted_qf"] for im in images]),
            "used_qf": _mean([im["used_qf"] for im in images]),
            "images": len(images),
            "per_image": images,
        })
    return {
        "dataset": Path(data_dir).name,
        "data_dir": str(data_dir),
        "gray": bool(gray),
        "model": model_name or default_name,
        "correction": correction,
        "qf_input": qf_input,
        "consistency": consistency,
        "precision": restorer.precision,
        "backend": "onnx" if restorer.on_numpy else "torch",
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
    QF and, when something else was fed (dominant correction, qf_input), the mean used QF."""
    kind = "grey" if result["gray"] else "colour"
    title = (f"{result['dataset']} ({kind}), model {result['model']}, "
             f"correction {result['correction']}")
    if result.get("qf_input") is not None:
        title += f", QF input {result['qf_input']}"
    if result.get("consistency") is not None:
        title += f", consistency {'on' if result['consistency'] else 'off'}"
    if "images" in result:
        title += f", {result['images']} images"
    fed = result["correction"] != "none" or result.get("qf_input") is not None
    header = (f"{'QF':<8}{'JPEG PSNR|SSIM|PSNR-B':<24}{'restored PSNR|SSIM|PSNR-B':<28}"
              f"{'gain dB':>8}{'pred. QF':>10}" + (f"{'used QF':>9}" if fed else ""))
    lines = [title, header, "-" * len(header)]
    for row in result["rows"]:
        label = f"{row['qf']}:{row['qf2']}" if row.get("qf2") is not None else str(row["qf"])
        gain = row["restored"]["psnr"] - row["jpeg"]["psnr"]
        line = (f"{label:<8}{_triple(row['jpeg']):<24}{_triple(row['restored']):<28}"
                f"{gain:>+8.2f}{row['predicted_qf']:>10.1f}")
        if fed:
            line += f"{row.get('used_qf', float('nan')):>9.1f}"
        lines.append(line)
    return "\n".join(lines)
