#!/usr/bin/env python
"""Write src/fbcnn/weights/NAME.md, the model card of a shipped model.

    python scripts/make_model_card.py color [--results-dir docs/results]

Sources, each optional (a missing one is reported as "not measured yet"):
the weights `src/fbcnn/weights/NAME.safetensors` (config, iterations and training seconds in
its metadata; the last stage's config from its provenance), that stage's config file and
training log (`configs/RUN.yaml`, `configs/RUN.log.jsonl` for a run writing to runs/RUN,
else `configs/NAME.yaml` and `NAME.log.jsonl`; the log's last validation record), the
training commands `configs/NAME.commands.txt` (else the default command), and the evaluations of
`scripts/make_results.py` in the results folder (NAME-none.json, NAME-none-double.json,
NAME-bsd68-none.json, NAME-qfsweep.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_results import display_path, load_json  # noqa: E402

from fbcnn.evaluation.report import fmt, sweep_summary, table, triple  # noqa: E402
from fbcnn.networks import checkpoints  # noqa: E402
from fbcnn.networks.checkpoints import PROVENANCE_KEY, file_sha256  # noqa: E402

NOT_MEASURED = "Not measured yet."


def read_config(path: Path) -> dict | None:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def last_validation(path: Path) -> dict | None:
    """The last record of a training log (JSONL) that carries a validation."""
    last = None
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written, or damaged
        if isinstance(record, dict) and isinstance(record.get("val"), dict):
            last = record
    return last


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def hours(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 3600:.2f} h)"


def section_model(name: str, weights: Path, config: dict | None) -> list[str]:
    lines = ["## What it is", ""]
    try:
        loaded = checkpoints.load_network(weights)
    except checkpoints.CheckpointError as e:
        return lines + [f"The weights cannot be read: {e}.", ""]
    c = loaded.network.config
    params = sum(p.numel() for p in loaded.network.parameters())
    kind = "grey (1 channel)" if c.in_channels == 1 else "colour (RGB)"
    if config:
        double = bool((config.get("data") or {}).get("double_probability"))
    else:  # no config: the shipped names say it
        double = name.endswith("-double")
    variant = ("FBCNN-A: trained on single and double JPEG, for double-compressed images"
               if double else "FBCNN: trained on single JPEG; with `--correction dominant` "
               "it is run as FBCNN-D on double JPEG")
    lines += [
        f"An FBCNN network (flexible blind JPEG artifact removal, Jiang et al., ICCV 2021) "
        f"for {kind} JPEG images; {variant}. It predicts the JPEG quality factor (QF) of its "
        "input and restores with it, or with a QF given by the user.", "",
        f"- architecture (from the config in the weights' metadata): widths "
        f"{'/'.join(map(str, c.widths))}, {plural(c.blocks, 'residual block')} a stage, QF branch "
        f"width "
        f"{c.qf_width}, global residual {'on' if c.global_residual else 'off'} "
        f"(output = input + network(input)), {c.in_channels} -> {c.out_channels} channels",
        f"- {params:,} parameters ({params / 1e6:.2f} M); the published FBCNN has 71.9 M "
        "(widths 64/128/256/512, 4 blocks)",
        f"- file `{weights.name}`: {weights.stat().st_size / 2**20:.1f} MiB, sha256 "
        f"`{file_sha256(weights)[:16]}...`", ""]
    return lines


def section_data(name: str, config: dict | None, config_path: Path) -> list[str]:
    lines = ["## Training data", ""]
    if not config:
        return lines + [f"`{display_path(config_path)}` not found: not recorded.", ""]
    data = config.get("data") or {}
    val = config.get("validation") or {}
    folders = data.get("folders") or []
    share = float(data.get("double_probability") or 0.0)
    kind = ("Grey (the BT.601 Y of colour images, some plain grey conversions)"
            if data.get("gray") else "Colour")
    lines += [f"The last stage's, from `{display_path(config_path)}` (earlier stages: "
              "under Training):", "",
              *(f"- `{f}`" for f in folders), "",
              f"{kind} patches of {data.get('patch_size', '?')} pixels, batches of "
              f"{data.get('batch_size', '?')}, JPEG-compressed on the fly; double-JPEG share "
              f"{share:.0%}" + (f", initialised from `{config['init_from']}`"
                                if config.get("init_from") else "") + ".", ""]
    if val:
        lines += [f"Validation during training: `{val.get('folder')}`, first "
                  f"{val.get('limit')} images, centre crops of {val.get('crop')} pixels, QF "
                  f"{', '.join(map(str, val.get('qfs', [])))}, every {val.get('every')} "
                  "iterations.", ""]
    return lines


def section_training(name: str, metadata: dict, config: dict | None,
                     configs_dir: Path) -> list[str]:
    lines = ["## Training", ""]
    commands_file = configs_dir / f"{name}.commands.txt"
    commands = []
    if commands_file.is_file():
        commands = [line.rstrip() for line in commands_file.read_text().splitlines()
                    if line.strip()]
        lines.append(f"Commands (from `{display_path(commands_file)}`):")
    if not commands:
        commands = [f"fbcnn train --config configs/{name}.yaml --resume"]
        lines.append("Command (the default; no record of the exact commands was found):")
    lines += ["", "```", *commands, "```", ""]
    stages = json.loads(metadata.get(PROVENANCE_KEY, "null") or "null")
    if stages:
        return lines + provenance_lines(stages)
    iterations = metadata.get("iterations")
    seconds = metadata.get("train_seconds")
    schedule = ((config or {}).get("optim") or {}).get("iterations")
    threads = (config or {}).get("threads")
    if iterations is None and seconds is None:
        lines += ["Iterations and training time: not recorded in the weights' metadata.", ""]
        return lines
    text = f"{iterations} iterations" if iterations is not None else "Iterations not recorded"
    if schedule:
        text += f" (the config's schedule: {schedule})"
    if seconds is not None:
        s = float(seconds)
        text += (f"; {hours(s)} of wall-clock time in training steps (`train_seconds` in the "
                 "weights' metadata; validation and checkpoint saving not counted)")
        if threads:
            text += (f", on a CPU with {threads} torch thread{'s' if int(threads) != 1 else ''}"
                     " per training process (the config's `threads`): about "
                     f"{s * int(threads) / 3600:.2f} CPU-core-hours for one process")
    lines += [text + ".", ""]
    extra = {k: v for k, v in metadata.items()
             if k not in ("iterations", "train_seconds", "name", checkpoints.CONFIG_KEY)}
    if extra:
        lines += ["Other metadata: " + ", ".join(f"{k} {v}" for k, v in sorted(extra.items()))
                  + ".", ""]
    return lines


def provenance_lines(stages: list[dict]) -> list[str]:
    """The stages recorded in the weights (`fbcnn.provenance`), from scratch to these."""
    rows = []
    for n, st in enumerate(stages, 1):
        parent = "from scratch" if not st.get("init_from") else (
            f"`{st['init_from']}` (sha256 {str(st.get('init_sha256'))[:12]}...)")
        reinit = (st.get("config") or {}).get("reinit") or []
        if reinit:
            parent += f", fresh {', '.join(reinit)}"
        rows.append([str(n), st.get("name", "?"), parent, st.get("device", "?"),
                     st.get("precision", "?"), str(st.get("iterations", "?")),
                     f"{st.get('patches', 0):,}", hours(float(st.get("train_seconds", 0))),
                     f"`{str(st.get('git_commit', '?'))[:10]}`"])
    gpu = sum(float(st.get("train_seconds", 0)) for st in stages
              if str(st.get("device", "")).startswith("cuda"))
    cpu = sum(float(st.get("train_seconds", 0)) * _threads(st) for st in stages
              if str(st.get("device", "")).startswith("cpu"))
    return ["Every stage from scratch, as recorded in the weights' metadata "
            "(`fbcnn.provenance`: each stage's full config, parent hash, commit, time):", "",
            *table(["stage", "name", "started from", "device", "precision", "iterations",
                    "patches", "training time", "commit"], rows), "",
            f"Total from scratch: {gpu / 3600:.2f} GPU-hours and {cpu / 3600:.2f} "
            "CPU-core-hours of training steps (validation and checkpoints not counted).", ""]


def _threads(stage: dict) -> int:
    device = str(stage.get("device", ""))
    if "threads" in device:
        try:
            return int(device.split("(")[1].split()[0]) * int(stage.get("world_size", 1))
        except (IndexError, ValueError):
            pass
    return 1


def stale_note(result: dict, sha: str) -> list[str]:
    recorded = (result.get("settings") or {}).get("weights_sha256")
    if recorded and recorded != sha:
        return ["(Measured on an earlier weights file than this one: rerun "
                "`scripts/make_results.py`.)", ""]
    return []


def quality_table(result: dict) -> list[str]:
    rows = []
    for row in result["rows"]:
        label = f"{row['qf']}:{row['qf2']}" if row.get("qf2") is not None else str(row["qf"])
        rows.append([label, fmt(triple(row["jpeg"])), fmt(triple(row["restored"])),
                     f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}",
                     f"{row['predicted_qf']:.1f}"])
    double = any(row.get("qf2") is not None for row in result["rows"])
    return table(["QF1:QF2" if double else "QF", "JPEG", "restored", "gain (dB)",
                  "predicted QF"], rows)


def section_results(name: str, results_dir: Path, sha: str, gray: bool) -> list[str]:
    lines = ["## Validation", ""]
    parts = [("none", "Single JPEG"), ("none-double", "Double JPEG (shift 4,4)")]
    if gray:
        parts.append(("bsd68-none", "Single JPEG on BSD68"))
    for kind, title in parts:
        path = results_dir / f"{name}-{kind}.json"
        result = load_json(path)
        lines += [f"### {title}", ""]
        if not result or not result.get("rows"):
            lines += [NOT_MEASURED, ""]
            continue
        colour = "grey" if result.get("gray") else "colour"
        count = plural(result.get("images", 0), "image")
        lines += [f"{result.get('dataset')} ({colour}), {count}, "
                  f"predicted QF fed (correction {result.get('correction')}); "
                  f"PSNR\\|SSIM\\|PSNR-B, from `{display_path(path)}`.", "",
                  *stale_note(result, sha), *quality_table(result), ""]

    lines += ["### Predicted QF", ""]
    path = results_dir / f"{name}-qfsweep.json"
    result = load_json(path)
    if not result or not result.get("rows"):
        return lines + [NOT_MEASURED, ""]
    sweep = result.get("qf_sweep") or sweep_summary(result)
    rows = [[str(r["qf"]), f"{r['predicted_qf']:.1f}", f"{r['predicted_qf_mae']:.1f}",
             f"{r['gain_db']:+.2f}", f"{r['images_worse']}/{r['images']}"]
            for r in sweep["per_qf"]]
    lines += [f"Single JPEG at QF 10..95 on {result.get('dataset')}, "
              f"{plural(result.get('images', 0), 'image')}, from `{display_path(path)}`: "
              "mean absolute error of the predicted QF "
              f"over QF 10..90 **{sweep['mae_qf10_90']:.1f}** (target <= "
              f"{sweep['mae_target']:g}: {'met' if sweep['mae_met'] else 'not met'}); lowest "
              f"mean PSNR gain {sweep['min_gain_db']:+.2f} dB at QF {sweep['min_gain_qf']}.", "",
              *stale_note(result, sha),
              *table(["QF", "mean predicted QF", "MAE", "gain (dB)", "images worse"], rows), ""]
    return lines


def log_totals(path: Path) -> list[str]:
    """All stages of the log (records may carry a "stage"): iterations and step time."""
    stages: dict[int, tuple[int, float]] = {}
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        st = int(r.get("stage", 1))
        it, el = stages.get(st, (0, 0.0))
        stages[st] = (max(it, int(r.get("iteration", 0))), max(el, float(r.get("elapsed_s", 0))))
    iters = sum(i for i, _ in stages.values())
    secs = sum(e for _, e in stages.values())
    parts = ", ".join(f"stage {k}: {i} iterations, {e / 3600:.2f} h" for k, (i, e) in
                      sorted(stages.items()))
    return [f"All training stages in the log ({parts}): {iters} iterations, "
            f"{secs / 3600:.2f} h of training steps in total, one 1-thread process at a time "
            f"(about {secs / 3600:.2f} CPU-core-hours; stages before a model's last stage "
            "are those of the model it started from where its config has `init_from`)."]


def section_log(path: Path) -> list[str]:
    lines = ["## Last validation in the training log", ""]
    record = last_validation(path)
    if not record:
        return lines + [f"{NOT_MEASURED} (no validation record in `{display_path(path)}`)", ""]
    rows = []
    def order(key: str) -> tuple[int, str, float]:
        """libjpeg rows ('10') first, then other encoders' ('mozjpeg:10'), by QF."""
        encoder, _, qf = key.rpartition(":")
        return (1 if encoder else 0, encoder, float(qf))

    for qf, v in sorted(record["val"].items(), key=lambda kv: order(kv[0])):
        try:
            rows.append([str(qf), f"{v['jpeg']:.2f}", f"{v['restored']:.2f}",
                         f"{v['restored'] - v['jpeg']:+.2f}",
                         f"{v['predicted_qf']:.1f}" if "predicted_qf" in v else "-"])
        except (KeyError, TypeError):
            continue
    elapsed = record.get("elapsed_s")
    lines += [*log_totals(path), ""]
    lines += [f"`{display_path(path)}`, iteration {record.get('iteration')}"
              + (f", after {hours(float(elapsed))} of training steps" if elapsed else "")
              + " (validation images of the config; PSNR):", "",
              *table(["QF", "JPEG PSNR", "restored PSNR", "gain (dB)", "predicted QF"], rows),
              ""]
    return lines


