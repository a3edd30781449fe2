"""One file end to end: read -> (double-JPEG analysis) -> restore -> write.

`ModelSet` picks the model for each image (colour or grey, loaded once, on first use);
`restore_file` and `inspect_file` are what `fbcnn restore` and `fbcnn inspect` call per
file. Values pass as arrays and small dataclasses; files are touched only through imageio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .consistency import JpegTables
from .imageio import LoadedImage, read_image, remove_stale_temps, write_image
from .jpeg import grid_multiple
from .model import Model, load_model
from .restore import DEFAULT_TILE


class ModelSet:
    """The model for each image: a fixed one (`model`), or `color` / `gray` by channels."""

    def __init__(self, model: str | None = None, device: str = "auto",
                 tile: int | None = DEFAULT_TILE) -> None:
        self.fixed = model
        self.device = device
        self.tile = tile
        self._loaded: dict[str, Model] = {}

    def get(self, name: str) -> Model:
        if name not in self._loaded:
            self._loaded[name] = load_model(name, device=self.device, tile=self.tile)
        return self._loaded[name]

    def for_image(self, image: LoadedImage) -> Model:
        if self.fixed:
            return self.get(self.fixed)
        return self.get("gray" if image.is_gray else "color")


@dataclass
class FileReport:
    path: Path
    model: str
    predicted_qf: float
    used_qf: float
    outputs: list[Path] = field(default_factory=list)
    double: dict[str, Any] | None = None
    skipped: bool = False


def jpeg_tables(image: LoadedImage) -> JpegTables | None:
    """The tables that bound where the original can be: for JPEG files read in their stored
    orientation (None otherwise)."""
    if image.format != "JPEG" or image.transposed:
        return None
    return JpegTables.from_pillow(image.quantization, image.subsampling)


def analyse_double(image: LoadedImage) -> Any:
    """The recompression verdict of a JPEG (None for other formats)."""
    if image.format != "JPEG":
        return None
    from .recompress import analyse

    return analyse(image.pixels, last_qf=image.header_qf)


def output_paths(path: Path, outdir: Path | None, sweep: list[int] | None,
                 suffix: str = ".png") -> list[Path]:
    folder = outdir if outdir is not None else path.parent / "restored"
    if sweep:
        return [folder / f"{path.stem}_qf{q}{suffix}" for q in sweep]
    return [folder / f"{path.stem}{suffix}"]


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """The input and the result next to each other, white gap between."""
    h, w, c = before.shape
    canvas = np.full((h, 2 * w + gap, c), 255, np.uint8)
    canvas[:, :w] = before
    canvas[:, w + gap:] = after
    return canvas


def restore_file(path: Path, models: ModelSet, *, outdir: Path | None = None,
                 qf: float | None = None, sweep: list[int] | None = None,
                 double: str = "auto", skip_existing: bool = False,
                 compare: bool = False, protect: tuple[Path, ...] = (),
                 consistency: bool = True) -> FileReport:
    """Restore one file; raises imageio.ImageError / ValueError with one-line messages.
    `consistency`: keep a JPEG's result inside its quantisation cells (fbcnn.consistency)."""
    targets = output_paths(path, outdir, sweep)
    remove_stale_temps(*targets)  # temp files of a run killed mid-write (resume: --skip-existing)
    if skip_existing and all(t.exists() for t in targets):
        return FileReport(path, "", float("nan"), float("nan"), targets, skipped=True)
    image = read_image(path)
    model = models.for_image(image)
    grid = grid_multiple(image.subsampling, image.pixels.shape[2])
    report = FileReport(path, model.name, float("nan"), float("nan"))

    used_qf = qf  # None: the network's own prediction
    if qf is None and double == "auto":
        verdict = analyse_double(image)
        if verdict is not None:
            report.double = verdict.to_json()
            if verdict.detected:
                predicted = model.predict_qf(image.pixels, grid)
                report.predicted_qf = predicted
                dominant = verdict.dominant_qf(predicted)
                used_qf = None if dominant == predicted else dominant
    qfs: list[float | None] = [float(q) for q in sweep] if sweep else [used_qf]
    tables = jpeg_tables(image) if consistency else None
    for q, target in zip(qfs, targets, strict=False):
        result = model.restore_array(image.pixels, q, grid, tables)
        if np.isnan(report.predicted_qf):
            report.predicted_qf = result.predicted_qf
        report.used_qf = result.used_qf
        written = write_image(target, result.image, alpha=image.alpha,
                              icc_profile=image.icc_profile, protect=(path, *protect))
        report.outputs.append(written)
        if compare:
            pair = side_by_side(image.pixels, result.image)
            cmp_path = target.with_name(target.stem + "_compare.png")
            report.outputs.append(write_image(cmp_path, pair, protect=(path, *protect)))
    return report


def inspect_file(path: Path, models: ModelSet, double: bool = True) -> dict[str, Any]:
    """What `fbcnn inspect --json` prints for one image."""
    image = read_image(path)
    model = models.for_image(image)
    grid = grid_multiple(image.subsampling, image.pixels.shape[2])
    info: dict[str, Any] = {
        "path": str(path),
        "format": image.format,
        "header_qf": image.header_qf,
        "predicted_qf": round(model.predict_qf(image.pixels, grid), 2),
        "model": model.name,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "subsampling": image.subsampling,
    }
    if double:
        verdict = analyse_double(image)
        info["double"] = verdict.to_json() if verdict is not None else None
    return info
