#!/usr/bin/env bash
# test_faults.sh: crash and disk-full safety of every file train and eval write, and exact resume.
# faultshim.c (LD_PRELOADed) stops or fails one chosen file operation (fwrite, fputc, fflush,
# fsync, fclose, rename) of a run resumed from step 2 of 8 (dense and SGT, gradient accumulation
# of 2 micro-batches, a checkpoint every 2 steps):
#   - SIGKILL at every rename and at spread points of every other kind of operation: the
#     directory resumes (no flag but --resume) to final checkpoints byte-identical to an
#     uninterrupted run's, with the same logged losses, gradient norms and learning rates;
#   - SIGINT at chosen points: train finishes the step, checkpoints, exits 130, and resumes exactly;
#   - ENOSPC and EIO from a point on (a full disk, a failing one): exit 1 with one line naming the
#     file and the error, no temporary left behind, and the directory still resumes exactly;
#   - a kill or a full disk while the token cache is written: the next run rebuilds it;
#   - eval on a full disk: one line naming its file, the earlier eval_results.json unchanged;
#   - a checkpoint without any training state is refused, not overwritten by a fresh start.
# Env: SGT_TRAIN, SGT_EVAL, SGT_SHARED, SGT_FAULTSHIM. Skips (77) without the shim or python3.
set -uo pipefail
[[ -n ${SGT_FAULTSHIM:-} && -f $SGT_FAULTSHIM ]] || { echo "SKIP: no fault shim"; exit 77; }
command -v python3 > /dev/null || { echo "SKIP: no python3"; exit 77; }
W=$(mktemp -d /tmp/sgt-faults-XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0 trials=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
F=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config nano --max_tokens 2048 --batch_size 4 --seq_len 32
   --tokens_per_step 256 --warmup 2 --log_every 1 --eval_every 0 --eval_tokens 1024 --ckpt_every 2
   --model both --progress false --threads 1)
TR=("$SGT_TRAIN" "${F[@]}")
train() { "${TR[@]}" "$@"; }
faulty() { # faulty MODE OPS N train-or-eval args...: one run under the shim
  local mode=$1 ops=$2 n=$3; shift 3
  env SGT_FAULT="$mode" SGT_FAULT_OPS="$ops" SGT_FAULT_AT="$n" SGT_FAULT_OUT="$W/count" LD_PRELOAD="$SGT_FAULTSHIM" "$@"
}
# every logged step of both models: step, tokens, loss, grad_norm, lr, exactly as written
curve() {
  python3 - "$1" << 'PY'
import json, sys
for m in ("dense", "sparse"):
    for e in json.load(open(f"{sys.argv[1]}/{m}/train_log.json"))["log"]:
        print(m, *(repr(e[k]) for k in ("step", "tokens", "loss", "grad_norm", "lr")))
PY
}
# the directory equals the uninterrupted reference: the curve and the final weights, bit for bit
same_as_ref() {
  local d=$1 what=$2
  [[ "$(curve "$d")" == "$ref_curve" ]] || { diff <(echo "$ref_curve") <(curve "$d") | head -5; bad "$what: the loss curve differs from the uninterrupted run's"; return; }
  for m in dense sparse; do
    cmp -s "$W/ref/$m/checkpoint.safetensors" "$d/$m/checkpoint.safetensors" ||
      bad "$what: the final $m weights differ from the uninterrupted run's"
  done
}
resume_ok() { # resume_ok DIR WHAT: a plain --resume finishes the run and equals the reference
  train --output_dir "$1" --resume true > "$W/resume.log" 2>&1 || { tail -3 "$W/resume.log"; bad "$2: --resume failed"; return; }
  same_as_ref "$1" "$2"
}

train --output_dir "$W/ref" > "$W/ref.log" 2>&1 || { cat "$W/ref.log"; echo "FAIL: the reference run failed"; exit 1; }
ref_curve=$(curve "$W/ref")
[[ $(echo "$ref_curve" | wc -l) == 16 ]] || bad "the reference logged $(echo "$ref_curve" | wc -l) steps, not 16"
train --output_dir "$W/base" --stop_at_step 2 > "$W/base.log" 2>&1 || { cat "$W/base.log"; echo "FAIL: the base run failed"; exit 1; }
fresh() { rm -rf "$W/t"; cp -a "$W/base" "$W/t"; }
fresh; resume_ok "$W/t" "--stop_at_step 2, then --resume"

# how many operations of each kind the resumed run does
declare -A count
for op in fwrite fputc fflush fsync fclose rename; do
  fresh
  faulty count "$op" 0 "${TR[@]}" --output_dir "$W/t" --resume true > /dev/null 2>&1 || bad "the counting run ($op) failed"
  count[$op]=$(cat "$W/count")
done
echo "operations in the resumed run: $(for op in "${!count[@]}"; do printf '%s %s ' "$op" "${count[$op]}"; done)"
spread() { # spread N K: up to K indices from 1 to N, evenly spread, ends included
  python3 -c 'import sys; n, k = int(sys.argv[1]), int(sys.argv[2]); print(*sorted({1 + (n - 1) * j // max(k - 1, 1) for j in range(k)}) if n else "")' "$1" "$2"
}

