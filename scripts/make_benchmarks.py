#!/usr/bin/env python
"""Regenerate docs/benchmarks.md and docs/benchmarks.json: restoration speed and memory.

Every shipped model at 256x256, 512x512 and 1024x1024 (one pass and 512-pixel tiles where
the image is larger), plus the published-size architecture (about 72 M parameters, random
weights: the speed does not depend on them) at the smaller sizes only by default, as it is
slow on a CPU (several seconds per 512x512 image).

    python scripts/make_benchmarks.py                          # CPU, torch's threads
    python scripts/make_benchmarks.py --device cuda --published-sizes 256,512,1024
    python scripts/make_benchmarks.py --sizes 64 --published-sizes 64 --repeats 1 --out-dir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fbcnn.device import cpu_has_native_bf16  # noqa: E402
from fbcnn.engine.restorer import DEFAULT_OVERLAP  # noqa: E402
from fbcnn.evaluation.benchmark import (  # noqa: E402
    end_to_end,
    find_yardstick,
    format_benchmark,
    published_architecture,
    restore_phases,
    run_benchmark,
    whole_process,
)
from fbcnn.networks import checkpoints  # noqa: E402
from fbcnn.networks.network import FBCNN  # noqa: E402
from fbcnn.networks.runtimes import (  # noqa: E402
    choose_backend,
    onnxruntime_installed,
    openvino_installed,
)


def cpu_flags() -> str:
    """The CPU flags that decide the precision: AVX2 / AVX-512 / bf16 (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have]
    return ", ".join(shown) or "none of avx2/avx512/amx"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'256,512x384' -> [(256, 256), (384, 512)] (WxH, as image sizes are written)."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        w, _, h = item.partition("x")
        sizes.append((int(h or w), int(w)))
    return sizes


def speedup_lines(runs: list[dict]) -> list[str]:
    """The default end-to-end restore against the published-size FBCNN of the same run."""
    published = [r for run in runs for r in run["results"] if "published" in r["model"]]
    e2e = [e for run in runs for e in run.get("end_to_end", []) if not e["options"]]
    if not published or not e2e:
        return []
    base = min(published, key=lambda r: r["megapixels_per_s"])
    rate = e2e[0]["megapixels_per_s_after_startup"]
    return [f"Default `fbcnn restore` of the 2048x1536 JPEG, after start-up, against the "
            f"published-size FBCNN (fp32, {base['width']}x{base['height']}, its slowest row "
            f"here): {rate:.3f} / {base['megapixels_per_s']:.3f} MP/s = "
            f"**{rate / base['megapixels_per_s']:.0f}x**; whole process (start-up "
            f"included): {e2e[0]['megapixels_per_s'] / base['megapixels_per_s']:.0f}x.", ""]


def load_models(text: str | None) -> list[tuple[str, FBCNN]] | None:
    """The (name, network) pairs of --models (default: the shipped models; a file named by
    its stem); None, with the error printed, when one cannot be loaded."""
    names = ([m.strip() for m in text.split(",") if m.strip()] if text
             else checkpoints.available_models())
    if not names:
        print(f"note: no shipped models in {checkpoints.WEIGHTS_DIR}; benchmarking the "
              "published-size architecture only", file=sys.stderr)
    models = []
    for name in names:
        try:
            loaded = checkpoints.load_network(checkpoints.resolve_model(name))
        except checkpoints.CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return None
        models.append((Path(name).stem if Path(name).suffix else name, loaded.network))
    return models


FOLDER_PHOTOS = 6  # the whole-process table's batch rows (`fbcnn benchmark --folder`)


def measure_end_to_end(run: dict, repeats: int, yardstick: str) -> None:
    """Add the whole-process `fbcnn restore` rows, the default restore's phases and each
    runtime beside the yardstick, and a folder of FOLDER_PHOTOS of it (all on a 2048x1536
    JPEG) to `run`."""
    print("benchmark end to end: fbcnn restore, 2048x1536", file=sys.stderr)
    extras: list[tuple[str, ...]] = [(), ("--double", "off"),
                                     ("--double", "off", "--tile", "0")]
    run["end_to_end"] = [end_to_end(repeats=repeats, precision="auto", extra=extra)
                         for extra in extras]
    print("benchmark the default restore's phases, 2048x1536", file=sys.stderr)
    run["phases"] = restore_phases(repeats=repeats)
    print("benchmark each runtime whole-process beside the yardstick", file=sys.stderr)
    run["whole_process"] = whole_process(yardstick=find_yardstick(yardstick), repeats=repeats,
                                         folder=FOLDER_PHOTOS)


