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

and per encoder other than libjpeg (`--encoders`; single-JPEG models only, the double
models are measured with libjpeg alone), every JPEG written by that encoder at its own
quality setting (`fbcnn evaluate --encoder`), ENC the encoder's spec in a file name
(`mozjpeg`, `jpegli`, `mozjpeg-table2`, `libjpeg-444`):

    NAME-ENC-none.json        single JPEG, quality 10/30/60/90              --limit
    NAME-ENC-bsd68-none.json  grey models: the same on BSD68                --limit
    NAME-ENC-qfsweep.json     single JPEG at quality 5, 10, ..., 100        --qf-sweep-limit

They make the document's "Per encoder" section: a table per encoder and model with the
IJG-equivalent QF of the files the encoder wrote (what `fbcnn inspect` reports, and what
JPEG consistency and the near-lossless share go by).

Restorations use JPEG consistency (`fbcnn.jpeg.consistency`), as `fbcnn restore` does by default.

This script runs the evaluations and writes the files; the tables and lines of the
document are built by `fbcnn.evaluation.report` from the JSON files alone.

A limit takes the first N images (sorted names), so the smaller runs are on a subset of
the larger runs' images; the dominant-vs-predicted tables compare the two on the same
images (the correction-none means recomputed from the per-image data). The tables are
set beside the paper's numbers, and the document is rebuilt from the JSON files.

    python scripts/make_results.py                       # all shipped models
    python scripts/make_results.py --models color --skip-existing-json   # resume / split
    python scripts/make_results.py --limit 2 --double-limit 2 --qf-sweep-limit 2 \\
        --out-dir /tmp/check                             # smoke test
    python scripts/make_results.py --encoders libjpeg    # the paper's JPEGs only

`--skip-existing-json` reuses a JSON file whose recorded settings (model weights, data,
rows, correction, limit, encoder) equal this run's, so an interrupted run resumes where it stopped,
and a run split over `--models` is assembled by a last run with all models and
`--skip-existing-json` (which then only rewrites results.md). The full run is long on a
CPU: per single-JPEG model 200 x 4 + 50 x 5 + 50 x 9 + 30 x 20 restorations, and per
other encoder 200 x 4 + 30 x 20 more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn.engine.model import load_model  # noqa: E402
from fbcnn.evaluation.evaluate import encoder_text, evaluate, format_table  # noqa: E402
from fbcnn.evaluation.report import (  # noqa: E402
    SHIFT,
    SWEEP_MAE_MAX_QF,
    SWEEP_MAE_MIN_QF,
    Run,
    document,
    fmt,
    gain,
    images_caption,
    mean,
    model_section,
    single_rows,
    sweep_summary,
    table,
    triple,
)
from fbcnn.jpeg.encoders import EncoderError, available, parse_encoder  # noqa: E402
from fbcnn.networks import checkpoints  # noqa: E402
from fbcnn.networks.checkpoints import file_sha256  # noqa: E402

DATA = Path("../shared/datasets/val/color/bsds500_test")  # relative to the repository
BSD68 = Path("../shared/datasets/val/gray/bsd68")
QFS = (10, 20, 30, 40)
DOUBLE = ((10, 30), (10, 50), (30, 50), (30, 10), (10, 10))
SWEEP_QFS = tuple(range(5, 101, 5))
DOUBLE_LIMIT = 50
SWEEP_LIMIT = 30
LIBJPEG = "libjpeg"  # the paper's JPEGs: IJG tables at QF, 4:2:0 colour
ENCODERS = (LIBJPEG, "mozjpeg", "jpegli")
ENCODER_QFS = (10, 30, 60, 90)  # the other encoders' quality settings
ENCODER_TITLES = {"mozjpeg": "MozJPEG", "jpegli": "jpegli"}


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
    encoder: str = LIBJPEG  # an `fbcnn evaluate --encoder` spec (encoder_text form)

    @property
    def filename(self) -> str:
        if self.encoder == LIBJPEG:
            return f"{self.label}-{self.kind}.json"
        return f"{self.label}-{encoder_slug(self.encoder)}-{self.kind}.json"

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
            "qf_read_at": "training patch size",  # fbcnn.engine.restorer, since 2026-11-28
            # libjpeg's files recorded none: they stay reusable
            **({"encoder": self.encoder} if self.encoder != LIBJPEG else {}),
        }

    def command(self, json_path: Path, precision: str = "auto") -> str:
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
        if self.encoder != LIBJPEG:
            parts.append(f"--encoder {self.encoder}")
        if precision != "auto":
            parts.append(f"--precision {precision}")
        parts.append(f"--json {display_path(json_path)}")
        return " ".join(parts)


