#!/usr/bin/env bash
# gpu_train.sh: a short training run of both models on CUDA, then eval on CUDA (part of
# `meson test --suite cuda`). Exits 77 (meson's "skipped") when no CUDA device is usable.
set -u
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
data="${SGT_SHARED:-../shared}/data/tinyshakespeare.jsonl"
log=$("$SGT_TRAIN" --dataset "$data" --config nano --max_tokens 4096 --batch_size 8 --seq_len 32 --log_every 2 \
      --eval_every 8 --device cuda --progress false --output_dir "$out" 2>&1)
rc=$?
if grep -qE "no usable CUDA device|no CUDA backend|no CUDA device" <<<"$log"; then echo "skip: no CUDA device"; exit 77; fi
echo "$log" | tail -5
[ $rc -eq 0 ] || { echo "train --device cuda failed ($rc)"; exit 1; }
for f in dense/checkpoint.safetensors sparse/checkpoint.safetensors training_summary.json; do
  [ -s "$out/$f" ] || { echo "missing $out/$f"; exit 1; }
done
"$SGT_EVAL" --dataset "$data" --seq_len 32 --prompt_tokens 8 --decode_tokens 8 --device cuda --output_dir "$out" || exit 1
# checkpoints move between devices: evaluate the CUDA-trained models on the CPU too
"$SGT_EVAL" --dataset "$data" --seq_len 32 --prompt_tokens 8 --decode_tokens 8 --device cpu --output_dir "$out" >/dev/null || exit 1
echo "ok"
