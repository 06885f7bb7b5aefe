#!/usr/bin/env bash
# docs/study/run.sh: the CPU study of docs/RESULTS.md, in two lanes of priority order (each step
# resumable: run it again and finished runs are skipped). Usage: bash docs/study/run.sh OUT_DIR [BIN_DIR]
# BIN_DIR holds train and eval (default build/apps; copy them elsewhere to keep rebuilding).
# OpenBLAS 0.3.21 does not know this CPU (Sapphire Rapids) and falls back to its Prescott kernels;
# SKYLAKEX's are ~3x faster here and compute the same model (docs/BENCHMARKS.md).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${1:?usage: run.sh OUT_DIR [BIN_DIR]}
BIN=${2:-build/apps}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SKYLAKEX}
# one thread, sleeping between kernels: the 2 cores are shared (two studies, or builds, at once)
export OMP_WAIT_POLICY=passive
G=docs/study/tinystories-tiny.json
s() { python3 apps/study.py "$@" --bin "$BIN"; }
flop() { # GRID OUT RUN: the FLOP-matched dense baseline beside a run (FFN width k x 64), same batches;
  # the run is then re-evaluated with it
  local d="$2/runs/$3"
  if [ -s "$d/training_summary.json" ] && [ ! -s "$d/dense_flop/checkpoint.safetensors" ]; then
    local args
    args=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["train"]))' "$d/run.json")
    # shellcheck disable=SC2086
    "$BIN/train" $args --model dense_flop > "$d/train_flop.log" 2>&1 && rm -f "$d/eval_results.json"
  fi
  s "$1" --out "$2" --only "$3"
}
lane_a() {
  # 1. the headline: the seed's router, k = 4 of 8 blocks (16/32), seed 1 (trains its dense model)
  s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=ste
  # 2. the balanced router beside it (sharing seed 1's dense model), then the FLOP-matched baseline
  s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=balanced
  flop $G "$OUT/tiny" seed=1-top_k_blocks=4-variant=ste
  s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=4-variant=sigmoid
  for r in balanced sigmoid; do s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=2-variant=$r; done
  # 3. a third seed of the headline (dense and sparse): the two first disagree on the dense model
  s docs/study/tinystories-seed3.json --out "$OUT/seed3"
}
lane_b() {
  # 1. the headline's second seed; k = 2 of 8 (8/32) with seed 1's dense; the gap against tokens
  s $G --out "$OUT/tiny" --only seed=2-top_k_blocks=4-variant=ste
  s $G --out "$OUT/tiny" --only seed=1-top_k_blocks=2-variant=ste
  s docs/study/tinystories-tokens.json --out "$OUT/tokens"
  for r in balanced sigmoid; do s $G --out "$OUT/tiny" --only seed=2-top_k_blocks=4-variant=$r; done
  flop $G "$OUT/tiny" seed=2-top_k_blocks=4-variant=ste
  for r in ste balanced sigmoid; do s $G --out "$OUT/tiny" --only seed=2-top_k_blocks=2-variant=$r; done
}
# the two lanes run at once (one thread each) and touch different runs
lane_a > "$OUT/lane_a.log" 2>&1 &
lane_b > "$OUT/lane_b.log" 2>&1 &
wait
# 4. seeds 4 and 5 of the headline with their FLOP-matched baselines, one seed per lane
S45=docs/study/tinystories-seeds45.json
for n in 4 5; do
  { s $S45 --out "$OUT/seeds45" --only seed=$n; flop $S45 "$OUT/seeds45" seed=$n; } > "$OUT/seed$n.log" 2>&1 &
done
wait
# 5. the headline at 2M tokens (5.2 epochs of the training split), seeds 1 and 2, one seed per lane
for n in 1 2; do
  s docs/study/tinystories-2m.json --out "$OUT/2m" --only seed=$n > "$OUT/2m-seed$n.log" 2>&1 &
done
wait
# the table of every finished run
s $G --out "$OUT/tiny" --dry_run > /dev/null