def display_path(path: Path) -> str:
    """A path as written in the documents: relative to the repository when that is short."""
    path = Path(path).resolve()
    rel = os.path.relpath(path, ROOT)
    return rel if not rel.startswith("../../") else str(path)


def model_label(name: str) -> str:
    return Path(name).stem if Path(name).suffix else name


def encoder_slug(encoder: str) -> str:
    """An encoder spec in a file name: 'mozjpeg:4:4:4:table=0' -> 'mozjpeg-444-table0'."""
    for sub in ("4:4:4", "4:2:2", "4:2:0"):
        encoder = encoder.replace(sub, sub.replace(":", ""))
    return encoder.replace(":", "-").replace("=", "").replace(" ", "").replace(",", "-")


def parse_encoders(text: str) -> list[str]:
    """Comma-separated encoder specs -> their `encoder_text` forms, each once, in the order
    given (ValueError with one line for a bad one)."""
    parsed = [parse_encoder(t) for t in text.split(",") if t.strip()]
    if not parsed:
        raise ValueError("no encoder given")
    for spec in parsed:  # before an hour of evaluations, not after
        if not available(spec.name):
            raise ValueError(f"{spec.name} is not installed (make setup installs it)")
    specs = [encoder_text(spec) for spec in parsed]
    return list(dict.fromkeys(specs))


