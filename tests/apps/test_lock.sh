#!/usr/bin/env bash
# test_lock.sh: one train per output directory (apps/lock.c).
#   - while another process holds <output_dir>/.lock, train refuses with a one-line error naming
#     the directory and the holder's pid, exits non-zero, and leaves the directory's files as they
#     were (a finished run's checkpoint is not touched);
#   - once the holder is gone (killed: the kernel drops the lock), train runs and resumes there;
#   - eval, run again and again on the directory while train checkpoints every step, always
#     loads a whole checkpoint and succeeds;
#   - a SIGKILLed train leaves no stale lock behind: the next one resumes.
# Env: SGT_TRAIN, SGT_EVAL, SGT_SHARED. Skips (77) without flock(1) or python3.
set -uo pipefail
command -v flock > /dev/null && command -v python3 > /dev/null || { echo "SKIP: no flock(1) or python3"; exit 77; }
W=$(mktemp -d /tmp/sgt-lock-XXXXXX)
trap 'kill $holder 2>/dev/null; rm -rf "$W"' EXIT
holder=0
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
F=(--dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --config nano --max_tokens 2048 --batch_size 4 --seq_len 32
   --warmup 2 --log_every 1 --eval_every 0 --eval_tokens 1024 --model dense --progress false --threads 1
   --output_dir "$W/o")

"$SGT_TRAIN" "${F[@]}" > "$W/log1" 2>&1 || { cat "$W/log1"; bad "the first run failed"; }
sum_before=$(cd "$W/o" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 sha256sum)

# another holder of the lock (flock(1), as a second train would)
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); time.sleep(60)' "$W/o/.lock" &
holder=$!
sleep 0.5
"$SGT_TRAIN" "${F[@]}" --resume true --max_tokens 4096 > "$W/log2" 2>&1
rc=$?
[[ $rc != 0 ]] || bad "train ran while $W/o/.lock was held (rc 0)"
[[ $(grep -c "^train:" "$W/log2") == 1 ]] || { cat "$W/log2"; bad "the refusal is not one line"; }
grep -q "in use by another train" "$W/log2" && grep -q -- "--output_dir" "$W/log2" ||
  { cat "$W/log2"; bad "the refusal does not name the flag and say why"; }
sum_after=$(cd "$W/o" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 sha256sum)
[[ "$sum_before" == "$sum_after" ]] || bad "the refused run changed the output directory's files"

kill $holder; wait $holder 2>/dev/null
"$SGT_TRAIN" "${F[@]}" --resume true --max_tokens 4096 > "$W/log3" 2>&1 ||
  { cat "$W/log3"; bad "train did not run once the holder was gone"; }

# eval reading while train writes: train checkpoints every step (write to a temporary, fsync,
# rename), eval runs again and again on the same directory; every eval must load a whole
# checkpoint and succeed
"$SGT_TRAIN" "${F[@]}" --resume true --max_tokens 20000 --ckpt_every 1 > "$W/log5" 2>&1 &
t=$!
evals=0
while kill -0 $t 2>/dev/null; do
  "$SGT_EVAL" --dataset "$SGT_SHARED/data/tinyshakespeare.jsonl" --output_dir "$W/o" --eval_tokens 512 \
    --decode_tokens 2 --prompt_tokens 2 --threads 1 > "$W/elog" 2>&1 ||
    { kill -0 $t 2>/dev/null && { cat "$W/elog"; bad "eval failed while train was writing $W/o"; break; }; }
  evals=$((evals + 1))
done
wait $t || { cat "$W/log5"; bad "train failed while eval was reading"; }
((evals >= 2)) || bad "only $evals eval(s) ran while train wrote (the overlap test did not overlap)"
echo "evals during training: $evals"

# SIGKILL mid-run: no stale lock
"$SGT_TRAIN" "${F[@]}" --max_tokens 400000 --output_dir "$W/k" > "$W/log4" 2>&1 &
t=$!
sleep 2
kill -9 $t 2>/dev/null; wait $t 2>/dev/null
flock -n "$W/k/.lock" true || bad "a SIGKILLed train left $W/k/.lock held"

((fails == 0)) && echo "ok: lock refuses a second train, leaves the files alone, and dies with its holder"
exit $((fails > 0))
