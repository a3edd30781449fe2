#!/usr/bin/env python
"""Training throughput of a config on this machine: patches per second of training steps
for one process with all threads (fp32 and bf16 autocast) and for DDP processes with one
thread each (torchrun), interleaved and repeated. Run it on an idle machine.

    python scripts/probes/training_throughput.py [--config configs/color.yaml] [--iterations 20]
        [--repeats 2] [--precisions fp32,bf16] [--set data.batch_size=16 ...]

bf16 is measured only where asked for or where the CPU has native bf16 (AMX / AVX512-BF16):
elsewhere it is emulated and an order of magnitude slower (docs/training.md).

Each measurement is a fresh `fbcnn train` run of N iterations (validation off) in a
temporary folder; the figure is iterations x batch x processes / training seconds, as the
weights' metadata records them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors import safe_open


def measure(config: str, iterations: int, precision: str, processes: int,
            threads: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        prefix = [sys.executable, "-m", "fbcnn"]
        if processes > 1:
            prefix = [sys.executable, "-m", "torch.distributed.run",
                      f"--nproc_per_node={processes}", "--standalone", "-m", "fbcnn"]
        cmd = [*prefix, "train", "--config", config, "--output", str(out),
               "--iterations", str(iterations), "--set", "validation.limit=0",
               "--set", f"precision={precision}", "--set", f"threads={threads}",
               "--set", "data.workers=0", *[a for o in overrides for a in ("--set", o)]]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        with safe_open(str(out / "model.safetensors"), "pt") as f:
            meta = f.metadata()
        stage = json.loads(meta["fbcnn.provenance"])[-1]
        batch = stage["config"]["data"]["batch_size"]
        return stage["iterations"] * batch * processes / float(stage["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/color.yaml")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default=None,
                        help="comma-separated (default: fp32, plus bf16 on native-bf16 CPUs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every run")
    args = parser.parse_args()
    from fbcnn.device import cpu_has_native_bf16

    cores = os.cpu_count() or 1
    precisions = (args.precisions.split(",") if args.precisions
                  else ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"])
    modes = [(p, 1, cores) for p in precisions] + [("fp32", cores, 1)]
    results: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for precision, processes, threads in modes:
            key = f"{precision}, {processes} process(es) x {threads} thread(s)"
            results.setdefault(key, []).append(
                measure(args.config, args.iterations, precision, processes, threads,
                        args.overrides))
    print(f"{args.config} {' '.join(args.overrides)}, {args.iterations} iterations per run, "
          f"{args.repeats} runs each (interleaved), {cores} CPUs:")
    for key, values in results.items():
        print(f"  {key}: {sum(values) / len(values):.1f} patches/s "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