def last_stage(metadata: dict) -> dict | None:
    """The last stage recorded in the weights' provenance (the run that wrote them)."""
    try:
        stages = json.loads(metadata.get(PROVENANCE_KEY, "null") or "null")
    except ValueError:
        return None
    return stages[-1] if isinstance(stages, list) and stages and isinstance(
        stages[-1], dict) else None


def stage_files(name: str, metadata: dict, configs_dir: Path
                ) -> tuple[dict | None, Path, Path]:
    """The config of the run that wrote the weights and where its config and log files are.

    The last provenance stage's config is the exact one; its files are named after its
    output folder (runs/gray-stage4 -> configs/gray-stage4.yaml, .log.jsonl) where they
    exist, else configs/NAME.yaml and NAME.log.jsonl (also for weights without provenance)."""
    config_path = configs_dir / f"{name}.yaml"
    log_path = configs_dir / f"{name}.log.jsonl"
    stage = last_stage(metadata)
    stage_config = stage.get("config") if stage else None
    if not isinstance(stage_config, dict):
        return read_config(config_path), config_path, log_path
    run = Path(str(stage_config.get("output") or "")).name
    if run and (configs_dir / f"{run}.yaml").is_file():
        config_path = configs_dir / f"{run}.yaml"
    if run and (configs_dir / f"{run}.log.jsonl").is_file():
        log_path = configs_dir / f"{run}.log.jsonl"
    return stage_config, config_path, log_path


