#!/usr/bin/env bash
# dist_scaling.sh: the cost and the gain of data parallelism (apps/dist.c), in one run, alternating.
#   bench/dist_scaling.sh cpu  [BUILD] [REPS]  nano... tiny preset on the CPU: 1 process against
#                                           mpirun -np 2 (same global batch), tokens/s each
#   bench/dist_scaling.sh cuda [BUILD] [REPS]  one GPU: the plain path against --data_parallel on
#                                           (flat buffer, NCCL reduce-scatter/all-gather in the loop)
# Prints the median tokens/s of each arm over REPS (default 3) alternating runs and their ratio.
# Env: SGT_SHARED (default ../shared), SGT_DIST_CONFIG (default tiny), SGT_DIST_TOKENS.
set -euo pipefail
mode="${1:-cpu}"; build="${2:-build}"; reps="${3:-3}"
cd "$(dirname "$0")/.."
export SGT_SHARED="${SGT_SHARED:-$PWD/../shared}" OMP_WAIT_POLICY=passive
cfg="${SGT_DIST_CONFIG:-tiny}"
W=$(mktemp -d /tmp/sgt-distbench-XXXXXX); trap 'rm -rf "$W"' EXIT
F=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config "$cfg" --model dense --batch_size 8
   --eval_every 0 --eval_tokens 1024 --log_every 1000 --progress false --warmup 2)
case "$mode" in
  cpu)  tokens="${SGT_DIST_TOKENS:-32k}"; F+=(--device cpu --max_tokens "$tokens")
        A=("$build/apps/train" --threads "$(nproc)")
        B=(mpirun --allow-run-as-root --oversubscribe -np 2 -x SGT_SHARED -x OMP_WAIT_POLICY "$build/apps/train")
        na="1 process, $(nproc) threads"; nb="2 ranks (MPI), $(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 )) threads each" ;;
  cuda) tokens="${SGT_DIST_TOKENS:-2M}"; F+=(--device cuda --max_tokens "$tokens" --batch_size 32)
        A=("$build/apps/train"); B=("$build/apps/train" --data_parallel on)
        na="1 GPU, plain"; nb="1 GPU, data-parallel path (NCCL)" ;;
  *) echo "dist_scaling.sh: mode '$mode' is not cpu or cuda" >&2; exit 2 ;;
esac
tps() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['models']['dense']['tokens_per_s'])" "$1"; }
ta=(); tb=()
"${A[@]}" "${F[@]}" --max_tokens 4096 --output_dir "$W/warm" > "$W/warm.log" 2>&1 || { tail -5 "$W/warm.log"; exit 1; } # the token cache, once
for ((i = 0; i < reps; i++)); do
  rm -rf "$W/a" "$W/b"; mkdir -p "$W/a" "$W/b"; cp -r "$W/warm/cache" "$W/a/"; cp -r "$W/warm/cache" "$W/b/"
  "${A[@]}" "${F[@]}" --output_dir "$W/a" > "$W/a.log" 2>&1 || { tail -5 "$W/a.log"; exit 1; }
  "${B[@]}" "${F[@]}" --output_dir "$W/b" > "$W/b.log" 2>&1 || { tail -5 "$W/b.log"; exit 1; }
  ta+=("$(tps "$W/a/training_summary.json")"); tb+=("$(tps "$W/b/training_summary.json")")
  echo "run $((i + 1)): ${ta[-1]} vs ${tb[-1]} tokens/s"
done
python3 - "$na" "$nb" "$cfg" "$tokens" "${ta[*]}" "${tb[*]}" <<'PY'
import statistics as st, sys
na, nb, cfg, tokens, a, b = sys.argv[1:]
a = [float(x) for x in a.split()]; b = [float(x) for x in b.split()]
ma, mb = st.median(a), st.median(b)
print(f"preset {cfg}, {tokens} tokens per run, {len(a)} alternating runs, median tokens/s")
print(f"  {na}: {ma:.0f}")
print(f"  {nb}: {mb:.0f}")
print(f"  ratio ({nb} / {na}): {mb / ma:.3f}")
PY
