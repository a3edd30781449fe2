#!/usr/bin/env python
"""Regenerate docs/results.md and docs/results/*.json: every shipped model on BSDS500.

For each model (colour models on the colour images, grey models with gray=True on their
BT.601 Y), one evaluation per JSON file in docs/results/:

    NAME-none.json         single JPEG, QF 10/20/30/40, predicted QF     --limit images
    NAME-none-double.json  double JPEG 10:30, 10:50, 30:50, 30:10, 10:10, shift (4, 4),
                           predicted QF                                  --double-limit
    NAME-dominant.json     single and double rows, the recompression analysis' dominant
                           QF fed (single-JPEG models only)              --double-limit
    NAME-bsd68-none.json   grey models: single JPEG on BSD68 (68 grey images)  --limit
    NAME-qfsweep.json      single JPEG at QF 5, 10, ..., 95, 100, predicted QF, with the
                           predicted-QF error and the worst image (key "qf_sweep")
                                                                         --qf-sweep-limit

Restorations use JPEG consistency (`fbcnn.consistency`), as `fbcnn restore` does by default.

A limit takes the first N images (sorted names), so the smaller runs are on a subset of
the larger runs' images; the dominant-vs-predicted tables compare the two on the same
images (the correction-none means recomputed from the per-image data). The tables are
set beside the paper's numbers, and the document is rebuilt from the JSON files.

    python scripts/make_results.py                       # all shipped models
    python scripts/make_results.py --models color --skip-existing-json   # resume / split
    python scripts/make_results.py --limit 2 --double-limit 2 --qf-sweep-limit 2 \\
        --out-dir /tmp/check                             # smoke test

`--skip-existing-json` reuses a JSON file whose recorded settings (model weights, data,
rows, correction, limit) equal this run's, so an interrupted run resumes where it stopped,
and a run split over `--models` is assembled by a last run with all models and
`--skip-existing-json` (which then only rewrites results.md). The full run is long on a
CPU: per single-JPEG model 200 x 4 + 50 x 5 + 50 x 9 + 30 x 10 restorations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn import checkpoints  # noqa: E402
from fbcnn.checkpoints import file_sha256  # noqa: E402
from fbcnn.evaluate import METRICS, evaluate, format_table  # noqa: E402

DATA = Path("../shared/datasets/val/color/bsds500_test")  # relative to the repository
BSD68 = Path("../shared/datasets/val/gray/bsd68")
QFS = (10, 20, 30, 40)
DOUBLE = ((10, 30), (10, 50), (30, 50), (30, 10), (10, 10))
SHIFT = (4, 4)
SWEEP_QFS = tuple(range(5, 101, 5))
SWEEP_MAE_MIN_QF, SWEEP_MAE_MAX_QF = 10, 90  # the predicted-QF target covers QF 10..90
MAE_TARGET = 3.0
WORST_IMAGE_LOSS_DB = 0.2  # "never worse": no image loses more than this
DOUBLE_LIMIT = 50
SWEEP_LIMIT = 30

# The paper's numbers (Jiang, Zhang, Timofte: "Towards Flexible Blind JPEG Artifacts
# Removal", ICCV 2021), as collected in ../shared/docs/fbcnn-reference.md, section 4
# (grey) and section 3 (the check of the JPEG column). The colour BSDS500 JPEG column
# (PSNR|SSIM only) is the paper's colour table as quoted in the task brief; the paper's
# colour FBCNN numbers on BSDS500 are not in the reference, so they are not shown.
PAPER_SOURCE = ("Jiang et al., ICCV 2021 (FBCNN), numbers as collected in "
                "shared/docs/fbcnn-reference.md sections 3-4")
PAPER_SINGLE = {
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
PAPER_DOUBLE_LIVE1 = {
    (10, 30): ((27.55, 0.760), (28.29, 28.94, 29.38)),
    (10, 50): ((27.69, 0.768), (28.20, 28.96, 29.52)),
    (30, 50): ((30.61, 0.865), (31.96, 32.31, 32.64)),
    (30, 10): ((27.49, 0.762), (29.46, 29.46, 29.44)),
    (10, 10): ((26.48, 0.715), (27.96, 27.95, 28.25)),
}


# --------------------------------------------------------------------------- the jobs


@dataclass
class Job:
    """One evaluation = one JSON file = one `fbcnn evaluate` command line."""

    model: str  # as given on the command line (a name or a weights path)
    label: str  # the name in file names and tables
    kind: str  # none | none-double | dominant | bsd68-none | qfsweep
    data: Path  # absolute
    gray: bool
    qfs: tuple[int, ...]
    double: tuple[tuple[int, int], ...]
    correction: str
    limit: int | None
    weights_sha256: str

    @property
    def filename(self) -> str:
        return f"{self.label}-{self.kind}.json"

    def settings(self) -> dict:
        """What a reusable JSON file must have recorded (JSON-normalised)."""
        return {
            "model": self.label,
            "weights_sha256": self.weights_sha256,
            "data": display_path(self.data),
            "gray": self.gray,
            "qfs": list(self.qfs),
            "double": [list(p) for p in self.double],
            "shift": list(SHIFT) if self.double else None,
            "correction": self.correction,
            "limit": self.limit,
            "consistency": True,
        }

    def command(self, json_path: Path) -> str:
        parts = ["fbcnn evaluate", f"--data {display_path(self.data)}", f"--model {self.model}"]
        if self.gray:
            parts.append("--gray")
        if self.qfs:
            parts.append(f"--qf {','.join(map(str, self.qfs))}")
        if self.double:
            parts += [f"--double {','.join(f'{a}:{b}' for a, b in self.double)}",
                      f"--shift {SHIFT[0]},{SHIFT[1]}"]
        parts.append(f"--correction {self.correction}")
        if self.limit:
            parts.append(f"--limit {self.limit}")
        parts.append(f"--json {display_path(json_path)}")
        return " ".join(parts)


def display_path(path: Path) -> str:
    """A path as written in the documents: relative to the repository when that is short."""
    path = Path(path).resolve()
    rel = os.path.relpath(path, ROOT)
    return rel if not rel.startswith("../../") else str(path)


def model_label(name: str) -> str:
    return Path(name).stem if Path(name).suffix else name


def plan_jobs(name: str, weights: Path, gray: bool, args: argparse.Namespace) -> list[Job]:
    label = model_label(name)
    sha = file_sha256(weights)

    def job(kind: str, data: Path, qfs=(), double=(), correction="none", limit=None) -> Job:
        return Job(name, label, kind, data, gray, tuple(qfs), tuple(double), correction,
                   limit, sha)

    jobs = [job("none", args.data, QFS, limit=args.limit),
            job("none-double", args.data, double=DOUBLE, limit=args.double_limit)]
    if not label.endswith("-double"):  # FBCNN-D is the single-JPEG models' correction
        jobs.append(job("dominant", args.data, QFS, DOUBLE, "dominant", args.double_limit))
    if gray:
        if args.bsd68.is_dir():
            jobs.append(job("bsd68-none", args.bsd68, QFS, limit=args.limit))
        else:
            print(f"warning: {args.bsd68} not found, no BSD68 table for {label}",
                  file=sys.stderr)
    jobs.append(job("qfsweep", args.data, SWEEP_QFS, limit=args.qf_sweep_limit))
    return jobs


def load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def reusable(path: Path, job: Job) -> bool:
    data = load_json(path)
    return bool(data and data.get("settings") == job.settings() and data.get("rows"))


def write_json(path: Path, data: dict) -> None:
    """Compact JSON (per-image lists included), written atomically: never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    tmp.replace(path)


