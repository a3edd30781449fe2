"""docs/results.md from `fbcnn evaluate` results: small builders of markdown tables and lines.

Every function takes the JSON-loaded result dicts of `fbcnn.evaluation.evaluate.evaluate` (as
written by scripts/make_results.py, which runs the evaluations and writes the files) and returns
text; nothing here reads files or runs a network.

    result = {"model": "color", "gray": False, "images": 200, "seconds": 502.0,
              "rows": [{"qf": 10, "qf2": None, "jpeg": {"psnr": .., "ssim": .., "psnrb": ..},
                        "restored": {...}, "predicted_qf": 11.2, "used_qf": 11.2,
                        "per_image": [{"name": "x.png", "jpeg": {...}, "restored": {...},
                                       "predicted_qf": 10.9}, ...]}, ...],
              # written by scripts/make_results.py beside the evaluation's own keys:
              "model_config": {...}, "model_metadata": {...}, "model_parameters": 2.3e6,
              "qf_sweep": sweep_summary(result)}  # QF sweep files only
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .evaluate import METRICS

SHIFT = (4, 4)  # the double-JPEG crop, as in the paper
SWEEP_MAE_MIN_QF, SWEEP_MAE_MAX_QF = 10, 90  # the predicted-QF target covers QF 10..90
MAE_TARGET = 3.0
WORST_IMAGE_LOSS_DB = 0.2  # "never worse": no image loses more than this

Metrics = tuple[float | None, ...]

# The paper's numbers (Jiang, Zhang, Timofte: "Towards Flexible Blind JPEG Artifacts
# Removal", ICCV 2021), as collected in ../shared/docs/fbcnn-reference.md, section 4
# (grey) and section 3 (the check of the JPEG column). The colour BSDS500 JPEG column
# (PSNR|SSIM only) is the paper's colour table as quoted in the task brief; the paper's
# colour FBCNN numbers on BSDS500 are not in the reference, so they are not shown.
PAPER_SOURCE = ("Jiang et al., ICCV 2021 (FBCNN), numbers as collected in "
                "shared/docs/fbcnn-reference.md sections 3-4")
PAPER_SINGLE: dict[bool, dict[int, tuple[Metrics, Metrics | None]]] = {
    # gray: {QF: (JPEG (psnr, ssim, psnrb), FBCNN (psnr, ssim, psnrb))}, BSDS500
    True: {
        10: ((27.80, 0.768, 25.10), (29.67, 0.821, 29.22)),
        20: ((30.05, 0.849, 27.22), (32.00, 0.885, 31.19)),
        30: ((31.37, 0.884, 28.53), (33.37, 0.913, 32.32)),
        40: ((32.30, 0.903, 29.49), (34.33, 0.928, 33.10)),
    },
    False: {
        10: ((25.84, 0.741, None), None),
        20: ((28.21, 0.827, None), None),
        30: ((29.57, 0.865, None), None),
        40: ((30.52, 0.887, None), None),
    },
}
# grey double JPEG on LIVE1 (other images than ours), shift (4, 4):
# (QF1, QF2): (JPEG (psnr, ssim), PSNR of FBCNN, FBCNN-D, FBCNN-A)
PAPER_DOUBLE_LIVE1: dict[tuple[int, int], tuple[Metrics, tuple[float, float, float]]] = {
    (10, 30): ((27.55, 0.760), (28.29, 28.94, 29.38)),
    (10, 50): ((27.69, 0.768), (28.20, 28.96, 29.52)),
    (30, 50): ((30.61, 0.865), (31.96, 32.31, 32.64)),
    (30, 10): ((27.49, 0.762), (29.46, 29.46, 29.44)),
    (10, 10): ((26.48, 0.715), (27.96, 27.95, 28.25)),
}


# ------------------------------------------------------------------------------ numbers


def mean(values: Iterable[float]) -> float:
    """The mean, NaN for no values."""
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def single_rows(result: dict) -> list[dict]:
    """The single-JPEG rows of a result (those without a second QF)."""
    return [row for row in result["rows"] if row.get("qf2") is None]


def sweep_row(row: dict) -> dict:
    """One QF of a sweep: JPEG/restored PSNR, gain, images made worse, the worst image's
    gain, mean predicted QF and its mean absolute error over the images."""
    images = row["per_image"]
    return {
        "qf": row["qf"],
        "images": len(images),
        "jpeg_psnr": float(row["jpeg"]["psnr"]),
        "restored_psnr": float(row["restored"]["psnr"]),
        "gain_db": float(row["restored"]["psnr"] - row["jpeg"]["psnr"]),
        "images_worse": int(sum(bool(im["restored"]["psnr"] < im["jpeg"]["psnr"])
                                for im in images)),
        "worst_image_gain_db": float(min(im["restored"]["psnr"] - im["jpeg"]["psnr"]
                                         for im in images)),
        "predicted_qf": float(row["predicted_qf"]),
        "predicted_qf_mae": float(mean(abs(im["predicted_qf"] - row["qf"]) for im in images)),
    }


def sweep_summary(result: dict) -> dict:
    """Per QF of a single-JPEG sweep (`sweep_row`); overall: the predicted-QF MAE over all
    images at QF 10..90 and whether it meets MAE_TARGET, the lowest mean gain and its QF,
    the worst single image's gain and whether every image stays above -WORST_IMAGE_LOSS_DB."""
    rows = single_rows(result)
    per_qf = [sweep_row(row) for row in rows]
    errors = [float(abs(im["predicted_qf"] - row["qf"])) for row in rows
              if SWEEP_MAE_MIN_QF <= row["qf"] <= SWEEP_MAE_MAX_QF
              for im in row["per_image"]]
    worst = min(per_qf, key=lambda r: r["gain_db"]) if per_qf else None
    return {
        "per_qf": per_qf,
        "images": result.get("images"),
        "mae_qf10_90": mean(errors),
        "mae_target": MAE_TARGET,
        "mae_met": bool(errors and mean(errors) <= MAE_TARGET),
        "min_gain_db": worst["gain_db"] if worst else math.nan,
        "min_gain_qf": worst["qf"] if worst else None,
        "never_worse": bool(per_qf) and all(r["gain_db"] >= 0 for r in per_qf),
        "worst_image_gain_db": min((r["worst_image_gain_db"] for r in per_qf),
                                   default=math.nan),
        "no_image_worse_than_limit": bool(per_qf) and all(
            r["worst_image_gain_db"] >= -WORST_IMAGE_LOSS_DB for r in per_qf),
    }