def plan_jobs(name: str, weights: Path, gray: bool, args: argparse.Namespace) -> list[Job]:
    label = model_label(name)
    sha = file_sha256(weights)

    encoders = getattr(args, "encoders", list(ENCODERS))

    def job(kind: str, data: Path, qfs=(), double=(), correction="none", limit=None,
            encoder=LIBJPEG) -> Job:
        return Job(name, label, kind, data, gray, tuple(qfs), tuple(double), correction,
                   limit, sha, encoder)

    jobs = []
    if LIBJPEG in encoders:
        jobs += [job("none", args.data, QFS, limit=args.limit),
                 job("none-double", args.data, double=DOUBLE, limit=args.double_limit)]
        if not label.endswith("-double"):  # FBCNN-D is the single-JPEG models' correction
            jobs.append(job("dominant", args.data, QFS, DOUBLE, "dominant", args.double_limit))
    if gray and not args.bsd68.is_dir():
        print(f"warning: {args.bsd68} not found, no BSD68 table for {label}", file=sys.stderr)
    if gray and args.bsd68.is_dir() and LIBJPEG in encoders:
        jobs.append(job("bsd68-none", args.bsd68, QFS, limit=args.limit))
    if LIBJPEG in encoders:
        jobs.append(job("qfsweep", args.data, SWEEP_QFS, limit=args.qf_sweep_limit))
    if label.endswith("-double"):  # the double-JPEG models: libjpeg only
        return jobs
    for encoder in (e for e in encoders if e != LIBJPEG):
        jobs.append(job("none", args.data, ENCODER_QFS, limit=args.limit, encoder=encoder))
        if gray and args.bsd68.is_dir():
            jobs.append(job("bsd68-none", args.bsd68, ENCODER_QFS, limit=args.limit,
                            encoder=encoder))
        jobs.append(job("qfsweep", args.data, SWEEP_QFS, limit=args.qf_sweep_limit,
                        encoder=encoder))
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
            device: str, threads: int | None = None, precision: str = "auto") -> dict:
    # by the weights file, as `fbcnn evaluate --model` and `fbcnn restore` load it: the
    # engine `fbcnn.networks.runtimes` picks and the QF read at the training patch size
    model = load_model(checkpoints.resolve_model(job.model), device=device,
                       precision=precision)
    if threads:
        model.set_threads(threads)
    result = evaluate(job.data, model.restorer, gray=job.gray, qfs=job.qfs, double=job.double,
                      shift=SHIFT, correction=job.correction, limit=job.limit,
                      model_name=job.label, device=device, encoder=job.encoder)
    network = loaded.network
    result.update({
        "settings": job.settings(),
        "command": job.command(json_path, precision),
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
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="as fbcnn evaluate (fp32 keeps a run comparable with JSON files "
                             "made on a CPU without bf16)")
    parser.add_argument("--reverse", action="store_true",
                        help="run the evaluations last first (with --skip-existing-json, a "
                             "second process on the same models meets the first halfway)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the network (torch or onnxruntime)")
    parser.add_argument("--encoders", default=",".join(ENCODERS),
                        help="comma-separated `fbcnn evaluate --encoder` specs whose "
                             "evaluations to run and show: libjpeg (the paper's JPEGs, every "
                             "table but the per-encoder ones), mozjpeg, jpegli, or variants "
                             "such as mozjpeg:table=2 (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        args.encoders = parse_encoders(args.encoders)
    except ValueError as e:
        parser.error(f"--encoders: {str(e).splitlines()[0]}")
    for option in ("limit", "double_limit", "qf_sweep_limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    args.data = args.data if args.data.is_absolute() else ROOT / args.data
    args.bsd68 = args.bsd68 if args.bsd68.is_absolute() else ROOT / args.bsd68
    return args


def plan_all(names: list[str], args: argparse.Namespace
             ) -> tuple[dict[str, checkpoints.LoadedNetwork], list[Job]]:
    """Each model loaded, and its evaluations (raises CheckpointError)."""
    loaded: dict[str, checkpoints.LoadedNetwork] = {}
    plan: list[Job] = []
    for name in names:
        weights = checkpoints.resolve_model(name)
        loaded[name] = checkpoints.load_network(weights)
        gray = loaded[name].network.config.in_channels == 1
        plan += plan_jobs(name, weights, gray, args)
    return loaded, plan


def clashing_files(plan: list[Job]) -> list[str]:
    """JSON file names that two evaluations of a plan would share."""
    seen: dict[str, Job] = {}
    clashes = []
    for job in plan:
        if job.filename in seen and seen[job.filename] != job:
            clashes.append(job.filename)
        seen[job.filename] = job
    return clashes


def run_jobs(plan: list[Job], loaded: dict[str, checkpoints.LoadedNetwork], json_dir: Path,
             args: argparse.Namespace, start: float) -> bool:
    """Run (or with --skip-existing-json reuse) every evaluation; False on an error."""
    for i, job in enumerate(plan, 1):
        json_path = json_dir / job.filename
        kind = job.kind if job.encoder == LIBJPEG else f"{job.kind}, {job.encoder}"
        what = (f"[{i}/{len(plan)}] {job.label} {kind}: {display_path(job.data)}, "
                f"{len(job.qfs) + len(job.double)} rows, limit {job.limit or 'none'}")
        if args.skip_existing_json and reusable(json_path, job):
            print(f"{what}: reusing {display_path(json_path)}", file=sys.stderr, flush=True)
            continue
        print(f"{what} ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr,
              flush=True)
        try:
            result = run_job(job, loaded[job.model], json_path, args.device, args.threads,
                             args.precision)
        except (ValueError, EncoderError) as e:
            print(f"error: {job.label} {job.kind}: {e}", file=sys.stderr)
            return False
        write_json(json_path, result)
        print(format_table(result), file=sys.stderr, flush=True)
    return True


def read_results(names: list[str], plan: list[Job], json_dir: Path
                 ) -> tuple[list[str], list[str]] | None:
    """The models' sections, the per-encoder section and the evaluate command lines (the
    libjpeg ones first, as before there were other encoders), from the JSON files alone
    (None, reported, when one is missing)."""
    sections: list[str] = []
    commands: list[str] = []
    others: dict[str, dict[str, dict[str, dict]]] = {}  # encoder -> model -> kind -> result
    other_commands: list[str] = []
    for name in names:
        results = {}
        for job in (j for j in plan if j.model == name):
            data = load_json(json_dir / job.filename)
            if data is None:
                print(f"error: {json_dir / job.filename} is missing or unreadable",
                      file=sys.stderr)
                return None
            command = data.get("command", job.command(json_dir / job.filename))
            if job.encoder == LIBJPEG:
                results[job.kind] = data
                commands.append(command)
            else:
                others.setdefault(job.encoder, {}).setdefault(job.label, {})[job.kind] = data
                other_commands.append(command)
        if results:
            sections += model_section(model_label(name), results)
    if others:
        sections += encoder_section(others)
    return sections, commands + other_commands


# ------------------------------------------------------------------ the per-encoder section


def file_qf(row: dict) -> str:
    """The mean IJG-equivalent QF of a row's JPEG files ('-' where not recorded)."""
    value = row.get("header_qf")
    return "-" if value is None else f"{value:.1f}"


def encoder_single_table(result: dict) -> list[str]:
    """Single-JPEG rows of another encoder: its quality setting, the files' QF, JPEG and
    restored PSNR|SSIM|PSNR-B, gain, predicted QF."""
    head = ["quality", "file QF", "JPEG", result["model"], "gain (dB)", "predicted QF"]
    rows = [[str(row["qf"]), file_qf(row), fmt(triple(row["jpeg"])),
             fmt(triple(row["restored"])), gain(row), f"{row['predicted_qf']:.1f}"]
            for row in single_rows(result)]
    return table(head, rows)


def encoder_sweep(result: dict) -> tuple[list[str], str]:
    """The QF sweep of another encoder as a table, and its verdict: the predicted QF is
    compared with each file's IJG-equivalent QF (the quality setting is another scale)."""
    summary = result.get("qf_sweep") or sweep_summary(result)
    head = ["quality", "file QF", "JPEG PSNR", "restored PSNR", "gain (dB)", "images worse",
            "worst image (dB)", "mean predicted QF", "predicted - file QF MAE"]
    rows = []
    errors = []
    for row, r in zip(single_rows(result), summary["per_qf"], strict=True):
        images = [im for im in row["per_image"] if im.get("header_qf") is not None]
        errs = [abs(im["predicted_qf"] - im["header_qf"]) for im in images]
        errors += [e for e, im in zip(errs, images, strict=True)
                   if SWEEP_MAE_MIN_QF <= im["header_qf"] <= SWEEP_MAE_MAX_QF]
        rows.append([str(r["qf"]), file_qf(row), f"{r['jpeg_psnr']:.2f}",
                     f"{r['restored_psnr']:.2f}", f"{r['gain_db']:+.2f}",
                     f"{r['images_worse']}/{r['images']}", f"{r['worst_image_gain_db']:+.2f}",
                     f"{r['predicted_qf']:.1f}", f"{mean(errs):.1f}" if errs else "-"])
    verdict = (f"Predicted-QF MAE against the files' QF, over files of QF "
               f"{SWEEP_MAE_MIN_QF}..{SWEEP_MAE_MAX_QF}: "
               + (f"{mean(errors):.1f}" if errors else "-")
               + f". Lowest mean gain: {summary['min_gain_db']:+.2f} dB at quality "
               f"{summary['min_gain_qf']} (never worse than the JPEG on average: "
               f"{'yes' if summary['never_worse'] else 'no'}); worst single image "
               f"{summary['worst_image_gain_db']:+.2f} dB.")
    return table(head, rows), verdict


def encoder_title(encoder: str) -> str:
    name = ENCODER_TITLES.get(encoder)
    return f"{name} (`{encoder}`)" if name else f"`{encoder}`"


def encoder_section(others: dict[str, dict[str, dict[str, dict]]]) -> list[str]:
    """'## Per encoder': for each encoder other than libjpeg, each model's single-JPEG
    table (grey models also on BSD68) and QF sweep."""
    lines = [
        "## Per encoder", "",
        "The single-JPEG rows again with every JPEG written by another encoder, at its own "
        "quality setting (`fbcnn evaluate --encoder`; the `quality` column is that "
        "setting, not an IJG QF): MozJPEG with its defaults (table 3, trellis "
        "quantisation, its own choice of chroma subsampling: 4:2:0 below quality 80, "
        "4:2:2 from 80, 4:4:4 from 90), jpegli "
        "with its defaults; decoded by Pillow (libjpeg-turbo). `file QF` is the mean "
        "IJG-equivalent QF of the tables the encoder wrote (the header QF `fbcnn inspect` "
        "reports). JPEG consistency, the block grid and the near-lossless share go by each "
        "file's own tables, subsampling and QF, as `fbcnn restore` does. Grey models are "
        "measured on the BT.601 Y, which jpegli writes as a colour file: its luma plane "
        "and table are used.", ""]
    for encoder, models in others.items():
        lines += [f"### {encoder_title(encoder)}", ""]
        for label, results in models.items():
            for kind, where in (("none", "BSDS500"), ("bsd68-none", "BSD68")):
                result = results.get(kind)
                if not result:
                    continue
                what = ("grey, BT.601 Y" if kind == "none" else "grey files") \
                    if result["gray"] else "colour"
                lines += [f"Single JPEG on {where} ({what}), model {label}, "
                          f"{images_caption(result)}, correction none "
                          f"({result['seconds']:.0f} s). PSNR\\|SSIM\\|PSNR-B.", "",
                          *encoder_single_table(result), ""]
        for label, results in models.items():
            if results.get("qfsweep"):
                sweep, verdict = encoder_sweep(results["qfsweep"])
                lines += [f"QF sweep on BSDS500, model {label}, "
                          f"{images_caption(results['qfsweep'])} (the first ones), quality "
                          f"5..100 ({results['qfsweep']['seconds']:.0f} s).", "", *sweep, "",
                          verdict, ""]
    return lines


def run_info(args: argparse.Namespace, argv: list[str] | None) -> Run:
    """This run, as the document's header tells it."""
    command = " ".join(["python scripts/make_results.py",
                        *(argv if argv is not None else sys.argv[1:])])
    return Run(command=command, date=time.strftime("%Y-%m-%d"), platform=platform.platform(),
               torch=torch.__version__, threads=torch.get_num_threads(),
               data=display_path(args.data), bsd68=display_path(args.bsd68), limit=args.limit,
               double_limit=args.double_limit, qf_sweep_limit=args.qf_sweep_limit,
               limited=bool(args.limit or args.double_limit < DOUBLE_LIMIT
                            or args.qf_sweep_limit < SWEEP_LIMIT))


def model_names(args: argparse.Namespace) -> list[str] | None:
    """The models to evaluate (None, reported, when there are none or two share a name)."""
    names = ([m.strip() for m in args.models.split(",") if m.strip()] if args.models
             else checkpoints.available_models())
    if not names:
        print(f"no shipped models in {checkpoints.WEIGHTS_DIR} (expected "
              f"{', '.join(n + '.safetensors' for n in checkpoints.NAMED_MODELS)}); "
              "train and export them first, or pass --models with weight files",
              file=sys.stderr)
        return None
    if len({model_label(n) for n in names}) != len(names):
        print("error: two models with the same name", file=sys.stderr)
        return None
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = model_names(args)
    if names is None:
        return 1
    if (args.limit or 0) and args.limit < args.double_limit:
        print(f"warning: --limit {args.limit} < --double-limit {args.double_limit}: the "
              "single-JPEG rows of the dominant tables have no like-for-like "
              "correction-none numbers", file=sys.stderr)
    json_dir = args.out_dir / "results"
    json_dir.mkdir(parents=True, exist_ok=True)
    try:
        loaded, plan = plan_all(names, args)
    except checkpoints.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    clashes = clashing_files(plan)
    if clashes:
        print(f"error: two evaluations would write {clashes[0]} (rename a model)",
              file=sys.stderr)
        return 1
    start = time.perf_counter()
    if not run_jobs(plan[::-1] if args.reverse else plan, loaded, json_dir, args, start):
        return 1
    read = read_results(names, plan, json_dir)
    if read is None:
        return 1
    sections, commands = read
    (args.out_dir / "results.md").write_text(document(run_info(args, argv), sections,
                                                      commands))
    print(f"wrote {args.out_dir / 'results.md'} from {len(commands)} JSON files in {json_dir} "
          f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