def write_docs(runs: list[dict], command: str, out_dir: Path, device: str) -> None:
    """Write benchmarks.json and benchmarks.md into `out_dir` (the sections below the
    generated part of an existing benchmarks.md are kept)."""
    flags = cpu_flags()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.json").write_text(
        json.dumps({"command": command, "runs": runs}, indent=1) + "\n")
    lines = [
        "# Benchmarks", "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}. Do not edit by hand; "
        "the raw numbers (every run) are in `benchmarks.json` (the sections below the "
        "tables are kept, each with its own command).", "",
        "Restoring a JPEG-compressed test image (gradients and noise, QF 30) through "
        "`fbcnn.engine.restorer.Restorer`, as `fbcnn restore` does: one warm-up, then the median "
        "of the timed runs. MP/s = megapixels per second. Peak memory is the memory the "
        "restoration needs on top of the loaded model and the input, measured in a fresh "
        "process per run (see `fbcnn.evaluation.benchmark`). Tiled runs use tiles on the JPEG grid "
        f"with a {DEFAULT_OVERLAP}-pixel overlap, and only for images larger than a tile.", "",
        f"CPU flags that matter here: {flags}; native bf16: "
        f"{'yes' if cpu_has_native_bf16() else 'no'}, so `--precision auto` runs "
        f"{'bf16' if cpu_has_native_bf16() else 'fp32'} on this machine (bf16 rows below are "
        f"{'native' if cpu_has_native_bf16() else 'emulated, for comparison only'}).", "",
    ]
    engine = {"openvino": "OpenVINO", "onnx": "onnxruntime", "torch": "torch"}[
        choose_backend("auto", device, "auto")]
    lines += [f"`fbcnn restore` runs the network in {engine} here (`--backend auto`; see "
              "`fbcnn.networks.runtimes`); the `OpenVINO` rows run the graphs shipped beside the "
              "weights "
              "(`auto`: bf16 where the CPU has it natively, else f32; `int8`: the quantised "
              "graph), the `onnxruntime` rows the same graph in onnxruntime (fp32), the others "
              "torch.", ""]
    for run in runs:
        lines += [format_benchmark(run), ""]
    lines += speedup_lines(runs)
    target = out_dir / "benchmarks.md"
    # sections below the generated part ("## ...", e.g. scripts/benchmark_ray.py's) are kept
    old = target.read_text() if target.exists() else ""
    kept = old[old.index("\n## ") + 1:] if "\n## " in old else ""
    target.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    print(f"wrote {out_dir / 'benchmarks.md'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024", help="shipped models' image sizes")
    parser.add_argument("--published-sizes", default="256,512",
                        help="the published-size architecture's sizes ('' to skip it)")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names or weight files (default: shipped)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--published-repeats", type=int, default=1)
    parser.add_argument("--end-to-end-repeats", type=int, default=5,
                        help="whole-process runs of each end-to-end row and of its start-up "
                             "(the start-up of a fresh process varies by 0.2 s)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default 512)")
    parser.add_argument("--bf16-sizes", default="512",
                        help="sizes the first model is also measured at in bf16 ('' to skip)")
    parser.add_argument("--wider", default="32,64,128,256",
                        help="widths of a wider layout (random weights, the shipped blocks) "
                             "also measured, one pass at the largest square size ('' to skip)")
    parser.add_argument("--no-end-to-end", action="store_true",
                        help="skip the whole-process `fbcnn restore` of a 2048x1536 JPEG")
    parser.add_argument("--yardstick", default=str(ROOT.parent / "shared/tools/knusperli"),
                        help="classical decoder timed beside the whole-process rows "
                             "(`PROGRAM in.jpg out.png`; missing: rows without the ratio)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)

    models = load_models(args.models)
    if models is None:
        return 1

    runs = []
    common = dict(device=args.device, threads=args.threads, tile=args.tile, progress=True)
    onnx = args.device == "cpu" and onnxruntime_installed()
    native_bf16 = args.device == "cpu" and cpu_has_native_bf16()
    precisions = ("fp32", "bf16") if native_bf16 else ("fp32",)
    engines = ("torch",) + (("onnx",) if onnx else ()) + (
        ("openvino",) if args.device == "cpu" and openvino_installed() else ())
    if models:
        runs.append(run_benchmark(models, parse_sizes(args.sizes), repeats=args.repeats,
                                  backends=engines, precisions=precisions, **common))
    squares = [s for s in parse_sizes(args.sizes) if s[0] == s[1]]
    if models and args.wider and squares:
        widths = tuple(int(w) for w in args.wider.split(","))
        base = models[0][1].config
        wide = FBCNN(replace(base, widths=widths)).eval()
        runs.append(run_benchmark(
            [(f"{base.in_channels}-channel, widths {'/'.join(map(str, widths))} "
              "(random weights)", wide)], [max(squares)], repeats=args.repeats,
            backends=("torch", "onnx") if onnx else ("torch",), precisions=precisions,
            **{**common, "tile": 0}))
    bf16_sizes = [] if native_bf16 else parse_sizes(args.bf16_sizes)
    if models and bf16_sizes:
        runs.append(run_benchmark(models[:1], bf16_sizes, repeats=1, precisions=("bf16",),
                                  **common))
    published_sizes = parse_sizes(args.published_sizes)
    if published_sizes:
        runs.append(run_benchmark([("published size (random weights)",
                                    published_architecture(3))], published_sizes,
                                  repeats=args.published_repeats, **common))
    if not runs:
        print("nothing to benchmark", file=sys.stderr)
        return 1
    if not args.no_end_to_end:
        measure_end_to_end(runs[0], args.end_to_end_repeats, args.yardstick)
    command = "python scripts/make_benchmarks.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    write_docs(runs, command, args.out_dir, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