def subset_row(row: dict, names: list[str]) -> dict | None:
    """A row's means over the per-image entries named `names` (None if any is missing)."""
    by_name = {im["name"]: im for im in row["per_image"]}
    if not names or any(n not in by_name for n in names):
        return None
    images = [by_name[n] for n in names]
    return {
        "jpeg": {m: mean(im["jpeg"][m] for im in images) for m in METRICS},
        "restored": {m: mean(im["restored"][m] for im in images) for m in METRICS},
        "predicted_qf": mean(im["predicted_qf"] for im in images),
        "images": len(images),
    }


# ------------------------------------------------------------------------------- pieces


def fmt(values: Sequence[float | None] | None, digits: Sequence[int] = (2, 3, 2)) -> str:
    """PSNR|SSIM|PSNR-B like the paper, the pipes escaped for markdown tables; '-' for
    no values or a missing one."""
    if values is None:
        return "-"
    return "\\|".join("-" if v is None else f"{v:.{d}f}" for v, d in zip(values, digits,
                                                                         strict=False))


def triple(m: dict) -> tuple[float, float, float]:
    return (m["psnr"], m["ssim"], m["psnrb"])


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head),
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def images_caption(result: dict) -> str:
    """'1 image', '50 images'."""
    n = result.get("images", 0)
    return f"{n} image{'s' if n != 1 else ''}"


def gain(row: dict) -> str:
    """Restored minus JPEG PSNR of a row, signed, in dB."""
    return f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}"


def row_label(row: dict) -> str:
    """'10' for a single JPEG, '10:30' for a double one."""
    return f"{row['qf']}:{row['qf2']}" if row["qf2"] is not None else str(row["qf"])


# ------------------------------------------------------------------------------- tables


