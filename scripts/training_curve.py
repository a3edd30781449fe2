#!/usr/bin/env python
"""Print the validation curve of a training log as a Markdown table: per validation, the
stage, iteration, patches, training time, and per QF the gain over the JPEG (dB), the mean
predicted QF and the QF sensitivity (PSNR with the true QF fed minus with QF + 40 fed).

    python scripts/training_curve.py configs/color.log.jsonl [--every 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(path: Path, every: int = 1) -> list[str]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("val")]
    if not records:
        return [f"no validation records in {path}"]
    qfs = list(records[0]["val"])
    head = ["stage", "iteration", "patches", "training time (min)",
            *[f"QF {q}: gain / pred. QF / sens." for q in qfs]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keep = [r for i, r in enumerate(records) if i % every == every - 1 or r is records[-1]]
    for r in keep:
        cells = [str(r.get("stage", 1)), str(r["iteration"]), f"{r.get('patches', 0):,}",
                 f"{r.get('elapsed_s', 0) / 60:.1f}"]
        for q in qfs:
            v = r["val"].get(q)
            if v is None:
                cells.append("-")
                continue
            sens = v.get("qf_sensitivity_db")
            cells.append(f"{v['restored'] - v['jpeg']:+.2f} / {v['predicted_qf']:.0f} / "
                         + ("-" if sens is None else f"{sens:+.2f}"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--every", type=int, default=1, help="every Nth validation")
    args = parser.parse_args()
    print("\n".join(curve(args.log, args.every)))


if __name__ == "__main__":
    main()
