"""The `fbcnn` command line: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__

DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])


def parse_qf(value: str) -> float | None:
    if value == "auto":
        return None
    try:
        qf = float(value)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a number in 1..100, got '{value}'") from None
    if not 1 <= qf <= 100:
        raise click.BadParameter(f"QF must be in 1..100, got {value}")
    return qf


def parse_int_list(value: str | None, what: str = "QF") -> list[int] | None:
    if not value:
        return None
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None
    if not items or not all(1 <= q <= 100 for q in items):
        raise click.BadParameter(f"each {what} must be in 1..100, got '{value}'")
    return items


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
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Stop after this many more iterations.")
@click.option("--output", default=None, help="Override the config's output folder.")
def train(config_path: str, resume: bool, minutes: float | None, iterations: int | None,
          output: str | None) -> None:
    """Train a model (torchrun for several processes or GPUs)."""
    from .train import Trainer, load_config

    try:
        config = load_config(config_path)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
    if output:
        config.output = output
    trainer = Trainer(config, resume=resume, minutes=minutes, iterations=iterations)
    done = trainer.train()
    if trainer.dist.is_main:
        click.echo(f"stopped at iteration {done}; checkpoint {config.output}/last.pt, "
                   f"weights {config.output}/model.safetensors (best: best.safetensors)")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: a restored/ folder beside each input).")
@click.option("--model", default=None,
              help="Model name (color, gray, color-double, gray-double) or checkpoint path. "
                   "Default: color or gray, by image.")
@click.option("--qf", "qf_text", default="auto", show_default=True,
              help="QF fed to the network: 'auto' (predicted) or 1..100.")
@click.option("--qf-sweep", default=None, help="Write one output per QF, e.g. 10,30,50,70,90.")
@click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
              help="Tile size for big images (0: whole image at once).")
@click.option("--device", type=DEVICES, default="auto", show_default=True)
@click.option("--double", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
              help="Detect a misaligned earlier compression and restore with the dominant QF.")
@click.option("--recursive", is_flag=True, help="Look into sub-folders of folder inputs.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs exist (resume).")
@click.option("--compare", is_flag=True, help="Also write <stem>_compare.png (input | result).")
def restore(inputs: tuple[str, ...], outdir: str | None, model: str | None, qf_text: str,
            qf_sweep: str | None, tile: int, device: str, double: str, recursive: bool,
            skip_existing: bool, compare: bool) -> None:
    """Remove JPEG artifacts from INPUT files or folders; writes PNGs."""
    from tqdm import tqdm

    from .checkpoints import CheckpointError
    from .imageio import ImageError, list_inputs
    from .pipeline import ModelSet, restore_file

    qf = parse_qf(qf_text)
    sweep = parse_int_list(qf_sweep)
    if sweep and qf is not None:
        raise click.UsageError("--qf and --qf-sweep cannot be used together")
    try:
        models = ModelSet(model, device=device, tile=tile)
        if model:
            models.get(model)  # a bad --model fails once, up front
    except (CheckpointError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    paths = list_inputs(inputs, recursive=recursive)
    if not paths:
        raise click.ClickException("no images found in " + ", ".join(inputs))
    failed = done = skipped = 0
    bar = tqdm(paths, unit="image", disable=len(paths) < 2, file=sys.stderr)
    for path in bar:
        try:
            report = restore_file(path, models, outdir=Path(outdir) if outdir else None, qf=qf,
                                  sweep=sweep, double=double, skip_existing=skip_existing,
                                  compare=compare, protect=tuple(paths))
        except (ImageError, CheckpointError, ValueError) as e:
            failed += 1
            bar.write(f"error: {e}", file=sys.stderr)
            continue
        if report.skipped:
            skipped += 1
            bar.write(f"{path}: skipped (output exists)")
            continue
        done += 1
        note = ""
        if report.double and report.double.get("detected"):
            d = report.double
            note = f", {d['kind']} double JPEG (QF1 {d['qf1']}, offset {d['offset']})"
        used = "sweep " + ",".join(map(str, sweep)) if sweep else f"{report.used_qf:.1f}"
        bar.write(f"{path}: predicted QF {report.predicted_qf:.1f}, used QF {used}{note} "
                  f"[{report.model}] -> {', '.join(str(o) for o in report.outputs)}")
    summary = f"restored {done} of {len(paths)} image(s)"
    if skipped:
        summary += f", skipped {skipped}"
    if failed:
        summary += f", {failed} failed"
    click.echo(summary, err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image (a list if several).")
@click.option("--model", default=None, help="Model for the QF prediction (default: by image).")
@click.option("--device", type=DEVICES, default="auto", show_default=True)
def inspect(images: tuple[str, ...], as_json: bool, model: str | None, device: str) -> None:
    """Report the QF in the file, the predicted QF, size, mode, subsampling, double JPEG."""
    from .checkpoints import CheckpointError
    from .imageio import ImageError
    from .pipeline import ModelSet, inspect_file

    models = ModelSet(model, device=device)
    infos, failed = [], 0
    for name in images:
        try:
            infos.append(inspect_file(Path(name), models))
        except (ImageError, CheckpointError, ValueError) as e:
            failed += 1
            fail(str(e))
    if as_json:
        if infos:
            click.echo(json.dumps(infos[0] if len(images) == 1 else infos, indent=2))
    else:
        for info in infos:
            d = info.get("double") or {}
            verdict = "no" if not d.get("detected") else (
                f"{d['kind']}, QF1 {d['qf1']}, offset {d['offset']}, "
                f"confidence {d['confidence']:.2f}")
            click.echo(f"{info['path']}: {info['width']}x{info['height']} {info['mode']} "
                       f"{info['format']}, subsampling {info['subsampling'] or '-'}, "
                       f"header QF {info['header_qf'] if info['header_qf'] is not None else '-'}, "
                       f"predicted QF {info['predicted_qf']:.1f}, double JPEG: {verdict}")
    if failed:
        sys.exit(1)