def single_table(none: dict, paper: bool = True) -> list[str]:
    """Single-JPEG rows: ours beside the paper's numbers (`paper`), gain, predicted QF."""
    head = ["QF", "JPEG (ours)"] + (["JPEG (paper)"] if paper else []) + [
        f"{none['model']} (ours)"]
    head += (["FBCNN (paper)"] if paper else []) + ["gain (dB)", "predicted QF"]
    rows = []
    for row in single_rows(none):
        paper_jpeg, paper_fbcnn = PAPER_SINGLE[none["gray"]].get(row["qf"], (None, None))
        cells = [str(row["qf"]), fmt(triple(row["jpeg"]))]
        cells += [fmt(paper_jpeg)] if paper else []
        cells.append(fmt(triple(row["restored"])))
        cells += [fmt(paper_fbcnn)] if paper else []
        rows.append([*cells, gain(row), f"{row['predicted_qf']:.1f}"])
    return table(head, rows)


def double_table(none: dict) -> list[str]:
    """Double-JPEG rows, with the paper's grey LIVE1 numbers for scale (grey models only)."""
    head = ["QF1:QF2", "JPEG (ours)", f"{none['model']} (ours)", "gain (dB)", "predicted QF",
            "JPEG, LIVE1 (paper)", "FBCNN / -D / -A PSNR, LIVE1 (paper)"]
    rows = []
    for row in none["rows"]:
        if row["qf2"] is None:
            continue
        paper = PAPER_DOUBLE_LIVE1.get((row["qf"], row["qf2"])) if none["gray"] else None
        rows.append([row_label(row), fmt(triple(row["jpeg"])), fmt(triple(row["restored"])),
                     gain(row), f"{row['predicted_qf']:.1f}",
                     fmt(paper[0], (2, 3)) if paper else "-",
                     " / ".join(f"{v:.2f}" for v in paper[1]) if paper else "-"])
    return table(head, rows)


def dominant_row(row: dict, none: dict | None) -> list[str]:
    """One row of `dominant_table`; `none` is the correction-none means on the same images."""
    if none is None:
        return [row_label(row), fmt(triple(row["jpeg"])), "-", fmt(triple(row["restored"])),
                "-", "-", f"{row['used_qf']:.1f}"]
    return [row_label(row), fmt(triple(row["jpeg"])), fmt(triple(none["restored"])),
            fmt(triple(row["restored"])),
            f"{row['restored']['psnr'] - none['restored']['psnr']:+.2f}",
            f"{none['predicted_qf']:.1f}", f"{row['used_qf']:.1f}"]


def dominant_table(dominant: dict, nones: list[dict]) -> tuple[list[str], int]:
    """Predicted QF vs dominant QF, per row, on the dominant run's images: the
    correction-none means are recomputed from the none runs' per-image data. Returns the
    table and the number of rows without like-for-like none data."""
    none_rows = {(r["qf"], r["qf2"]): r for result in nones for r in result["rows"]}
    head = ["QF / QF1:QF2", "JPEG", "predicted QF fed", "dominant QF fed",
            "dominant - predicted (dB)", "mean predicted QF", "mean dominant QF"]
    rows, missing = [], 0
    for row in dominant["rows"]:
        names = [im["name"] for im in row["per_image"]]
        key = (row["qf"], row["qf2"])
        none = subset_row(none_rows[key], names) if key in none_rows else None
        missing += none is None
        rows.append(dominant_row(row, none))
    return table(head, rows), missing


def sweep_table(sweep: dict) -> list[str]:
    """The QF sweep (`sweep_summary`), one row a QF."""
    head = ["QF", "JPEG PSNR", "restored PSNR", "gain (dB)", "images worse",
            "worst image (dB)", "mean predicted QF", "predicted-QF MAE"]
    rows = [[str(r["qf"]), f"{r['jpeg_psnr']:.2f}", f"{r['restored_psnr']:.2f}",
             f"{r['gain_db']:+.2f}", f"{r['images_worse']}/{r['images']}",
             f"{r['worst_image_gain_db']:+.2f}" if "worst_image_gain_db" in r else "-",
             f"{r['predicted_qf']:.1f}", f"{r['predicted_qf_mae']:.1f}"]
            for r in sweep["per_qf"]]
    return table(head, rows)


