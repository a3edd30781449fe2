#!/usr/bin/env python
"""Training throughput of a config on this machine: patches per second of training steps
for one process with all threads (fp32 and bf16 autocast) and for DDP processes with one
thread each (torchrun), interleaved and repeated. Run it on an idle machine.

    python scripts/training_throughput.py [--config configs/color.yaml] [--iterations 20]
        [--repeats 2]

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
            threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        prefix = [sys.executable, "-m", "fbcnn"]
        if processes > 1:
            prefix = [sys.executable, "-m", "torch.distributed.run",
                      f"--nproc_per_node={processes}", "--standalone", "-m", "fbcnn"]
        cmd = [*prefix, "train", "--config", config, "--output", str(out),
               "--iterations", str(iterations), "--set", "validation.limit=0",
               "--set", f"precision={precision}", "--set", f"threads={threads}",
               "--set", "data.workers=0"]
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
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    modes = [("fp32", 1, cores), ("bf16", 1, cores), ("fp32", cores, 1)]
    results: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for precision, processes, threads in modes:
            key = f"{precision}, {processes} process(es) x {threads} thread(s)"
            results.setdefault(key, []).append(
                measure(args.config, args.iterations, precision, processes, threads))
    print(f"{args.config}, {args.iterations} iterations per run, {args.repeats} runs each "
          f"(interleaved), {cores} CPUs:")
    for key, values in results.items():
        print(f"  {key}: {sum(values) / len(values):.1f} patches/s "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
