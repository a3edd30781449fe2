#!/usr/bin/env python
"""Throughput of batch restoration: `fbcnn.restore_many` with the local engine and with Ray
actors (workers x threads), on a folder of photos JPEG-compressed first (QF 30, Pillow's
default 4:2:0) into a temporary folder. Prints a markdown table (docs/benchmarks.md,
"Batch restoration on Ray").

    python scripts/benchmark_ray.py                                  # Kodak24, 3 configs
    python scripts/benchmark_ray.py --data DIR --limit 8 --configs local:1,ray:2x1 --repeats 3

Each config restores every image once per repeat (runs interleaved, median reported). The
Ray runs share one local Ray instance started beforehand (its start-up is printed on its
own); their time includes starting the actors and loading the models in them, as a batch
does. The local engine uses torch's default threads, as `fbcnn restore` does (`local:1`:
one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fbcnn.frontends.distributed import expand_inputs, ray_connection, restore_many  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()  # before any run sets them
DATA = ROOT.parent / "shared" / "datasets" / "val" / "color" / "kodak24"


def parse_config(text: str) -> tuple[str, int, int]:
    """'local' -> ('local', 1, 0) (torch's default threads); 'local:1' -> ('local', 1, 1);
    'ray:2x1' -> ('ray', 2, 1) (workers x threads)."""
    if text == "local":
        return "local", 1, 0
    if text.startswith("local:") and text[6:].isdigit() and int(text[6:]) > 0:
        return "local", 1, int(text[6:])
    engine, _, shape = text.partition(":")
    workers, _, threads = shape.partition("x")
    if engine != "ray" or not workers.isdigit() or not threads.isdigit():
        raise SystemExit(f"error: --configs: expected local or ray:WxT, got {text!r}")
    return "ray", int(workers), int(threads)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def compress(data: Path, folder: Path, qf: int, limit: int | None) -> tuple[list[Path], float]:
    """JPEG copies of the first `limit` images; their total megapixels."""
    sources = [Path(p) for p in expand_inputs([data])][:limit]
    if not sources:
        raise SystemExit(f"no images in {data}")
    paths, mpix = [], 0.0
    for src in sources:
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        target = folder / f"{src.stem}.jpg"
        rgb.save(target, quality=qf)
        paths.append(target)
        mpix += rgb.width * rgb.height / 1e6
    return paths, mpix


def label(engine: str, workers: int, threads: int) -> str:
    if engine == "local":
        n = threads or DEFAULT_THREADS
        return f"local (1 process x {n} thread{'s' if n > 1 else ''})"
    return f"ray ({workers} worker{'s' if workers > 1 else ''} x {threads} thread"\
           f"{'s' if threads > 1 else ''})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Folder of clean photos.")
    parser.add_argument("--limit", type=int, default=24, help="First N images.")
    parser.add_argument("--qf", type=int, default=30, help="JPEG quality of the inputs.")
    parser.add_argument("--configs", default="local,ray:1x1,ray:2x1",
                        help="Comma-separated: local (torch's default threads), local:THREADS, "
                             "ray:WORKERSxTHREADS.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs per config (median).")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the local Ray instance.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every run here.")
    args = parser.parse_args(argv)
    configs = [parse_config(c.strip()) for c in args.configs.split(",") if c.strip()]

    with tempfile.TemporaryDirectory(prefix="fbcnn-bench-") as tmp:
        inputs = Path(tmp) / "jpeg"
        inputs.mkdir()
        paths, mpix = compress(args.data, inputs, args.qf, args.limit)
        runs: dict[str, list[float]] = {label(*c): [] for c in configs}
        t0 = time.perf_counter()
        with ray_connection(None, args.num_cpus) if any(c[0] == "ray" for c in configs) \
                else contextlib.nullcontext():
            ray_start = time.perf_counter() - t0
            for r in range(args.repeats):
                for engine, workers, threads in configs:
                    out = Path(tmp) / f"out-{engine}-{workers}x{threads}-{r}"
                    kwargs: dict[str, int] = {"threads_per_worker": threads or DEFAULT_THREADS}
                    if engine == "ray":
                        kwargs["workers"] = workers
                    start = time.perf_counter()
                    outcomes = restore_many([str(p) for p in paths], out, engine=engine,
                                            **kwargs)
                    seconds = time.perf_counter() - start
                    failed = [o.error for o in outcomes if o.failed]
                    if failed:
                        raise SystemExit(f"{len(failed)} image(s) failed: {failed[0]}")
                    runs[label(engine, workers, threads)].append(seconds)
                    print(f"{label(engine, workers, threads)}, run {r + 1}: {seconds:.1f} s",
                          file=sys.stderr)

    print(f"{len(paths)} images ({mpix:.2f} MPix) from {args.data.name}, JPEG QF {args.qf}; "
          f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); torch {torch.__version__}; "
          f"median of {args.repeats} run(s)")
    if any(c[0] == "ray" for c in configs):
        print(f"Ray start-up (once, not in the times below): {ray_start:.1f} s")
    print()
    print("| engine | time (s) | images/s | MPix/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, times in runs.items():
        t = statistics.median(times)
        print(f"| {name} | {t:.1f} | {len(paths) / t:.2f} | {mpix / t:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"images": len(paths), "mpix": mpix, "qf": args.qf,
                                         "cpu": cpu_model(), "ray_start_s": ray_start,
                                         "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