def met(ok: object) -> str:
    return "met" if ok else "not met"


def sweep_verdict(sweep: dict) -> str:
    """The sweep's targets in one paragraph: predicted-QF MAE, lowest mean gain, worst image."""
    top = max((r["qf"] for r in sweep["per_qf"]), default=0)
    bottom = min((r["qf"] for r in sweep["per_qf"]), default=0)
    return (f"Predicted-QF MAE over QF 10..{SWEEP_MAE_MAX_QF}: {sweep['mae_qf10_90']:.1f} "
            f"(target <= {sweep['mae_target']:g}: {met(sweep['mae_met'])}). "
            f"Lowest mean gain over QF {bottom}..{top}: "
            f"{sweep['min_gain_db']:+.2f} dB at QF {sweep['min_gain_qf']} (never worse than "
            f"the JPEG on average: {'yes' if sweep['never_worse'] else 'no'}). Worst single "
            f"image: {sweep.get('worst_image_gain_db', math.nan):+.2f} dB (target: no image "
            f"below -{WORST_IMAGE_LOSS_DB:g} dB: "
            f"{met(sweep.get('no_image_worse_than_limit'))}).")


# ------------------------------------------------------------------------------ sections


def _metadata_item(key: str, value: object) -> str:
    """One item of the weights' metadata; the provenance (every stage's full config) only
    as its count of stages, which the model card lists."""
    if key == "fbcnn.provenance":
        try:
            stages = json.loads(str(value))
        except ValueError:
            stages = None
        if isinstance(stages, list):
            return f"{len(stages)} training stage{'' if len(stages) == 1 else 's'} (each in " \
                   "the model card)"
    return f"{key} {value}"


def model_header(label: str, first: dict) -> list[str]:
    """The model's heading and provenance line (kind, parameters, widths, blocks, the
    training metadata of its weights), from any of its results."""
    config = first.get("model_config", {})
    meta = first.get("model_metadata", {})
    kind = "grey (BT.601 Y of the colour images)" if first["gray"] else "colour (RGB, 4:2:0 JPEG)"
    trained = ", ".join(_metadata_item(k, v) for k, v in sorted(meta.items()) if k != "name")
    params = first.get("model_parameters")
    return [f"## {label}", "",
            f"{kind}; " + (f"{params / 1e6:.2f} M parameters, " if params else "")
            + f"widths {'/'.join(map(str, config.get('widths', [])))}, "
            f"{config.get('blocks', '?')} residual block(s) a stage"
            + (f"; {trained}" if trained else "") + ".", ""]


def single_section(none: dict) -> list[str]:
    return [f"Single JPEG on BSDS500, {images_caption(none)}, correction none "
            f"({none['seconds']:.0f} s). PSNR\\|SSIM\\|PSNR-B; paper: all 200 BSDS500 "
            "images.", "", *single_table(none), ""]


def double_section(double: dict) -> list[str]:
    return [f"Double JPEG on BSDS500, {images_caption(double)} (the first ones), shift "
            f"{SHIFT[0]},{SHIFT[1]}, correction none ({double['seconds']:.0f} s). The "
            "paper's double-JPEG table is on LIVE1, other images: shown for scale "
            "only; compare PSNR and SSIM there.", "", *double_table(double), ""]


def dominant_section(dominant: dict, nones: list[dict]) -> list[str]:
    rows, missing = dominant_table(dominant, nones)
    lines = [f"Predicted QF vs the recompression analysis' dominant QF fed to the "
             f"network, on the same {images_caption(dominant)} (the first ones; restored "
             f"PSNR\\|SSIM\\|PSNR-B, correction-none means recomputed on these images from "
             f"the per-image results; dominant run {dominant['seconds']:.0f} s).", ""]
    if missing:
        lines += [f"({missing} row(s) without correction-none results on these images: "
                  "'-'.)", ""]
    return [*lines, *rows, ""]


def bsd68_section(bsd68: dict) -> list[str]:
    return [f"Single JPEG on BSD68 (grey files as they are), {images_caption(bsd68)}, "
            f"correction none ({bsd68['seconds']:.0f} s). PSNR\\|SSIM\\|PSNR-B.", "",
            *single_table(bsd68, paper=False), ""]


