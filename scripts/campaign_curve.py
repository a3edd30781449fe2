#!/usr/bin/env python
"""Print a model's training campaign as one curve: validation gain at QF 10 and QF 40 (and
any other validated QF asked for) against the compute spent so far, GPU-minutes and
CPU-core-hours counted apart, over the stages of its lineage in order.

Each stage is given as LOG:DEVICE[:STAGE[:THREADS]]: a training log (log.jsonl), `gpu` or
`cpu`, the stage number inside that log when it holds several (default: every record), and
for CPU stages the threads the run used (default 1). A stage's compute is its log's
`elapsed_s` (the time of the training steps; validations not counted) times its threads.

    python scripts/campaign_curve.py configs/color.log.jsonl:gpu:1 \\
        configs/color.log.jsonl:cpu:2 configs/color-stage3.log.jsonl:gpu \\
        configs/color-stage4.log.jsonl:cpu --every 4
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    log: Path
    device: str  # "gpu" or "cpu"
    stage: int | None = None
    threads: int = 1

    @classmethod
    def parse(cls, text: str) -> Stage:
        parts = text.split(":")
        if len(parts) < 2 or parts[1] not in ("gpu", "cpu"):
            raise argparse.ArgumentTypeError(
                f"expected LOG:gpu|cpu[:STAGE[:THREADS]], got {text!r}")
        stage = int(parts[2]) if len(parts) > 2 and parts[2] else None
        threads = int(parts[3]) if len(parts) > 3 else 1
        return cls(Path(parts[0]), parts[1], stage, threads)

    def records(self) -> list[dict]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if self.stage is None or r.get("stage", 1) == self.stage]


def gain(record: dict, qf: str) -> str:
    v = record.get("val", {}).get(qf)
    return "-" if v is None else f"{v['restored'] - v['jpeg']:+.2f}"


def curve(stages: list[Stage], qfs: list[str], every: int = 1) -> list[str]:
    head = ["step", "stage", "device", "GPU-minutes so far", "CPU-core-hours so far",
            *[f"QF {q} gain (dB)" for q in qfs]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    gpu_min = cpu_h = 0.0
    for n, stage in enumerate(stages, 1):
        records = stage.records()
        vals = [r for r in records if r.get("val")]
        keep = [r for i, r in enumerate(vals) if i % every == every - 1 or r is vals[-1]]
        for r in keep:
            seconds = r.get("elapsed_s", 0.0)
            g = gpu_min + (seconds / 60 if stage.device == "gpu" else 0.0)
            c = cpu_h + (seconds * stage.threads / 3600 if stage.device == "cpu" else 0.0)
            lines.append("| " + " | ".join([
                str(n), f"{stage.log.name} {r.get('stage', 1)}", stage.device,
                f"{g:.1f}", f"{c:.2f}", *[gain(r, q) for q in qfs]]) + " |")
        last = max((r.get("elapsed_s", 0.0) for r in records), default=0.0)
        if stage.device == "gpu":
            gpu_min += last / 60
        else:
            cpu_h += last * stage.threads / 3600
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="+", type=Stage.parse,
                        help="LOG:gpu|cpu[:STAGE[:THREADS]], in the order of the lineage")
    parser.add_argument("--qfs", default="10,40", help="validated QFs to show (default 10,40)")
    parser.add_argument("--every", type=int, default=1, help="every Nth validation of a stage")
    args = parser.parse_args()
    for stage in args.stages:
        if not stage.log.is_file():
            parser.error(f"no such log: {stage.log}")
    print("\n".join(curve(args.stages, args.qfs.split(","), args.every)))


if __name__ == "__main__":
    main()