def make_card(name: str, results_dir: Path, weights_dir: Path, configs_dir: Path) -> str:
    weights = weights_dir / f"{name}.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weights file")
    loaded = checkpoints.load_network(weights)
    config, config_path, log_path = stage_files(name, loaded.metadata, configs_dir)
    gray = loaded.network.config.in_channels == 1
    sha = file_sha256(weights)
    command = f"python scripts/make_model_card.py {name}"
    for option, given, default in (("--results-dir", results_dir, ROOT / "docs" / "results"),
                                   ("--weights-dir", weights_dir, checkpoints.WEIGHTS_DIR),
                                   ("--configs-dir", configs_dir, ROOT / "configs")):
        if given.resolve() != default.resolve():
            command += f" {option} {display_path(given)}"
    lines = [f"# Model card: `{name}`", "",
             f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}; do not edit by hand.",
             "Full tables and the command lines of every evaluation: `docs/results.md`.", "",
             *section_model(name, weights, config),
             *section_data(name, config, config_path),
             *section_training(name, loaded.metadata, config, configs_dir),
             *section_results(name, results_dir, sha, gray),
             *section_log(log_path),
             "## Limitations", "",
             "A small network trained for a short time on a CPU: well below the published "
             "FBCNN (compare the tables in `docs/results.md`). Measured on natural photos; "
             "other content (text, screenshots, drawings) is not measured.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="shipped model name, e.g. color, gray, color-double")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "docs" / "results",
                        help="JSON files of scripts/make_results.py (default: docs/results)")
    parser.add_argument("--weights-dir", type=Path, default=checkpoints.WEIGHTS_DIR,
                        help="where NAME.safetensors is and NAME.md goes")
    parser.add_argument("--configs-dir", type=Path, default=ROOT / "configs",
                        help="NAME.yaml, NAME.commands.txt, NAME.log.jsonl (default: configs)")
    args = parser.parse_args(argv)
    resolve = (lambda p: p if p.is_absolute() else ROOT / p)  # noqa: E731
    try:
        card = make_card(args.name, resolve(args.results_dir), resolve(args.weights_dir),
                         resolve(args.configs_dir))
    except (FileNotFoundError, checkpoints.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = resolve(args.weights_dir) / f"{args.name}.md"
    out.write_text(card)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
