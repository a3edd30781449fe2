"""The `fbcnn` command line: parse, call the library, print."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from ..version import __version__
from . import APP_MAX_MEGAPIXELS, APP_MAX_UPLOAD_MB

if TYPE_CHECKING:
    from ..engine.pipeline import ModelSet, RestoreOptions

DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])
STDIO = "-"  # restore's input read from standard input, its output written to standard output


def parse_qf(value: str) -> float | None:
    from ..jpeg.qf import check_qf

    if value == "auto":
        return None
    try:
        return check_qf(float(value))
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a number in 1..100, got '{value}'") from None


def parse_int_list(value: str | None) -> list[int] | None:
    """Comma-separated QFs in 1..100, each once (in the order given)."""
    if not value:
        return None
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None
    if not items or not all(1 <= q <= 100 for q in items):
        raise click.BadParameter(f"each QF must be in 1..100, got '{value}'")
    return list(dict.fromkeys(items))


def write_json(path: str, value: object) -> None:
    from ..images.files import ImageError, write_text_atomic

    try:
        write_text_atomic(Path(path), json.dumps(value, indent=1))
    except ImageError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path}", err=True)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fbcnn")
def main() -> None:
    """Blind JPEG artifact removal with FBCNN (predicted, adjustable quality factor)."""


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Training config (YAML), e.g. configs/color.yaml.")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/last.pt if it exists.")
@click.option("--minutes", type=click.FloatRange(min=0), default=None,
              help="Stop (with a checkpoint) after this many minutes.")
@click.option("--iterations", type=click.IntRange(min=0), default=None,
              help="Stop after this many more iterations (0 with init_from: only validate "
                   "the weights it starts from).")
@click.option("--output", default=None, help="Override the config's output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set data.workers=8 (repeatable).")
def train(config_path: str, resume: bool, minutes: float | None, iterations: int | None,
          output: str | None, overrides: tuple[str, ...]) -> None:
    """Train a model (torchrun for several processes or GPUs)."""
    from ..train import Trainer, load_config
    from ..train.config import apply_overrides
    from ..train.loop import shutdown_distributed

    try:
        config = apply_overrides(load_config(config_path), overrides)
    except (OSError, ValueError, TypeError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    if output:
        config.output = output
    try:
        trainer = Trainer(config, resume=resume, minutes=minutes, iterations=iterations)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    done = trainer.train()
    shutdown_distributed()  # after a normal end only: a failed rank must not wait on the others
    if trainer.dist.is_main:
        out = Path(config.output)
        best = out / "best.safetensors"
        click.echo(f"stopped at iteration {done}; checkpoint {out / 'last.pt'}, weights "
                   f"{out / 'model.safetensors'}"
                   + (f" (best validation: {best})" if best.exists() else ""))


def check_tile(ctx: click.Context, param: click.Parameter, value: int) -> int:
    from ..engine.restorer import MIN_TILE

    if 0 < value < MIN_TILE:
        raise click.BadParameter(f"must be 0 (one pass) or at least {MIN_TILE}, got {value}")
    return value


TILE_OPTION = click.option(
    "--tile", type=click.IntRange(min=0), default=640, show_default=True, callback=check_tile,
    help="Largest tile side for big images (0: whole image at once; else >= 64).")
PRECISION_OPTION = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "int8", "fp16"]),
    default="auto", show_default=True, help="auto: bf16 where the hardware computes it "
    "natively (CUDA, AMX / AVX512-BF16 CPUs), else fp32. int8: a shipped model's quantised "
    "graph in OpenVINO (faster on the CPU, a little less quality; docs/benchmarks.md). "
    "fp16: torch on CUDA cards without bf16.")
BACKEND_OPTION = click.option(
    "--backend", type=click.Choice(["auto", "openvino", "onnx", "torch"]), default="auto",
    show_default=True, help="What runs the network. auto: OpenVINO on the CPU (no torch "
    "needed), torch on a GPU; onnx: onnxruntime (fp32).")


def _physical_cores() -> int:
    """Cores to share between parallel jobs (what torch and onnxruntime use by default)."""
    if "torch" in sys.modules:
        import torch

        return torch.get_num_threads()
    return os.cpu_count() or 1


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--outdir", type=click.Path(), default=None,
              help="Output folder (default: a restored/ folder beside each input, or the "
                   "input's own folder with --suffix); or, for one input image, the output "
                   "file (a .png, .jpg, .jpeg or .webp name that is not a folder), or - for "
                   "standard output (--ext sets the format). An INPUT of - is read from "
                   "standard input.")
@click.option("--suffix", default=None, metavar="TEXT",
              help="Name outputs <stem><TEXT>.<ext>, beside the inputs unless -o is given, "
                   "e.g. --suffix _restored.")
@click.option("--ext", type=click.Choice(["png", "jpg", "webp"]), default="png",
              show_default=True, help="Output format (jpg: alpha flattened onto white; "
                                      "default: an output file's, else png).")
@click.option("--quality", type=click.IntRange(1, 100), default=None,
              help="Quality of jpg and webp outputs, 1..100  [default: 95]")
@click.option("--model", default=None,
              help="Model name (color, gray, color-double, gray-double) or checkpoint path. "
                   "Default: color or gray, by image.")
@click.option("--qf", "qf_text", default="auto", show_default=True,
              help="QF fed to the network: 'auto' (predicted) or 1..100; lower removes more. "
                   "With --consistency on, a JPEG's result stays inside its file's "
                   "quantisation cells, so a QF below the file's own (e.g. --qf 10 on a "
                   "re-saved high-quality JPEG) smooths only within what the file allows: "
                   "use --consistency off to let a low --qf remove more.")
@click.option("--qf-sweep", default=None, help="Write one output per QF, e.g. 10,30,50,70,90.")
@TILE_OPTION
@click.option("--device", type=DEVICES, default="auto", show_default=True)
@PRECISION_OPTION
@click.option("--double", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
              help="Detect a misaligned earlier compression and restore with the dominant QF.")
@click.option("--recursive", is_flag=True, help="Look into sub-folders of folder inputs.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs exist (resume).")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (else an error).")
@click.option("--compare", is_flag=True,
              help="Also write <stem>_compare.<ext> (input | result).")
@click.option("--consistency", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="Keep a JPEG's result inside the quantisation cells of its file "
                   "(leaves near-lossless JPEGs almost untouched). This also bounds a QF "
                   "below the file's own: it smooths only within the cells (a re-saved "
                   "high-quality JPEG changes little even at --qf 10); off lets a low --qf "
                   "remove more.")
@click.option("--not-jpeg", type=click.Choice(["copy", "skip", "restore"]), default="copy",
              show_default=True,
              help="For an input that is not a JPEG file and whose pixels bear no JPEG "
                   "compression (screenshots, graphics, lossless photos): write its pixels "
                   "unchanged, write nothing, or restore it anyway.")
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Refuse bigger images (with a message)  [default: 200]")
@BACKEND_OPTION
@click.option("--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Images restored at a time (0: one per CPU core; each job holds an image "
                   "in memory: use 1 for the biggest images).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: Ray actors (pip install 'fbcnn[ray]'), "
                   "see docs/distributed.md.")
@click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
              help="Ray cluster to use [default: start a local Ray instance, stop it at the end].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray actors, each loading the model once [default: CPUs / threads].")
@click.option("--threads-per-worker", type=click.IntRange(min=1), default=None,
              help="Network threads (and Ray CPUs) per actor [default: 1].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="GPUs per actor, e.g. 1 [default: 0].")
def restore(inputs: tuple[str, ...], outdir: str | None, suffix: str | None, ext: str,
            quality: int | None, model: str | None, qf_text: str,
            qf_sweep: str | None, tile: int, device: str, precision: str, double: str,
            recursive: bool, skip_existing: bool, overwrite: bool, compare: bool,
            consistency: str, not_jpeg: str, max_megapixels: float | None, backend: str,
            jobs: int, engine: str,
            address: str | None, workers: int | None, threads_per_worker: int | None,
            gpus_per_worker: float | None) -> None:
    """Remove JPEG artifacts from INPUT files or folders; writes PNGs (or --ext)."""
    from ..engine.pipeline import RestoreOptions, check_suffix, output_ext

    source = click.get_current_context().get_parameter_source("ext")
    # -o photo.jpg: a JPEG unless --ext says otherwise
    ext = output_ext(outdir, None if source is click.core.ParameterSource.DEFAULT else ext)
    qf = parse_qf(qf_text)
    sweep = parse_int_list(qf_sweep)
    if sweep and qf is not None:
        raise click.UsageError("--qf and --qf-sweep cannot be used together")
    if skip_existing and overwrite:
        raise click.UsageError("--skip-existing and --overwrite cannot be used together")
    if quality is not None and ext == "png":
        raise click.UsageError("--quality is for --ext jpg or webp (PNG is lossless)")
    try:
        check_suffix(suffix)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--suffix") from None
    options = RestoreOptions(qf=qf, sweep=sweep, double=double == "auto",
                             consistency=consistency == "on", compare=compare,
                             skip_existing=skip_existing, overwrite=overwrite,
                             max_megapixels=max_megapixels, not_jpeg=not_jpeg,
                             suffix=suffix, ext=ext, quality=quality)
    ray_flags = (address, workers, threads_per_worker, gpus_per_worker)
    if engine == "local" and any(v is not None for v in ray_flags):
        raise click.UsageError("--address, --workers, --threads-per-worker and "
                               "--gpus-per-worker need --engine ray")
    from .distributed import is_uri

    if STDIO in inputs or outdir == STDIO:
        _check_stdio(inputs, outdir, options, engine)
        sys.exit(_restore_stdio(inputs[0], outdir, options, lambda first: _model_set(
            model, device, tile, precision, backend, (first,), False)))
    if engine == "ray" or any(is_uri(u) for u in (*inputs, outdir or "", model or "")):
        if engine == "ray" and jobs:
            raise click.UsageError("--jobs is for --engine local (Ray: --workers)")
        sys.exit(_restore_distributed(
            inputs, outdir, recursive, options, engine=engine, model=model, tile=tile,
            device=device, precision=precision, address=address, workers=workers,
            threads_per_worker=threads_per_worker, gpus_per_worker=gpus_per_worker or 0.0))
    models = _model_set(model, device, tile, precision, backend, inputs, recursive)
    failed = _restore_batch(inputs, outdir, recursive, models, options,
                            jobs=(os.cpu_count() or 1) if jobs == 0 else jobs)
    if failed:
        sys.exit(1)


def _check_stdio(inputs: tuple[str, ...], outdir: str | None, options: RestoreOptions,
                 engine: str) -> None:
    """Usage errors of a run through standard input or output (one image, one output)."""
    if len(inputs) != 1:
        raise click.UsageError("'-' (standard input or output) takes one input image")
    if engine != "local":
        raise click.UsageError("'-' (standard input or output) is for --engine local")
    if outdir is None:
        raise click.UsageError("an image from standard input needs -o (a file, a folder, or "
                               "- for standard output)")
    if outdir == STDIO and (options.sweep or options.compare or options.suffix is not None):
        raise click.UsageError("-o - writes one image: no --qf-sweep, --compare or --suffix")
    if outdir == STDIO and sys.stdout.isatty():
        raise click.UsageError("-o - writes the image to standard output, which is a "
                               "terminal here: redirect it (> out.png) or pipe it")
    if inputs[0] == STDIO:
        _check_stdin()


def _check_stdin() -> None:
    """A usage error when '-' would wait for an image typed at a terminal."""
    if sys.stdin.isatty():
        raise click.UsageError("'-' reads the image from standard input, which is a terminal "
                               "here: redirect it (< photo.jpg) or pipe it")


def _stdin_file(folder: Path) -> Path:
    """The image on standard input, written to `folder`/stdin (what the library reads)."""
    path = folder / "stdin"
    path.write_bytes(sys.stdin.buffer.read())
    return path


def _restore_stdio(source: str, outdir: str, options: RestoreOptions,
                   models_for: Callable[[str], ModelSet]) -> int:
    """`fbcnn restore - -o out.png`, `fbcnn restore photo.jpg -o - > out.png`: the image read
    from standard input and the output written to standard output go through files in a
    temporary folder (the report line names them "-"); with -o -, report lines go to
    standard error and nothing reaches standard output unless the image was written.
    Returns the exit code."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fbcnn-") as tmp:
        work = Path(tmp)
        path = _stdin_file(work) if source == STDIO else Path(source)
        target = work / f"stdout.{options.ext}" if outdir == STDIO else Path(outdir)
        shown = {str(p): STDIO for p, stdio in ((path, source == STDIO),
                                                 (target, outdir == STDIO)) if stdio}
        failed = _restore_batch((str(path),), str(target), False, models_for(str(path)),
                                options, shown=shown,
                                report_to=sys.stderr if outdir == STDIO else sys.stdout)
        if outdir == STDIO and not failed and target.exists():
            sys.stdout.buffer.write(target.read_bytes())
            sys.stdout.buffer.flush()
    return 1 if failed else 0