# SIGKILL (fewer points under ASan, where each run is slower)
sanitized=$(ldd "$SGT_TRAIN" 2> /dev/null | grep -c libasan)
for op in rename fsync fclose fflush fputc fwrite; do
  k=5; [[ $op == rename ]] && k=${count[rename]}
  ((sanitized)) && { k=2; [[ $op == rename ]] && k=8; }
  for n in $(spread "${count[$op]}" $k); do
    fresh
    faulty kill "$op" "$n" "${TR[@]}" --output_dir "$W/t" --resume true > "$W/run.log" 2>&1
    rc=$?
    trials=$((trials + 1))
    [[ $rc == 137 ]] || { bad "SIGKILL at $op #$n: train exited $rc, not killed"; continue; }
    resume_ok "$W/t" "SIGKILL at $op #$n"
  done
done
echo "SIGKILL trials: $trials"

# SIGINT: the step finishes, is checkpointed, exit 130
for n in 1 $((count[fwrite] / 2)) ${count[fwrite]}; do
  fresh
  faulty sigint fwrite "$n" "${TR[@]}" --output_dir "$W/t" --resume true > "$W/run.log" 2>&1
  rc=$?
  if ((n == count[fwrite])); then # the last write of the last step: nothing is left to interrupt
    [[ $rc == 0 ]] || bad "SIGINT at the last fwrite: exit $rc, not 0 (the run was complete)"
    same_as_ref "$W/t" "SIGINT at the last fwrite"
    continue
  fi
  if [[ $rc != 130 ]]; then tail -3 "$W/run.log"; bad "SIGINT at fwrite #$n: exit $rc, not 130"; continue; fi
  grep -q "interrupted (SIGINT) after step" "$W/run.log" || { tail -3 "$W/run.log"; bad "SIGINT at fwrite #$n: no message"; }
  resume_ok "$W/t" "SIGINT at fwrite #$n"
done

# a checkpoint without any training state: refused in one line, the checkpoint untouched
fresh
rm -f "$W/t/dense/train_state"*.safetensors
sum=$(sha256sum "$W/t/dense/checkpoint.safetensors")
train --output_dir "$W/t" --resume true > "$W/run.log" 2>&1
rc=$?
[[ $rc == 1 ]] && grep -q "resume is impossible\|has no training state beside it" "$W/run.log" ||
  { tail -2 "$W/run.log"; bad "a checkpoint without its state: exit $rc, no clear refusal"; }
[[ "$(sha256sum "$W/t/dense/checkpoint.safetensors")" == "$sum" ]] || bad "a checkpoint without its state was overwritten"

# ENOSPC and EIO from one operation on
for spec in "enospc rename 1" "enospc rename $((count[rename] / 2))" "enospc fwrite $((count[fwrite] / 3))" \
            "enospc fsync $((count[fsync] / 2))" "enospc fclose ${count[fclose]}" "enospc fflush 2" \
            "eio fwrite $((count[fwrite] / 2))" "eio fsync 1"; do
  read -r mode op n <<< "$spec"
  fresh
  faulty "$mode" "$op" "$n" "${TR[@]}" --output_dir "$W/t" --resume true > "$W/run.log" 2>&1
  rc=$?
  msg=$([[ $mode == enospc ]] && echo "No space left on device" || echo "Input/output error")
  if [[ $rc != 1 ]]; then tail -3 "$W/run.log"; bad "$spec: exit $rc, not 1"; continue; fi
  last=$(tail -1 "$W/run.log")
  [[ $last == "train: $W/t/"*"$msg"* ]] || bad "$spec: the error line does not name the file and '$msg': $last"
  left=$(find "$W/t" -name '*.tmp.*' | head -1)
  [[ -z $left ]] || bad "$spec: a temporary is left behind: $left"
  resume_ok "$W/t" "$spec"
done

# the token cache: killed or out of space while it is written, rebuilt by the next run
for spec in "kill fwrite 1" "kill rename 1" "enospc fwrite 2"; do
  read -r mode op n <<< "$spec"
  rm -rf "$W/c"
  faulty "$mode" "$op" "$n" "${TR[@]}" --output_dir "$W/c" > "$W/run.log" 2>&1
  rc=$?
  [[ $rc != 0 ]] || bad "token cache, $spec: the run did not fail"
  [[ $mode != enospc ]] || grep -q "token_cache.*No space left on device" "$W/run.log" ||
    { tail -2 "$W/run.log"; bad "token cache, $spec: no clear error"; }
  train --output_dir "$W/c" > "$W/run.log" 2>&1 || { tail -3 "$W/run.log"; bad "token cache, $spec: the next run failed"; continue; }
  same_as_ref "$W/c" "token cache, $spec"
done

# eval on a full disk: its earlier results stay whole
E=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --output_dir "$W/ref" --eval_tokens 512 --decode_tokens 2
   --prompt_tokens 2 --threads 1)
"$SGT_EVAL" "${E[@]}" > "$W/eval.log" 2>&1 || { tail -3 "$W/eval.log"; bad "eval failed"; }
before=$(sha256sum "$W/ref/eval_results.json")
for n in 1 2 3; do # loss_curves.svg, block_heatmap.svg, eval_results.json (then report.html)
  faulty enospc rename "$n" "$SGT_EVAL" "${E[@]}" > "$W/eval.log" 2> "$W/eval.err"
  rc=$?
  last=$(tail -1 "$W/eval.err")
  [[ $rc == 1 && $last == "eval: $W/ref/"*"No space left on device" ]] || bad "eval, ENOSPC at rename #$n: exit $rc, $last"
  [[ "$(sha256sum "$W/ref/eval_results.json")" == "$before" ]] || bad "eval, ENOSPC at rename #$n: eval_results.json changed"
done

echo "faulted runs: $((trials + 3 + 8 + 3 + 3)), failures: $fails"
((fails == 0))