def sweep_section(result: dict) -> list[str]:
    sweep = result.get("qf_sweep") or sweep_summary(result)
    return [f"QF sweep on BSDS500, single JPEG, {images_caption(result)} (the first "
            f"ones), correction none ({result['seconds']:.0f} s): PSNR, the "
            "number of images the restoration made worse, and the error of the "
            "predicted QF (mean of |predicted - QF| per image).", "",
            *sweep_table(sweep), "", sweep_verdict(sweep), ""]


def model_section(label: str, results: dict[str, dict]) -> list[str]:
    """The markdown of one model, from its loaded JSON results (kind -> result; kinds:
    none, none-double, dominant, bsd68-none, qfsweep, each optional)."""
    none, double = results.get("none"), results.get("none-double")
    lines = model_header(label, next(iter(results.values())))
    if none:
        lines += single_section(none)
    if double:
        lines += double_section(double)
    if results.get("dominant"):
        lines += dominant_section(results["dominant"], [r for r in (none, double) if r])
    if results.get("bsd68-none"):
        lines += bsd68_section(results["bsd68-none"])
    if results.get("qfsweep"):
        lines += sweep_section(results["qfsweep"])
    return lines


# ------------------------------------------------------------------------------ document


@dataclass(frozen=True)
class Run:
    """What the document's header says about the run that wrote it."""

    command: str  # the command line, as run
    date: str
    platform: str
    torch: str
    threads: int
    data: str  # the paths as written in the document
    bsd68: str
    limit: int | None
    double_limit: int
    qf_sweep_limit: int
    limited: bool  # fewer images than the full run: a smoke test


def document_header(run: Run) -> list[str]:
    """The title, how and when the document was generated, the protocol and the metrics."""
    limited = ("\n**Limited image counts (see each table): a smoke test, not comparable with "
               "the paper.**\n" if run.limited else "")
    return [
        "# Results on BSDS500", "",
        f"Generated by `{run.command}` on {run.date} ({run.platform}, "
        f"torch {run.torch}, {run.threads} torch threads), from the JSON "
        "files in `results/` (each records the date, machine and threads of its own "
        "evaluation). Do not edit by hand.", limited,
        f"Data: `{run.data}` (the paper's 200 BSDS500 test images). Single "
        f"JPEG with the predicted QF on {run.limit or 'all'} images; double JPEG and the "
        f"dominant-QF correction on the first {run.double_limit}; the QF sweep on the first "
        f"{run.qf_sweep_limit} (the counts are in each table's caption). Degradation as in "
        "the paper: JPEG with the IJG tables at QF (colour 4:2:0), or double JPEG: QF1, "
        f"decode, crop `[{SHIFT[0]}:, {SHIFT[1]}:]`, QF2, decode (ground truth cropped "
        "alike). Grey models are measured on the rounded BT.601 Y of the colour images, and "
        f"also on BSD68 (`{run.bsd68}`, grey images).", "",
        "Metrics (`fbcnn.evaluation.metrics`): PSNR over all channels; SSIM with an 11x11 Gaussian "
        "window (sigma 1.5), valid region, colour = mean of the channel SSIMs; PSNR-B with "
        "the blocking effect factor of the image under test (its Y channel for colour). "
        "With these definitions our JPEG columns reproduce the paper's to the printed digits "
        "(the check in the JPEG columns below).", "",
        "`dominant QF`: the QF fed to the network is the recompression analysis' dominant "
        "QF (`fbcnn.jpeg.recompress`), not the network's prediction (FBCNN-D).", "",
        f"Paper numbers: {PAPER_SOURCE}.", "",
    ]


def commands_footer(commands: list[str]) -> list[str]:
    """The evaluate command line of each JSON file."""
    return ["## Commands", "", "Each JSON file in `results/` comes from one evaluation; "
            "the equivalent command lines:", "", "```", *commands, "```", ""]


def document(run: Run, sections: list[str], commands: list[str]) -> str:
    """docs/results.md: header, the models' sections, the commands."""
    return "\n".join(document_header(run) + sections + commands_footer(commands))
