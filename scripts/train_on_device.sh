#!/usr/bin/env bash
# Train the shipped `color` and `gray` recipes side by side on a lent GPU machine for a fixed
# time, then copy the weights and logs to $OUT. Run from the repository root, with the
# training data packed into .gpudata/ (scripts/pack_training_data.py) and carried along:
#   MINUTES=8 COLOR_WORKERS=9 GRAY_WORKERS=5 FBCNN_GIT_COMMIT=<sha> scripts/train_on_device.sh
# The configs are the committed ones; only the data root, the worker count and the
# time-based schedule are overridden (all recorded in the weights' provenance).
set -u
MINUTES=${MINUTES:-8}
OUT=${OUT:-out/device}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/fbcnn-device
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import torch, PIL, yaml, click, safetensors, tqdm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1
pids=()
for name in color gray; do
  workers_var=${name^^}_WORKERS
  sed 's#\.\./shared/datasets#.gpudata#g' "configs/$name.yaml" > "/tmp/fbcnn-device/$name.yaml"
  python3 -m fbcnn train --config "/tmp/fbcnn-device/$name.yaml" \
    --output "/tmp/fbcnn-device/runs/$name" --minutes "$(python3 -c "print($MINUTES + 0.5)")" \
    --set "data.workers=${!workers_var:-4}" --set "optim.schedule_minutes=$MINUTES" \
    --set "validation.every=${VAL_EVERY:-2000}" \
    > "/tmp/fbcnn-device/$name.out" 2>&1 &
  pids+=($!)
done
# report the first minute, so a broken start shows at once
sleep "${FIRST_LOOK:-60}"
for name in color gray; do echo "== $name"; tail -c 600 "/tmp/fbcnn-device/$name.out"; tail -n 2 "/tmp/fbcnn-device/runs/$name/log.jsonl" 2>/dev/null; done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for name in color gray; do
  mkdir -p "$OUT/$name"
  cp /tmp/fbcnn-device/runs/$name/{best.safetensors,model.safetensors,log.jsonl} "$OUT/$name/" 2>/dev/null
  tail -c 4000 "/tmp/fbcnn-device/$name.out" | tr '\r' '\n' | tail -n 30 > "$OUT/$name/train.out"
  echo "== $name"; tail -n 5 "$OUT/$name/train.out"
  grep val_gain "$OUT/$name/log.jsonl" | tail -n 2
done
exit $status
