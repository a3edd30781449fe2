#!/usr/bin/env python
"""Regenerate docs/results.md and docs/results/*.json: every shipped model on BSDS500.

For each model (colour models on the colour images, grey models with gray=True on their
BT.601 Y): single JPEG at QF 10, 20, 30, 40 and double JPEG (QF1:QF2) 10:30, 10:50, 30:50,
30:10, 10:10 with a (4, 4) shift, with the predicted QF (correction none) and, for the
single-JPEG models, also with the recompression analysis' dominant QF (correction
dominant). The tables are set beside the paper's numbers.

    python scripts/make_results.py                       # all shipped models, all images
    python scripts/make_results.py --limit 2 --models color --out-dir /tmp/check

It takes long on a CPU with all 200 images (each evaluation restores 1800 images).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn import checkpoints  # noqa: E402
from fbcnn.evaluate import evaluate, format_table  # noqa: E402

DATA = Path("../shared/datasets/val/color/bsds500_test")  # relative to the repository
QFS = (10, 20, 30, 40)
DOUBLE = ((10, 30), (10, 50), (30, 50), (30, 10), (10, 10))
SHIFT = (4, 4)

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


def fmt(values, digits=(2, 3, 2)) -> str:
    if values is None:
        return "-"
    # PSNR|SSIM|PSNR-B like the paper; the pipes are escaped inside markdown tables
    return "\\|".join("-" if v is None else f"{v:.{d}f}" for v, d in zip(values, digits,
                                                                         strict=False))


def triple(m: dict) -> tuple[float, float, float]:
    return (m["psnr"], m["ssim"], m["psnrb"])


def cli_command(model: str, data: Path, gray: bool, correction: str, json_path: Path,
                limit: int | None) -> str:
    parts = ["fbcnn evaluate", f"--data {data}", f"--model {model}"]
    if gray:
        parts.append("--gray")
    parts += [f"--qf {','.join(map(str, QFS))}",
              f"--double {','.join(f'{a}:{b}' for a, b in DOUBLE)}",
              f"--shift {SHIFT[0]},{SHIFT[1]}", f"--correction {correction}"]
    if limit:
        parts.append(f"--limit {limit}")
    parts.append(f"--json {json_path}")
    return " ".join(parts)


def single_table(none: dict, dominant: dict | None) -> list[str]:
    gray = none["gray"]
    head = ["QF", "JPEG (ours)", "JPEG (paper)", f"{none['model']} (ours)"]
    if dominant:
        head.append(f"{none['model']}, dominant QF")
    head += ["FBCNN (paper)", "gain (dB)", "predicted QF"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    dom_rows = {r["qf"]: r for r in dominant["rows"] if r["qf2"] is None} if dominant else {}
    for row in none["rows"]:
        if row["qf2"] is not None:
            continue
        paper_jpeg, paper_fbcnn = PAPER_SINGLE[gray].get(row["qf"], (None, None))
        cells = [str(row["qf"]), fmt(triple(row["jpeg"])), fmt(paper_jpeg),
                 fmt(triple(row["restored"]))]
        if dominant:
            dom = dom_rows.get(row["qf"])
            cells.append(fmt(triple(dom["restored"])) if dom else "-")
        cells += [fmt(paper_fbcnn), f"{row['restored']['psnr'] - row['jpeg']['psnr']:+.2f}",
                  f"{row['predicted_qf']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def double_table(none: dict, dominant: dict | None) -> list[str]:
    head = ["QF1:QF2", "JPEG (ours)", f"{none['model']} (ours)"]
    if dominant:
        head += ["dominant QF", "used QF"]
    head += ["predicted QF", "JPEG, LIVE1 (paper)", "FBCNN / -D / -A PSNR, LIVE1 (paper)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    dom_rows = ({(r["qf"], r["qf2"]): r for r in dominant["rows"] if r["qf2"] is not None}
                if dominant else {})
    for row in none["rows"]:
        if row["qf2"] is None:
            continue
        key = (row["qf"], row["qf2"])
        paper = PAPER_DOUBLE_LIVE1.get(key) if none["gray"] else None
        cells = [f"{row['qf']}:{row['qf2']}", fmt(triple(row["jpeg"])),
                 fmt(triple(row["restored"]))]
        if dominant:
            dom = dom_rows.get(key)
            cells += [fmt(triple(dom["restored"])) if dom else "-",
                      f"{dom['used_qf']:.1f}" if dom else "-"]
        cells.append(f"{row['predicted_qf']:.1f}")
        cells += [fmt(paper[0], (2, 3)) if paper else "-",
                  " / ".join(f"{v:.2f}" for v in paper[1]) if paper else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA,
                        help="folder of clean colour images (default: %(default)s)")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names or weight files "
                             "(default: every shipped model)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs",
                        help="where results.md and results/*.json go (default: docs/)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data if args.data.is_absolute() else (ROOT / args.data)
    names = ([m.strip() for m in args.models.split(",") if m.strip()] if args.models
             else checkpoints.available_models())
    if not names:
        print(f"no shipped models in {checkpoints.WEIGHTS_DIR} (expected "
              f"{', '.join(n + '.safetensors' for n in checkpoints.NAMED_MODELS)}); "
              "train and export them first, or pass --models with weight files",
              file=sys.stderr)
        return 1

    json_dir = args.out_dir / "results"
    json_dir.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    commands: list[str] = []
    for name in names:
        try:
            loaded = checkpoints.load_network(checkpoints.resolve_model(name))
        except checkpoints.CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        network = loaded.network
        label = Path(name).stem if Path(name).suffix else name
        gray = network.config.in_channels == 1
        corrections = ["none"] if label.endswith("-double") else ["none", "dominant"]
        results: dict[str, dict] = {}
        for correction in corrections:
            json_path = json_dir / f"{label}-{correction}.json"
            print(f"== {label}, correction {correction}", file=sys.stderr, flush=True)
            result = evaluate(data, network, gray=gray, qfs=QFS, double=DOUBLE, shift=SHIFT,
                              correction=correction, limit=args.limit, model_name=label,
                              device=args.device)
            result["model_metadata"] = {k: v for k, v in loaded.metadata.items()
                                        if k != checkpoints.CONFIG_KEY}
            result["model_config"] = network.config.to_dict()
            shown = (json_path.resolve().relative_to(ROOT)
                     if json_path.resolve().is_relative_to(ROOT) else json_path)
            result["command"] = cli_command(name, args.data, gray, correction, shown,
                                            args.limit)
            json_path.write_text(json.dumps(result, indent=1) + "\n")
            print(format_table(result), file=sys.stderr)
            results[correction] = result
            commands.append(result["command"])

        none, dominant = results["none"], results.get("dominant")
        meta = none["model_metadata"]
        params = sum(p.numel() for p in network.parameters())
        kind = "grey (BT.601 Y of the colour images)" if gray else "colour (RGB, 4:2:0 JPEG)"
        trained = ", ".join(f"{k} {v}" for k, v in sorted(meta.items()) if k != "name")
        sections += [
            f"## {label}", "",
            f"{kind}; {params / 1e6:.2f} M parameters, widths "
            f"{'/'.join(map(str, network.config.widths))}, {network.config.blocks} blocks a "
            f"stage{'; ' + trained if trained else ''}. {none['images']} images; "
            f"{none['seconds']:.0f} s for the correction-none run.", "",
            "Single JPEG (PSNR|SSIM|PSNR-B; paper: BSDS500)", "",
            *single_table(none, dominant), "",
            f"Double JPEG, shift {SHIFT[0]},{SHIFT[1]} (PSNR|SSIM|PSNR-B on BSDS500; the "
            "paper's double-JPEG table is on LIVE1, other images, shown for scale only)", "",
            *double_table(none, dominant), "",
        ]

    limited = (f"\n**Limited to the first {args.limit} images: a smoke test, not comparable "
               "with the paper.**\n" if args.limit else "")
    header = [
        "# Results on BSDS500", "",
        "Generated by `python scripts/make_results.py"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --models {args.models}" if args.models else "") + f"` on "
        f"{time.strftime('%Y-%m-%d')} ({platform.platform()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads). Do not edit by hand.", limited,
        f"Data: `{args.data}` (the paper's 200 BSDS500 test images). Degradation as in the "
        "paper: JPEG with the IJG tables at QF (colour 4:2:0), or double JPEG: QF1, decode, "
        f"crop `[{SHIFT[0]}:, {SHIFT[1]}:]`, QF2, decode (ground truth cropped alike). Grey "
        "models are measured on the rounded BT.601 Y of the colour images.", "",
        "Metrics (`fbcnn.metrics`): PSNR over all channels; SSIM with an 11x11 Gaussian "
        "window (sigma 1.5), valid region, colour = mean of the channel SSIMs; PSNR-B with "
        "the blocking effect factor of the image under test (its Y channel for colour). "
        "With these definitions our JPEG columns reproduce the paper's to the printed digits "
        "(the check in the JPEG columns below).", "",
        "`dominant QF`: the QF fed to the network is the recompression analysis' dominant "
        "QF (`fbcnn.recompress`), not the network's prediction.", "",
        f"Paper numbers: {PAPER_SOURCE}.", "",
    ]
    footer = ["## Commands", "", "Each JSON file in `results/` comes from one evaluation; "
              "the equivalent command lines:", "", "```",
              *commands, "```", ""]
    (args.out_dir / "results.md").write_text("\n".join(header + sections + footer))
    print(f"wrote {args.out_dir / 'results.md'} and {len(commands)} JSON files in {json_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