def run_job(job: Job, loaded: checkpoints.LoadedNetwork, json_path: Path,
            device: str) -> dict:
    result = evaluate(job.data, loaded.network, gray=job.gray, qfs=job.qfs, double=job.double,
                      shift=SHIFT, correction=job.correction, limit=job.limit,
                      model_name=job.label, device=device)
    network = loaded.network
    result.update({
        "settings": job.settings(),
        "command": job.command(json_path),
        "model_metadata": {k: v for k, v in loaded.metadata.items()
                           if k != checkpoints.CONFIG_KEY},
        "model_config": network.config.to_dict(),
        "model_parameters": sum(p.numel() for p in network.parameters()),
        "generated": {"date": time.strftime("%Y-%m-%d %H:%M"), "platform": platform.platform(),
                      "torch": torch.__version__, "threads": torch.get_num_threads()},
    })
    if job.kind == "qfsweep":
        result["qf_sweep"] = sweep_summary(result)
    return result


# ------------------------------------------------------------------------------ numbers


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def sweep_summary(result: dict) -> dict:
    """Per QF of a single-JPEG sweep: JPEG/restored PSNR, gain, images made worse, mean
    predicted QF and its mean absolute error; overall MAE over QF 10..90, lowest gain."""
    per_qf = []
    for row in result["rows"]:
        if row.get("qf2") is not None:
            continue
        images = row["per_image"]
        per_qf.append({
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
            "predicted_qf_mae": float(_mean(abs(im["predicted_qf"] - row["qf"])
                                            for im in images)),
        })
    errors = [float(abs(im["predicted_qf"] - row["qf"])) for row in result["rows"]
              if row.get("qf2") is None
              and SWEEP_MAE_MIN_QF <= row["qf"] <= SWEEP_MAE_MAX_QF
              for im in row["per_image"]]
    worst = min(per_qf, key=lambda r: r["gain_db"]) if per_qf else None
    return {
        "per_qf": per_qf,
        "images": result.get("images"),
        "mae_qf10_90": _mean(errors),
        "mae_target": MAE_TARGET,
        "mae_met": bool(errors and _mean(errors) <= MAE_TARGET),
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
        "jpeg": {m: _mean(im["jpeg"][m] for im in images) for m in METRICS},
        "restored": {m: _mean(im["restored"][m] for im in images) for m in METRICS},
        "predicted_qf": _mean(im["predicted_qf"] for im in images),
        "images": len(images),
    }


