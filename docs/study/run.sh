#!/usr/bin/env bash
# docs/study/run.sh: the CPU study of docs/RESULTS.md, in priority order (each step resumable:
# run it again and finished runs are skipped). Usage: bash docs/study/run.sh OUT_DIR [BIN_DIR]
# BIN_DIR holds train and eval (default build/apps; copy them elsewhere to keep rebuilding).
# OpenBLAS 0.3.21 does not know this CPU (Sapphire Rapids) and falls back to its Prescott kernels;
# SKYLAKEX's are ~3x faster here and compute the same model (docs/BENCHMARKS.md).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: run.sh OUT_DIR [BIN_DIR]}
BIN=${2:-build/apps}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SKYLAKEX}
G=docs/study/tinystories-tiny.json
s() { python3 apps/study.py "$@" --bin "$BIN"; }
# 1. the headline: the seed's router, k = 4 of 8 blocks (16/32), seed 1 (trains the dense model)
s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=ste
# 2. the FLOP-matched dense baseline beside it (FFN width 4 x 64), same batches; re-evaluated
if [ ! -s "$OUT/tiny/runs/seed=1-top_k_blocks=4-variant=ste/dense_flop/checkpoint.safetensors" ]; then
  args=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["train"]))' \
    "$OUT/tiny/runs/seed=1-top_k_blocks=4-variant=ste/run.json")
  # shellcheck disable=SC2086
  "$BIN/train" $args --model dense_flop > "$OUT/tiny/runs/seed=1-top_k_blocks=4-variant=ste/train_flop.log" 2>&1 &&
    rm -f "$OUT/tiny/runs/seed=1-top_k_blocks=4-variant=ste/eval_results.json"
fi
s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=ste
# 3. the router variants and k = 2 of 8 (8/32), sharing seed 1's dense model
for r in balanced sigmoid; do s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=$r; done
s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=2-variant=ste
# 4. the second seed of the headline
s $G --out "$OUT/tiny" --only seed=2-top_k_blocks=4-variant=ste
# 5. the gap against training tokens (250k, 500k; 1M is step 1)
s docs/study/tinystories-tokens.json --out "$OUT/tokens"
# 6. the rest of the grid, as time allows
s $G --out "$OUT/tiny"