def _restore_distributed(inputs: tuple[str, ...], outdir: str | None, recursive: bool,
                         options: RestoreOptions, **engine: Any) -> int:
    """--engine ray, or URIs (s3://...): fbcnn.frontends.distributed (docs/distributed.md); returns
    the exit code."""
    from .distributed import EngineError, restore_command

    try:
        return restore_command(inputs, outdir, recursive=recursive, options=options, **engine)
    except EngineError as e:
        raise click.ClickException(str(e)) from None


def _model_set(model: str | None, device: str, tile: int, precision: str,
               backend: str = "auto", inputs: Sequence[str] = (),
               recursive: bool = False) -> ModelSet:
    from ..engine.pipeline import ModelSet
    from ..networks.modelfiles import CheckpointError

    try:
        models = ModelSet(model, device=device, tile=tile, precision=precision,
                          backend=backend)
        if model:  # a bad --model fails once, up front (loaded for the first image's size)
            from ..images.files import header_megapixels, list_inputs

            first = next(iter(list_inputs(inputs, recursive)), None)
            models.get(model, None if first is None else header_megapixels(first))
    except (CheckpointError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    return models


def _tile_bar(path: Path) -> Callable[[int, int], None]:
    """A per-image progress bar for images restored in many tiles (a 100-MP photo takes
    minutes); nothing for small ones."""
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if total < 8:
            return
        if not bar:
            bar.append(tqdm(total=total, unit="tile", desc=path.name, leave=False,
                            file=sys.stderr))
        bar[0].update(done - bar[0].n)
        if done == total:
            bar[0].close()

    return update


def _restore_batch(inputs: tuple[str, ...], outdir: str | None, recursive: bool,
                   models: ModelSet, options: RestoreOptions, jobs: int = 1, *,
                   shown: dict[str, str] | None = None, report_to: TextIO | None = None
                   ) -> int:
    """Restore every input, a line each (to `report_to`, default standard output; errors to
    standard error; each path in `shown` named as its value), `jobs` images at a time
    (threads sharing the models; the network's threads are split between them); returns the
    number that failed."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ..engine.pipeline import (
        batch_summary,
        check_output_folders,
        plan_run,
        report_line,
        restore_file,
    )
    from ..images.files import ImageError, list_inputs
    from ..networks.modelfiles import CheckpointError

    paths = list_inputs(inputs, recursive=recursive)
    if not paths:
        raise click.ClickException("no images found in " + ", ".join(inputs))
    try:  # names, then folders, checked before any image is restored
        paths, plan, left_out = plan_run(paths, inputs, Path(outdir) if outdir else None,
                                         options)
        check_output_folders(plan.values(), options)
    except ImageError as e:  # the run cannot start: one line, as a file's error
        fail(str(e))
        sys.exit(1)
    if left_out:
        click.echo(f"note: {len(left_out)} file(s) in the input folders are named as outputs "
                   f"of this run and are not restored (e.g. {left_out[0]})", err=True)
    if not paths:
        raise click.ClickException("no images to restore in " + ", ".join(inputs))
    jobs = max(1, min(jobs, len(paths)))
    if jobs > 1:
        models.set_threads(max(1, _physical_cores() // jobs))
    models.prefetch(paths[0])  # loads while the first image is read and analysed
    counts = {"done": 0, "skipped": 0, "failed": 0, "copied": 0}
    lock = threading.Lock()
    started = time.perf_counter()
    bar = tqdm(total=len(paths), unit="image", disable=len(paths) < 2, file=sys.stderr)

    def one(path: Path) -> None:
        try:
            report = restore_file(path, models, plan[path], options, protect=tuple(paths),
                                  progress=_tile_bar(path) if jobs == 1 else None)
        except (ImageError, CheckpointError, ValueError) as e:
            kind, line = "failed", f"error: {e}"
        else:
            kind = ("skipped" if report.skipped else
                    "copied" if report.not_jpeg == "copied" else "done")
            line = report_line(report, options.sweep)
        for path_text, name in (shown or {}).items():
            line = line.replace(path_text, name)
        with lock:
            counts[kind] += 1
            bar.write(line, file=sys.stderr if kind == "failed" else report_to or sys.stdout)
            bar.update(1)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))
    bar.close()
    seconds = time.perf_counter() - started
    summary = batch_summary(len(paths), counts["done"], counts["skipped"], counts["failed"],
                            seconds, jobs, counts["copied"])
    click.echo(summary, err=True)
    return counts["failed"]


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per image (a list if several, or if a folder is given).")
@click.option("--model", default=None, help="Model for the QF prediction (default: by image).")
@click.option("--device", type=DEVICES, default="auto", show_default=True)
@click.option("--recursive", is_flag=True, help="Look into sub-folders of folder inputs.")
def inspect(images: tuple[str, ...], as_json: bool, model: str | None, device: str,
            recursive: bool) -> None:
    """Report the QF in the file, the predicted QF, size, mode, subsampling, double JPEG.
    IMAGES are files or folders (their images, as `fbcnn restore` lists them), or - for an
    image on standard input."""
    from ..engine.pipeline import ModelSet, inspect_file
    from ..images.files import ImageError
    from ..networks.modelfiles import CheckpointError

    models = ModelSet(model, device=device)
    paths = _inspected_paths(images, recursive)
    one = len(images) == 1 and len(paths) == 1 and not Path(images[0]).is_dir()
    infos, failed = [], 0
    for path in paths:
        try:
            infos.append(_inspect_stdin(models) if images == (STDIO,)
                         else inspect_file(path, models))
        except (ImageError, CheckpointError, ValueError) as e:
            failed += 1
            fail(str(e))
    if as_json:
        if infos:
            click.echo(json.dumps(infos[0] if one else infos, indent=2))
    else:
        for info in infos:
            click.echo(_inspect_line(info))
    if failed:
        sys.exit(1)


def _inspected_paths(images: tuple[str, ...], recursive: bool) -> list[Path]:
    """The files `fbcnn inspect` reports on (folders listed as restore lists them); usage
    errors for standard input given with other images or from a terminal."""
    from ..images.files import list_inputs

    if STDIO in images:
        if len(images) != 1:
            raise click.UsageError("'-' (standard input) takes one image")
        _check_stdin()
        return [Path(STDIO)]
    paths = list_inputs(images, recursive=recursive)
    if not paths:
        raise click.ClickException("no images found in " + ", ".join(images))
    return paths


def _inspect_stdin(models: ModelSet) -> dict[str, Any]:
    """`fbcnn inspect -`: the image on standard input, through a temporary file, named "-"."""
    import tempfile

    from ..engine.pipeline import inspect_file
    from ..images.files import ImageError

    with tempfile.TemporaryDirectory(prefix="fbcnn-") as tmp:
        path = _stdin_file(Path(tmp))
        try:
            return {**inspect_file(path, models), "path": STDIO}
        except ImageError as e:
            raise ImageError(str(e).replace(str(path), STDIO)) from None


def _inspect_line(info: dict[str, Any]) -> str:
    """`fbcnn inspect`'s line for one image's report."""
    d = info.get("double") or {}
    verdict = "no" if not d.get("detected") else (
        f"{d['kind']}, QF1 {d['qf1']}, offset {d['offset']}, "
        f"confidence {d['confidence']:.2f}")
    tables = info.get("tables")
    trace = info.get("jpeg_trace")
    found = ""
    if tables and not tables["ijg"]:
        jpegli = (f"jpegli quality {tables['jpegli_quality']}, "
                  if tables.get("jpegli_quality") else "")
        found = f", tables: not IJG, {jpegli}equivalent QF {tables['equivalent_qf']}"
    elif trace is not None:
        found = (f", JPEG compression in the pixels: grid offset {trace['offset']}"
                 if trace["found"] else ", JPEG compression in the pixels: none"
                 if trace["judged"] else ", JPEG compression in the pixels: too small "
                 "to judge")
    if info.get("converted"):
        found += f", {info['converted']}"
    fed = ("" if info["fed_qf"] == info["predicted_qf"]
           else f" (restored with QF {info['fed_qf']:.0f})")
    return (f"{info['path']}: {info['width']}x{info['height']} {info['mode']} "
            f"{info['format']}, subsampling {info['subsampling'] or '-'}, "
            f"header QF {info['header_qf'] if info['header_qf'] is not None else '-'}"
            f"{found}, predicted QF {info['predicted_qf']:.1f}{fed}, "
            f"double JPEG: {verdict}")


def parse_pairs(value: str | None) -> list[tuple[int, int]] | None:
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        try:
            a, b = (int(v) for v in item.split(":"))
        except ValueError:
            raise click.BadParameter(
                f"expected QF1:QF2 pairs like 10:30,30:50, got '{value}'") from None
        if not (1 <= a <= 100 and 1 <= b <= 100):
            raise click.BadParameter(f"QFs must be in 1..100, got '{item}'")
        pairs.append((a, b))
    return pairs


def parse_shift(value: str) -> tuple[int, int]:
    try:
        dy, dx = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected DY,DX like 4,4, got '{value}'") from None
    if not (0 <= dy < 8 and 0 <= dx < 8):
        raise click.BadParameter(f"shift must be in 0..7 per axis, got '{value}'")
    return dy, dx


def check_encoder(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """An `fbcnn.jpeg.encoders.EncoderSpec` from --encoder (BadParameter with one line)."""
    from ..jpeg.encoders import parse_encoder

    try:
        return parse_encoder(value)
    except ValueError as e:
        raise click.BadParameter(str(e).splitlines()[0]) from None


@main.command()
@click.option("--data", required=True, help="Folder of clean images.")
@click.option("--gray", is_flag=True, help="Evaluate the BT.601 Y channel (grey), as the paper.")
@click.option("--qf", "qf_text", default=None, help="Single-JPEG QFs [default: 10,20,30,40 "
              "unless --double is given].")
@click.option("--double", "double_text", default=None,
              help="Double-JPEG QF1:QF2 pairs, e.g. 10:30,10:50,30:50.")
@click.option("--shift", "shift_text", default="4,4", show_default=True,
              help="Crop between the two compressions (dy,dx).")
@click.option("--model", default=None, help="Model name or path [default: color, or gray "
              "with --gray].")
@click.option("--correction", type=click.Choice(["none", "dominant", "tables"]), default="none",
              show_default=True, help="dominant: FBCNN-D, feed the dominant QF found by "
              "recompression analysis; tables: feed the QF of the file's quantisation tables "
              "(their IJG-equivalent); none: the network's prediction.")
@click.option("--qf-input", "qf_input_text", default="auto", show_default=True,
              help="QF fed to the network: auto (predicted) or N.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N images only.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the full result (with per-image rows) as JSON.")
@click.option("--device", type=DEVICES, default="auto", show_default=True)
@PRECISION_OPTION
@click.option("--consistency", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="JPEG consistency, as fbcnn restore (off: the network's output alone).")
@BACKEND_OPTION
@click.option("--encoder", default="libjpeg", show_default=True, callback=check_encoder,
              help="What writes the JPEGs: libjpeg (IJG tables, 4:2:0), mozjpeg, jpegli, "
                   "with options such as libjpeg:4:4:4 or mozjpeg:table=2; the QFs are its "
                   "quality settings.")
def evaluate(data: str, gray: bool, qf_text: str | None, double_text: str | None,
             shift_text: str, model: str | None, correction: str, qf_input_text: str,
             limit: int | None, json_path: str | None, device: str, precision: str,
             consistency: str, backend: str, encoder: Any) -> None:
    """Degrade clean images with JPEG, restore them, and print PSNR | SSIM | PSNR-B."""
    from ..evaluation.evaluate import evaluate as run_evaluation
    from ..evaluation.evaluate import format_table
    from ..jpeg.encoders import EncoderError

    double = parse_pairs(double_text)
    qfs = parse_int_list(qf_text) or ([] if double else [10, 20, 30, 40])
    qf_input = parse_qf(qf_input_text)
    try:
        result = run_evaluation(data, model or ("gray" if gray else "color"),
                                gray=True if gray else None,
                                qfs=qfs, double=double, shift=parse_shift(shift_text),
                                correction=correction,
                                qf_input=None if qf_input is None else int(qf_input),
                                limit=limit, device=device, precision=precision,
                                consistency=consistency == "on", backend=backend,
                                encoder=encoder)
    except (ValueError, EncoderError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    click.echo(format_table(result))
    if json_path:
        write_json(json_path, result)


@main.command()
@click.option("--model", "model_names", multiple=True,
              help="Model name or path (repeatable) [default: every shipped model].")
@click.option("--sizes", default="256,512,1024", show_default=True,
              help="Square image sides to measure.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="Also measure the published-size architecture (random weights).")
@click.option("--device", type=DEVICES, default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads [default: torch's default].")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
              help="Tile side of the tiled runs (0: untiled only).")
@click.option("--precision", "precisions", default="fp32,bf16", show_default=True,
              help="Precisions to measure the models in (comma-separated: fp32, bf16, auto); "
                   "the published-size architecture runs in fp32, as released.")
@click.option("--backends", default="openvino,torch,onnx", show_default=True,
              help="What runs the network rows: openvino (what `fbcnn restore` runs on the "
                   "CPU: auto precision, and int8 for shipped models), torch (in each "
                   "--precision) and / or onnx (onnxruntime, fp32).")
@click.option("--end-to-end/--no-end-to-end", default=True, show_default=True,
              help="Also time `fbcnn restore` whole-process on a 2048x1536 JPEG (default "
                   "settings), with its start-up and peak memory, and in each runtime "
                   "(default, int8, onnxruntime, torch) beside the --yardstick.")
@click.option("--yardstick", type=click.Path(dir_okay=False), default=None,
              help="A classical decoder run as `PROGRAM in.jpg out.png` in the same rounds as "
                   "the whole-process rows, which then give their time as a multiple of its "
                   "[default: knusperli on the PATH; none: rows without the ratio].")
@click.option("--folder", "folder_photos", type=click.IntRange(min=0), default=0,
              show_default=True,
              help="With --end-to-end, also restore a folder of this many copies of the photo "
                   "in one command, with the default --jobs and with --jobs 1 (per photo).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def benchmark(model_names: tuple[str, ...], sizes: str, published: bool, device: str,
              threads: int | None, repeats: int, tile: int, precisions: str, backends: str,
              end_to_end: bool, yardstick: str | None, folder_photos: int,
              json_path: str | None) -> None:
    """Megapixels per second and peak memory per model, size, tiled and untiled, in each
    precision; and the end-to-end restore of a photo."""
    from ..device import pick_device
    from ..evaluation.benchmark import format_benchmark, published_architecture, run_benchmark
    from ..networks.checkpoints import (
        CheckpointError,
        available_models,
        load_network,
        resolve_model,
    )

    try:
        device = str(pick_device(device))
        sides = [int(v) for v in sizes.split(",")]
        models = [(n, load_network(resolve_model(n)).network)
                  for n in (model_names or available_models())]
    except (CheckpointError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    if published:
        models.append(("published size (random weights)", published_architecture()))
    chosen = _benchmark_precisions(precisions)
    engines = _benchmark_backends(backends, device)
    from ..evaluation.benchmark import find_yardstick

    stick = find_yardstick(yardstick)
    if yardstick and stick is None:
        raise click.BadParameter(f"{yardstick} is not an executable file",
                                 param_hint="--yardstick")
    result = run_benchmark(models, [(s, s) for s in sides], device=device, threads=threads,
                           repeats=repeats, tile=tile, progress=True, precisions=chosen,
                           backends=engines)
    if end_to_end:
        from ..evaluation.benchmark import end_to_end as time_end_to_end

        rows = [time_end_to_end(repeats=repeats, precision=p)
                for p in dict.fromkeys(["auto", *chosen])]
        result["end_to_end"] = rows
        from ..evaluation.benchmark import whole_process

        result["whole_process"] = whole_process(yardstick=stick, repeats=repeats,
                                                folder=folder_photos)
    click.echo(format_benchmark(result))
    if json_path:
        write_json(json_path, result)


def _benchmark_precisions(precisions: str) -> list[str]:
    """`fbcnn benchmark --precision`: the comma-separated precisions, checked."""
    chosen = [p.strip() for p in precisions.split(",") if p.strip()]
    if not chosen or any(p not in ("fp32", "bf16", "auto") for p in chosen):
        raise click.BadParameter(f"expected fp32, bf16 or auto, got '{precisions}'",
                                 param_hint="--precision")
    return chosen


def _benchmark_backends(backends: str, device: str) -> list[str]:
    """`fbcnn benchmark --backends`: the comma-separated backends, checked; the graph
    runtimes (CPU only) left out on another device, refused when not installed."""
    from ..networks.runtimes import onnxruntime_installed, openvino_installed

    engines = [b.strip() for b in backends.split(",") if b.strip()]
    if not engines or any(b not in ("torch", "onnx", "openvino") for b in engines):
        raise click.BadParameter(f"expected openvino, torch and / or onnx, got '{backends}'",
                                 param_hint="--backends")
    for graph_engine, present in (("onnx", onnxruntime_installed),
                                  ("openvino", openvino_installed)):
        if graph_engine in engines and not device.startswith("cpu"):
            engines.remove(graph_engine)
        elif graph_engine in engines and not present():
            raise click.ClickException(f"--backends {graph_engine} needs it installed")
    return engines


@main.command("export")
@click.option("--model", "model_name", required=True, metavar="NAME|PATH",
              help="Model name (color, gray, color-double, gray-double) or checkpoint path.")
@click.option("--format", "fmt", required=True,
              type=click.Choice(["onnx", "torchscript", "spandrel"]),
              help="onnx (onnxruntime and other ONNX runtimes), torchscript (torch.jit.load) "
                   "or spandrel (a .safetensors file for chaiNNer and ComfyUI).")
@click.option("-o", "--output", required=True, type=click.Path(), metavar="FILE|DIR",
              help="File to write (replaced only once the export is complete); for spandrel "
                   "also a folder, which gets 1x_fbcnn_<model>.safetensors.")
@click.option("--qf-input", is_flag=True,
              help="Add a second input 'qf': (N, 1) float, the QF to use, in 1..100.")
@click.option("--opset", type=click.IntRange(min=11), default=None,
              help="ONNX opset version, 11..23 (default 17).")
def export_command(model_name: str, fmt: str, output: str, qf_input: bool,
                   opset: int | None) -> None:
    """Export a model to ONNX, TorchScript or spandrel (chaiNNer, ComfyUI).

    Input 'image': (N, C, H, W) float in [0, 1], any batch and size. Outputs 'restored', the
    restored image (not clamped), and 'qf_network', the predicted QF as (N, 1) in the
    network's convention (100 - QF) / 100, like model.network. With --qf-input, a second
    input 'qf' (N, 1) gives the QF to use in 1..100 (0: the image's own prediction).

    spandrel: the weights in the layout of spandrel's FBCNN (padded with zeros: larger
    files, the same output), restoring with the predicted QF.
    """
    from ..networks.export import ExportError, export_model
    from ..networks.modelfiles import CheckpointError

    try:
        path = export_model(model_name, fmt, output, qf_input=qf_input, opset=opset)
    except (CheckpointError, ExportError) as e:
        raise click.ClickException(str(e)) from None
    qf_note = ", input qf in 1..100" if qf_input else ""
    click.echo(f"wrote {path} ({fmt}{qf_note})", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; the page has no login).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True,
              help="Port to listen on (one in use is refused before anything is loaded, "
                   "naming a free one).")
@click.option("--device", type=DEVICES, default="auto", show_default=True)
@TILE_OPTION
@PRECISION_OPTION
@BACKEND_OPTION
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True),
              default=APP_MAX_MEGAPIXELS, show_default=True,
              help="Refuse bigger images (with a message).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True),
              default=APP_MAX_UPLOAD_MB,
              show_default=True, help="Refuse bigger uploads.")
def serve(host: str, port: int, device: str, tile: int, precision: str, backend: str,
          max_megapixels: float, max_upload_mb: float) -> None:
    """Open the web app: upload a JPEG, compare before/after, download the PNG.

    Needs the app extra: pip install 'fbcnn[app]'. Requests run one at a time (queued); the
    request of a page closed meanwhile is dropped. Images over --max-megapixels are refused
    from their header.
    """
    try:
        from . import app
    except ImportError as e:
        if (e.name or "").split(".")[0] != "gradio":
            raise
        raise click.ClickException("the web app needs Gradio: pip install 'fbcnn[app]'") from None
    app.serve(host=host, port=port, device=device, tile=tile, max_megapixels=max_megapixels,
              max_upload_mb=max_upload_mb, precision=precision, backend=backend)


@main.group()
def web() -> None:
    """Restore in the browser: a static page that runs the model on the client."""


@web.command("build")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder to write the site to (new, empty, or an earlier build).")
def web_build(output: str) -> None:
    """Write the static site: page, JavaScript, ONNX models, onnxruntime-web (needs npm once)."""
    from .web import WebError
    from .web.build import build_site

    try:
        report = build_site(output, log=lambda m: click.echo(m, err=True))
    except WebError as e:
        raise click.ClickException(str(e)) from None
    mb = 1e6
    click.echo(f"wrote {output}: {len(report.files)} files, {report.total_bytes / mb:.1f} MB; "
               f"a visit downloads {report.visit_bytes('wasm') / mb:.1f} MB (WASM) or "
               f"{report.visit_bytes('webgpu') / mb:.1f} MB (WebGPU) for one model", err=True)


@web.command("serve")
@click.argument("directory", type=click.Path())
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
def web_serve(directory: str, port: int) -> None:
    """Serve a built site on 127.0.0.1, with the headers WASM threads need."""
    from .web import WebError
    from .web.serve import serve as serve_site

    try:
        serve_site(directory, port=port, echo=lambda m: click.echo(m, err=True))
    except WebError as e:
        raise click.ClickException(str(e)) from None