# ------------------------------------------------------------------------------- tables


def fmt(values, digits=(2, 3, 2)) -> str:
    if values is None:
        return "-"
    # PSNR|SSIM|PSNR-B like the paper; the pipes are escaped inside markdown tables
    return "\\|".join("-" if v is None else f"{v:.{d}f}" for v, d in zip(values, digits,
                                                                         strict=False))


def triple(m: dict) -> tuple[float, float, float]:
    return (m["psnr"], m["ssim"], m["psnrb"])


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head),
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def _images(result: dict) -> str:
    n = result.get("images", 0)
    return f"{n} image{'s' if n != 1 else ''}"


def single_table(none: dict, paper: bool = True) -> list[str]:
    gray = none["gray"]
    model = none["model"]
    head = ["QF", "JPEG (ours)"] + (["JPEG (paper)"] if paper else []) + [f"{model} (ours)"]
    head += (["FBCNN (paper)"] if paper else []) + ["gain (dB)", "predicted QF"]
    rows = []
    for row in none["rows"]:
        if row["qf2"] is not None:
            continue
        paper_jpeg, paper_fbcnn = PAPER_SINGLE[gray].get(row["qf"], (None, None))
        cells = [str(row["qf"]), fmt(triple(row["jpeg"]))]
        cells += [fmt(paper_jpeg)] if paper else []
        cells.append(fmt(triple(row["restored"])))
        cells += [fmt(paper_fbcnn)] if paper else []
        cells += [f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}",
                  f"{row['predicted_qf']:.1f}"]
        rows.append(cells)
    return table(head, rows)


