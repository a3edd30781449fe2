#!/usr/bin/env bash
# One training stage on a lent GPU machine for a fixed time, writing straight to $OUT
# (weights, log; last.pt is too big to come back and stays there):
#   CONFIG=configs/gray-stage2.yaml MINUTES=2 WORKERS=12 FBCNN_GIT_COMMIT=<sha> \
#     scripts/train_stage_on_device.sh [--set key=value ...]
# Data is read from .gpudata/ (a packed copy of ../shared/datasets, carried along).
set -u
MINUTES=${MINUTES:-2}
OUT=${OUT:-out/device}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/fbcnn-device
name=$(basename "$CONFIG" .yaml)
sed 's#\.\./shared/datasets#.gpudata#g' "$CONFIG" > "/tmp/fbcnn-device/$name.yaml"
python3 -m fbcnn train --config "/tmp/fbcnn-device/$name.yaml" --output "$OUT/$name" \
  --minutes "$(python3 -c "print($MINUTES + 0.4)")" --set "data.workers=${WORKERS:-12}" \
  --set "optim.schedule_minutes=$MINUTES" "$@" 2>&1 | tr '\r' '\n' | grep -v 'it/s' | tail -n 20
rm -f "$OUT/$name/last.pt"
grep val_gain "$OUT/$name/log.jsonl" | tail -n 2
