#!/usr/bin/env bash
# test_dist.sh: data-parallel training (apps/dist.c, apps/dp.c) through the real train binary on
# the nano preset with gradient accumulation, dense and sparse:
#   - mpirun -np 2 logs the same loss at every step as one process with the same flags (1e-4
#     relative; the reduction differs from one process's only in float rounding), writes the same
#     files, and only rank 0 prints;
#   - the same with --zero 1 (optimizer state sharded), and one process through that path;
#   - stopped at step 6 by 2 ranks with --zero 1 and resumed by 1 process, and stopped by 1 and
#     resumed by 2, the curve continues the uninterrupted one;
#   - a global batch that does not split across the ranks is a one-line error;
#   - the classic GPT-2 (dropout, another architecture) trains on 2 ranks.
# Without MPI in the build (SGT_MPI=0): started as one of several ranks, train refuses.
# Env: SGT_TRAIN, SGT_SHARED, SGT_MPI (1/0). Skips (77) when mpirun is missing.
set -uo pipefail
W=$(mktemp -d /tmp/sgt-dist-XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
F=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config nano --max_tokens 3072 --batch_size 4 --seq_len 32
   --tokens_per_step 256 --warmup 2 --log_every 1 --eval_every 0 --eval_tokens 1024 --model both
   --progress false --threads 1)

if [[ ${SGT_MPI:-1} == 0 ]]; then
  OMPI_COMM_WORLD_SIZE=2 "$SGT_TRAIN" "${F[@]}" --output_dir "$W/x" > "$W/err" 2>&1
  rc=$?
  [[ $rc != 0 ]] && grep -q "no MPI" "$W/err" || { cat "$W/err"; bad "a build without MPI did not refuse 2 ranks (rc $rc)"; }
  exit $((fails > 0))
fi
command -v mpirun > /dev/null || { echo "SKIP: no mpirun (bash .ci/deps installs OpenMPI)"; exit 77; }
# OpenMPI's own allocations are not ours to chase: LeakSanitizer off for the ranks only
MPI=(mpirun --allow-run-as-root --oversubscribe -x SGT_SHARED -x OMP_WAIT_POLICY -x UBSAN_OPTIONS
     -x ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")

same_curve() { # reference, candidate, label: every logged step's loss within 1e-4 relative
  python3 - "$1" "$2" "$3" <<'PY' || bad "$3: the loss curve differs from one process's"
import json, sys
ref, got, label = sys.argv[1:]
worst = 0
for m in ("dense", "sparse"):
    a = json.load(open(f"{ref}/{m}/train_log.json"))["log"]
    b = json.load(open(f"{got}/{m}/train_log.json"))["log"]
    assert [e["step"] for e in a] == [e["step"] for e in b], (m, len(a), len(b))
    for x, y in zip(a, b):
        d = abs(x["loss"] - y["loss"]) / abs(x["loss"])
        worst = max(worst, d)
        assert d <= 1e-4, f"{m} step {x['step']}: {x['loss']} vs {y['loss']}"
print(f"{label}: {len(a)} steps per model, largest relative loss difference {worst:.2e}")
PY
}
files() { (cd "$1" && find . -type f ! -path './cache/*' | sort); }

"$SGT_TRAIN" "${F[@]}" --output_dir "$W/one" > "$W/one.log" 2>&1 || { cat "$W/one.log"; bad "one process failed"; }

"$SGT_TRAIN" "${F[@]}" --data_parallel on --zero 1 --output_dir "$W/dp1" > "$W/dp1.log" 2>&1 ||
  { cat "$W/dp1.log"; bad "one process through the data-parallel path failed"; }
same_curve "$W/one" "$W/dp1" "1 process through the data-parallel path (ZeRO-1)"

"${MPI[@]}" -np 2 --output-filename "$W/ranks" "$SGT_TRAIN" "${F[@]}" --output_dir "$W/two" > "$W/two.log" 2>&1 ||
  { cat "$W/two.log"; bad "mpirun -np 2 failed"; }
same_curve "$W/one" "$W/two" "2 ranks"
[[ "$(files "$W/one")" == "$(files "$W/two")" ]] || bad "2 ranks wrote other files than one process: $(files "$W/two")"
r1=$(find "$W/ranks" -path '*rank.1*' -type f -size +0 2>/dev/null)
[[ -z $r1 ]] || { cat $r1; bad "rank 1 printed"; }
grep -rq "data parallel over 2 ranks (MPI), ZeRO-0" "$W/ranks" || bad "rank 0 did not report the data-parallel setup"

"${MPI[@]}" -np 2 "$SGT_TRAIN" "${F[@]}" --zero 1 --output_dir "$W/zero" > "$W/zero.log" 2>&1 ||
  { cat "$W/zero.log"; bad "mpirun -np 2 --zero 1 failed"; }
grep -q "ZeRO-1" "$W/zero.log" || bad "--zero 1 did not shard"
same_curve "$W/one" "$W/zero" "2 ranks, ZeRO-1"

# interrupted at step 6 by 2 ranks (ZeRO-1), resumed by 1 process; and the other way round
"${MPI[@]}" -np 2 "$SGT_TRAIN" "${F[@]}" --zero 1 --stop_at_step 6 --output_dir "$W/r21" > "$W/r21.log" 2>&1 &&
  "$SGT_TRAIN" "${F[@]}" --resume --output_dir "$W/r21" >> "$W/r21.log" 2>&1 ||
  { cat "$W/r21.log"; bad "stop with 2 ranks, resume with 1 failed"; }
grep -q "resuming at step 6" "$W/r21.log" || bad "2 -> 1: did not resume at step 6"
same_curve "$W/one" "$W/r21" "stopped by 2 ranks (ZeRO-1), resumed by 1"
"$SGT_TRAIN" "${F[@]}" --stop_at_step 6 --output_dir "$W/r12" > "$W/r12.log" 2>&1 &&
  "${MPI[@]}" -np 2 "$SGT_TRAIN" "${F[@]}" --resume --output_dir "$W/r12" >> "$W/r12.log" 2>&1 ||
  { cat "$W/r12.log"; bad "stop with 1, resume with 2 ranks failed"; }
same_curve "$W/one" "$W/r12" "stopped by 1, resumed by 2 ranks"

"${MPI[@]}" -np 3 "$SGT_TRAIN" "${F[@]}" --output_dir "$W/three" > "$W/three.log" 2>&1 && bad "3 ranks on a batch of 4 ran"
grep -q -- "--batch_size 4 (the global micro-batch) does not split evenly across 3 ranks" "$W/three.log" ||
  { cat "$W/three.log"; bad "no clear error for a batch that does not split"; }

# a NaN on the ranks: one message (from rank 0), every rank stops, the last checkpoint is kept
N=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config nano --batch_size 4 --seq_len 32 --eval_every 0
   --eval_tokens 512 --model dense --progress false --threads 1 --log_every 1 --ckpt_every 2 --warmup 0)