def double_table(none: dict) -> list[str]:
    head = ["QF1:QF2", "JPEG (ours)", f"{none['model']} (ours)", "gain (dB)", "predicted QF",
            "JPEG, LIVE1 (paper)", "FBCNN / -D / -A PSNR, LIVE1 (paper)"]
    rows = []
    for row in none["rows"]:
        if row["qf2"] is None:
            continue
        paper = PAPER_DOUBLE_LIVE1.get((row["qf"], row["qf2"])) if none["gray"] else None
        rows.append([f"{row['qf']}:{row['qf2']}", fmt(triple(row["jpeg"])),
                     fmt(triple(row["restored"])),
                     f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}",
                     f"{row['predicted_qf']:.1f}",
                     fmt(paper[0], (2, 3)) if paper else "-",
                     " / ".join(f"{v:.2f}" for v in paper[1]) if paper else "-"])
    return table(head, rows)


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
        label = f"{row['qf']}:{row['qf2']}" if row["qf2"] is not None else str(row["qf"])
        rows.append([label, fmt(triple(row["jpeg"])),
                     fmt(triple(none["restored"])) if none else "-",
                     fmt(triple(row["restored"])),
                     f"{row['restored']['psnr'] - none['restored']['psnr']:+.2f}" if none else "-",
                     f"{none['predicted_qf']:.1f}" if none else "-",
                     f"{row['used_qf']:.1f}"])
    return table(head, rows), missing


def sweep_table(sweep: dict) -> list[str]:
    head = ["QF", "JPEG PSNR", "restored PSNR", "gain (dB)", "images worse",
            "worst image (dB)", "mean predicted QF", "predicted-QF MAE"]
    rows = [[str(r["qf"]), f"{r['jpeg_psnr']:.2f}", f"{r['restored_psnr']:.2f}",
             f"{r['gain_db']:+.2f}", f"{r['images_worse']}/{r['images']}",
             f"{r['worst_image_gain_db']:+.2f}" if "worst_image_gain_db" in r else "-",
             f"{r['predicted_qf']:.1f}", f"{r['predicted_qf_mae']:.1f}"]
            for r in sweep["per_qf"]]
    return table(head, rows)


def sweep_verdict(sweep: dict) -> str:
    top = max((r["qf"] for r in sweep["per_qf"]), default=0)
    bottom = min((r["qf"] for r in sweep["per_qf"]), default=0)
    return (f"Predicted-QF MAE over QF 10..{SWEEP_MAE_MAX_QF}: {sweep['mae_qf10_90']:.1f} "
            f"(target <= {sweep['mae_target']:g}: "
            f"{'met' if sweep['mae_met'] else 'not met'}). "
            f"Lowest mean gain over QF {bottom}..{top}: "
            f"{sweep['min_gain_db']:+.2f} dB at QF {sweep['min_gain_qf']} (never worse than "
            f"the JPEG on average: {'yes' if sweep['never_worse'] else 'no'}). Worst single "
            f"image: {sweep.get('worst_image_gain_db', math.nan):+.2f} dB (target: no image "
            f"below -{WORST_IMAGE_LOSS_DB:g} dB: "
            f"{'met' if sweep.get('no_image_worse_than_limit') else 'not met'}).")


def model_section(label: str, results: dict[str, dict]) -> list[str]:
    """The markdown of one model, from its loaded JSON results (kind -> result)."""
    none = results.get("none")
    first = next(iter(results.values()))
    config = first.get("model_config", {})
    meta = first.get("model_metadata", {})
    gray = first["gray"]
    kind = "grey (BT.601 Y of the colour images)" if gray else "colour (RGB, 4:2:0 JPEG)"
    trained = ", ".join(f"{k} {v}" for k, v in sorted(meta.items()) if k != "name")
    params = first.get("model_parameters")
    lines = [f"## {label}", "",
             f"{kind}; " + (f"{params / 1e6:.2f} M parameters, " if params else "")
             + f"widths {'/'.join(map(str, config.get('widths', [])))}, "
             f"{config.get('blocks', '?')} residual block(s) a stage"
             + (f"; {trained}" if trained else "") + ".", ""]
    if none:
        lines += [f"Single JPEG on BSDS500, {_images(none)}, correction none "
                  f"({none['seconds']:.0f} s). PSNR\\|SSIM\\|PSNR-B; paper: all 200 BSDS500 "
                  "images.", "", *single_table(none), ""]
    double = results.get("none-double")
    if double:
        lines += [f"Double JPEG on BSDS500, {_images(double)} (the first ones), shift "
                  f"{SHIFT[0]},{SHIFT[1]}, correction none ({double['seconds']:.0f} s). The "
                  "paper's double-JPEG table is on LIVE1, other images: shown for scale "
                  "only; compare PSNR and SSIM there.", "", *double_table(double), ""]
    dominant = results.get("dominant")
    if dominant:
        nones = [r for r in (none, double) if r]
        rows, missing = dominant_table(dominant, nones)
        lines += [f"Predicted QF vs the recompression analysis' dominant QF fed to the "
                  f"network, on the same {_images(dominant)} (the first ones; restored "
                  f"PSNR\\|SSIM\\|PSNR-B, correction-none means recomputed on these images from "
                  f"the per-image results; dominant run {dominant['seconds']:.0f} s).", ""]
        if missing:
            lines += [f"({missing} row(s) without correction-none results on these images: "
                      "'-'.)", ""]
        lines += [*rows, ""]
    bsd68 = results.get("bsd68-none")
    if bsd68:
        lines += [f"Single JPEG on BSD68 (grey files as they are), {_images(bsd68)}, "
                  f"correction none ({bsd68['seconds']:.0f} s). PSNR\\|SSIM\\|PSNR-B.", "",
                  *single_table(bsd68, paper=False), ""]
    sweep_result = results.get("qfsweep")
    if sweep_result:
        sweep = sweep_result.get("qf_sweep") or sweep_summary(sweep_result)
        lines += [f"QF sweep on BSDS500, single JPEG, {_images(sweep_result)} (the first "
                  f"ones), correction none ({sweep_result['seconds']:.0f} s): PSNR, the "
                  "number of images the restoration made worse, and the error of the "
                  "predicted QF (mean of |predicted - QF| per image).", "",
                  *sweep_table(sweep), "", sweep_verdict(sweep), ""]
    return lines