"${MPI[@]}" -np 2 "$SGT_TRAIN" "${N[@]}" --max_tokens 4096 --lr 1e5 --grad_clip 1e12 --output_dir "$W/nan" \
  > "$W/nan.log" 2>&1 && bad "a diverging run exited 0"
[[ $(grep -c "train: dense: the loss is .*nan at step" "$W/nan.log") == 1 ]] ||
  { cat "$W/nan.log"; bad "a NaN did not give exactly one error line"; }
"$SGT_TRAIN" "${N[@]}" --max_tokens 4096 --resume --stop_at_step 3 --output_dir "$W/nan" > "$W/nan2.log" 2>&1
grep -q "resuming at step 2" "$W/nan2.log" || { cat "$W/nan2.log"; bad "the checkpoint before the NaN was not kept"; }

# another architecture (models/model.h): GPT-2 with dropout on 2 ranks trains into gpt2/, its loss
# falls (each rank draws its own masks, so the curve is not one process's: not compared)
G=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config gpt2-nano --max_tokens 4096 --batch_size 4 --seq_len 32
   --warmup 2 --lr 3e-3 --log_every 1 --eval_every 0 --progress false --threads 1)
"${MPI[@]}" -np 2 "$SGT_TRAIN" "${G[@]}" --output_dir "$W/gpt2" > "$W/gpt2.log" 2>&1 ||
  { cat "$W/gpt2.log"; bad "mpirun -np 2 --config gpt2-nano failed"; }
python3 - "$W/gpt2/gpt2/train_log.json" <<'PY' || bad "gpt2 on 2 ranks: the loss did not fall"
import json, sys
l = [e["loss"] for e in json.load(open(sys.argv[1]))["log"]]
assert len(l) == 32 and l[-1] < l[0] - 1, (len(l), l[0], l[-1])
print(f"gpt2-nano on 2 ranks: {len(l)} steps, loss {l[0]:.4f} -> {l[-1]:.4f}")
PY

# a rank killed mid-run: mpirun stops the others, the last checkpoint still resumes
"${MPI[@]}" -np 2 "$SGT_TRAIN" "${N[@]}" --max_tokens 1M --output_dir "$W/die" > "$W/die.log" 2>&1 &
job=$!
for _ in $(seq 300); do [[ -s $W/die/dense/train_state.safetensors ]] && break; sleep 0.1; done
victim=""
for pid in $(pgrep -f -- "--output_dir $W/die"); do
  tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$pid
done
if [[ -n $victim ]]; then
  kill -9 "$victim"
  for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  if kill -0 $job 2>/dev/null; then bad "the other rank kept running after rank 1 was killed"; kill -9 $job; fi
  wait $job && bad "mpirun exited 0 after a rank was killed"
  # (the resumed run is stopped once it has said where it resumes)
  "$SGT_TRAIN" "${N[@]}" --max_tokens 1M --resume --output_dir "$W/die" > "$W/die2.log" 2>&1 &
  job=$!
  for _ in $(seq 300); do grep -q "resuming at step" "$W/die2.log" && break; sleep 0.1; done
  kill -9 $job; wait $job 2>/dev/null
  grep -q "resuming at step" "$W/die2.log" || { cat "$W/die2.log"; bad "no good checkpoint after a rank died"; }
else
  bad "rank 1 of the run to kill was not found"; kill -9 $job; wait $job
fi

((fails == 0)) && echo "test_dist: all checks passed"
exit $((fails > 0))