# --------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA,
                        help="folder of clean colour images (default: %(default)s)")
    parser.add_argument("--bsd68", type=Path, default=BSD68,
                        help="folder of clean grey images for the grey models' extra table "
                             "(default: %(default)s)")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names or weight files "
                             "(default: every shipped model)")
    parser.add_argument("--limit", type=int, default=None,
                        help="single JPEG, correction none (and BSD68): first N images "
                             "(default: all)")
    parser.add_argument("--double-limit", type=int, default=DOUBLE_LIMIT,
                        help="double JPEG and the dominant correction: first N images "
                             "(default: %(default)s)")
    parser.add_argument("--qf-sweep-limit", type=int, default=SWEEP_LIMIT,
                        help="QF sweep 5..100: first N images (default: %(default)s)")
    parser.add_argument("--skip-existing-json", action="store_true",
                        help="reuse JSON files in OUT_DIR/results whose recorded settings "
                             "(weights, data, rows, correction, limit) match")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs",
                        help="where results.md and results/*.json go (default: docs/)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    for option in ("limit", "double_limit", "qf_sweep_limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    args.data = args.data if args.data.is_absolute() else ROOT / args.data
    args.bsd68 = args.bsd68 if args.bsd68.is_absolute() else ROOT / args.bsd68
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ([m.strip() for m in args.models.split(",") if m.strip()] if args.models
             else checkpoints.available_models())
    if not names:
        print(f"no shipped models in {checkpoints.WEIGHTS_DIR} (expected "
              f"{', '.join(n + '.safetensors' for n in checkpoints.NAMED_MODELS)}); "
              "train and export them first, or pass --models with weight files",
              file=sys.stderr)
        return 1
    if len({model_label(n) for n in names}) != len(names):
        print("error: two models with the same name", file=sys.stderr)
        return 1

    if (args.limit or 0) and args.limit < args.double_limit:
        print(f"warning: --limit {args.limit} < --double-limit {args.double_limit}: the "
              "single-JPEG rows of the dominant tables have no like-for-like "
              "correction-none numbers", file=sys.stderr)
    json_dir = args.out_dir / "results"
    json_dir.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, checkpoints.LoadedNetwork] = {}
    plan: list[Job] = []
    for name in names:
        try:
            weights = checkpoints.resolve_model(name)
            loaded[name] = checkpoints.load_network(weights)
        except checkpoints.CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        gray = loaded[name].network.config.in_channels == 1
        plan += plan_jobs(name, weights, gray, args)

    start = time.perf_counter()
    for i, job in enumerate(plan, 1):
        json_path = json_dir / job.filename
        what = (f"[{i}/{len(plan)}] {job.label} {job.kind}: {display_path(job.data)}, "
                f"{len(job.qfs) + len(job.double)} rows, limit {job.limit or 'none'}")
        if args.skip_existing_json and reusable(json_path, job):
            print(f"{what}: reusing {display_path(json_path)}", file=sys.stderr, flush=True)
            continue
        print(f"{what} ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr,
              flush=True)
        try:
            result = run_job(job, loaded[job.model], json_path, args.device)
        except ValueError as e:
            print(f"error: {job.label} {job.kind}: {e}", file=sys.stderr)
            return 1
        write_json(json_path, result)
        print(format_table(result), file=sys.stderr, flush=True)

    # the document, from the JSON files alone
    sections: list[str] = []
    commands: list[str] = []
    for name in names:
        label = model_label(name)
        results = {}
        for job in (j for j in plan if j.model == name):
            data = load_json(json_dir / job.filename)
            if data is None:
                print(f"error: {json_dir / job.filename} is missing or unreadable",
                      file=sys.stderr)
                return 1
            results[job.kind] = data
            commands.append(data.get("command", job.command(json_dir / job.filename)))
        sections += model_section(label, results)

    run_line = " ".join(["python scripts/make_results.py", *(argv if argv is not None
                                                             else sys.argv[1:])])
    limited = ("\n**Limited image counts (see each table): a smoke test, not comparable with "
               "the paper.**\n" if args.limit or args.double_limit < DOUBLE_LIMIT
               or args.qf_sweep_limit < SWEEP_LIMIT else "")
    header = [
        "# Results on BSDS500", "",
        f"Generated by `{run_line}` on {time.strftime('%Y-%m-%d')} ({platform.platform()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads), from the JSON "
        "files in `results/` (each records the date, machine and threads of its own "
        "evaluation). Do not edit by hand.", limited,
        f"Data: `{display_path(args.data)}` (the paper's 200 BSDS500 test images). Single "
        f"JPEG with the predicted QF on {args.limit or 'all'} images; double JPEG and the "
        f"dominant-QF correction on the first {args.double_limit}; the QF sweep on the first "
        f"{args.qf_sweep_limit} (the counts are in each table's caption). Degradation as in "
        "the paper: JPEG with the IJG tables at QF (colour 4:2:0), or double JPEG: QF1, "
        f"decode, crop `[{SHIFT[0]}:, {SHIFT[1]}:]`, QF2, decode (ground truth cropped "
        "alike). Grey models are measured on the rounded BT.601 Y of the colour images, and "
        f"also on BSD68 (`{display_path(args.bsd68)}`, grey images).", "",
        "Metrics (`fbcnn.metrics`): PSNR over all channels; SSIM with an 11x11 Gaussian "
        "window (sigma 1.5), valid region, colour = mean of the channel SSIMs; PSNR-B with "
        "the blocking effect factor of the image under test (its Y channel for colour). "
        "With these definitions our JPEG columns reproduce the paper's to the printed digits "
        "(the check in the JPEG columns below).", "",
        "`dominant QF`: the QF fed to the network is the recompression analysis' dominant "
        "QF (`fbcnn.recompress`), not the network's prediction (FBCNN-D).", "",
        f"Paper numbers: {PAPER_SOURCE}.", "",
    ]
    footer = ["## Commands", "", "Each JSON file in `results/` comes from one evaluation; "
              "the equivalent command lines:", "", "```", *commands, "```", ""]
    (args.out_dir / "results.md").write_text("\n".join(header + sections + footer))
    print(f"wrote {args.out_dir / 'results.md'} from {len(commands)} JSON files in {json_dir} "
          f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
