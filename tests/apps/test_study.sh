#!/usr/bin/env bash
# test_study.sh: apps/study.py end to end on a two-run nano grid: both runs train and evaluate,
# a second call skips both, a deleted eval_results.json is evaluated again without training,
# a run interrupted in training (summary gone) resumes with --resume, --parallel_models trains
# the same models in two lanes, a changed grid under the same --out is refused, and a bad grid
# file is a one-line error. Env: SGT_STUDY, SGT_BIN, SGT_SHARED.
set -uo pipefail
W=$(mktemp -d /tmp/sgt-study-XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
study() { python3 "$SGT_STUDY" "$@" --bin "$SGT_BIN" > "$W/out.log" 2>&1; }
cat > "$W/grid.json" <<JSON
{"common": {"dataset": "$SGT_SHARED/data/tinyshakespeare.jsonl", "seq_len": 32, "threads": 1, "eval_tokens": 512},
 "train": {"config": "nano", "batch_size": 4, "log_every": 1, "eval_every": 0, "warmup": 2, "lr": 3e-3, "max_tokens": 1024},
 "eval": {"prompt_tokens": 8, "decode_tokens": 8},
 "axes": {"seed": [1, 2]}}
JSON
R="$W/out/runs"

study "$W/grid.json" --out "$W/out" || { cat "$W/out.log"; bad "first call failed"; }
grep -q "2 runs: 2 ran, 0 skipped, 0 failed" "$W/out.log" || { cat "$W/out.log"; bad "first call: not 2 ran"; }
rows=$(grep -c '^| [12] |' "$W/out/results.md" 2>/dev/null)
[[ $rows == 2 ]] || bad "results.md has $rows rows, expected 2"
for f in results.json gap_vs_tokens.svg utilisation.svg; do [[ -s "$W/out/$f" ]] || bad "no $f"; done
python3 - "$W/out/results.json" <<'PY' || bad "results.json rows lack a perplexity, gap or interval"
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 2 and {r["point"]["seed"] for r in rows} == {1, 2}
for r in rows:
    assert r["dense_ppl"] > 1 and r["sparse_ppl"] > 1 and r["gap"] is not None
    assert r["gap_ci"][0] <= r["gap"] <= r["gap_ci"][1]
PY

# a second call: both finished, nothing runs (the logs do not grow)
sz=$(cat "$R"/*/train.log "$R"/*/eval.log | wc -c)
study "$W/grid.json" --out "$W/out" || bad "second call failed"
grep -q "2 runs: 0 ran, 2 skipped, 0 failed" "$W/out.log" || { cat "$W/out.log"; bad "second call: not 2 skipped"; }
[[ $(cat "$R"/*/train.log "$R"/*/eval.log | wc -c) == "$sz" ]] || bad "the second call ran something"

# eval lost: only that run is evaluated again, without training
rm "$R/seed=2/eval_results.json"
tsz=$(wc -c < "$R/seed=2/train.log")
study "$W/grid.json" --out "$W/out" || bad "third call failed"
grep -q "2 runs: 1 ran, 1 skipped, 0 failed" "$W/out.log" || { cat "$W/out.log"; bad "third call: not 1 ran 1 skipped"; }
grep -q "seed=2: eval:" "$W/out.log" || bad "seed=2 was not evaluated again"
grep -q "seed=2: train" "$W/out.log" && bad "seed=2 was trained again"
[[ $(wc -c < "$R/seed=2/train.log") == "$tsz" ]] || bad "seed=2's train.log grew"
[[ -s "$R/seed=2/eval_results.json" ]] || bad "seed=2 has no eval_results.json again"

# training interrupted (no summary, checkpoints there): resumed with --resume, then evaluated
rm "$R/seed=1/eval_results.json" "$R/seed=1/training_summary.json"
study "$W/grid.json" --out "$W/out" || { cat "$W/out.log"; bad "fourth call failed"; }
grep -q "seed=1: train (resumed):.*--resume" "$W/out.log" || { cat "$W/out.log"; bad "seed=1 not resumed"; }
[[ -s "$R/seed=1/training_summary.json" && -s "$R/seed=1/eval_results.json" ]] || bad "seed=1 not finished"

# killed while training the second model: the summary names only the first, so it resumes too
python3 - "$R/seed=1/training_summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); del s["models"]["sparse"]; json.dump(s, open(sys.argv[1], "w"))
PY
rm "$R/seed=1/eval_results.json"
study "$W/grid.json" --out "$W/out" || { cat "$W/out.log"; bad "fifth call failed"; }
grep -q "seed=1: train (resumed):" "$W/out.log" || { cat "$W/out.log"; bad "a half-trained seed=1 was not resumed"; }

# the grid changed under the same --out: refused, exit non-zero
sed 's/"lr": 3e-3/"lr": 1e-3/' "$W/grid.json" > "$W/grid2.json"
study "$W/grid2.json" --out "$W/out" && bad "a changed grid was accepted"
grep -q "holds other command lines" "$W/out.log" || { cat "$W/out.log"; bad "no clear error for a changed grid"; }

# sparse-only axes: the router's second value trains only the SGT model and shares the first's dense
cat > "$W/grid3.json" <<JSON
{"common": {"dataset": "$SGT_SHARED/data/tinyshakespeare.jsonl", "seq_len": 32, "threads": 1, "eval_tokens": 512},
 "train": {"config": "nano", "batch_size": 4, "log_every": 1, "eval_every": 0, "warmup": 2, "lr": 3e-3, "max_tokens": 1024},
 "eval": {"prompt_tokens": 8, "decode_tokens": 8},
 "axes": {"router": ["ste", "sigmoid"]}, "sparse_only_axes": ["router"]}
JSON
R3="$W/out3/runs"
study "$W/grid3.json" --out "$W/out3" || { cat "$W/out.log"; bad "sparse-only grid failed"; }
grep -q "2 runs: 2 ran" "$W/out.log" || { cat "$W/out.log"; bad "sparse-only grid: not 2 ran"; }
grep -q "router=sigmoid: train:.*--model sparse" "$W/out.log" || { cat "$W/out.log"; bad "router=sigmoid trained the dense model too"; }
[[ -L "$R3/router=sigmoid/dense" && -s "$R3/router=sigmoid/dense/checkpoint.safetensors" ]] || bad "router=sigmoid has no dense link"
[[ $(readlink "$R3/router=sigmoid/dense") == "../router=ste/dense" ]] || bad "the dense link points elsewhere"
python3 - "$R3" <<'PY' || bad "the shared dense model's perplexity differs between the two runs"
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/{n}/eval_results.json"))["perplexity"] for n in ("router=ste", "router=sigmoid"))
assert a["dense"]["ppl"] == b["dense"]["ppl"] and a["sparse"]["ppl"] != b["sparse"]["ppl"], (a, b)
PY

# --parallel_models: dense and sparse trained at once (sparse in lane-sparse, then moved): the same
# models as the sequential run of that seed (seed=2 above), bit for bit
sed 's/"seed": \[1, 2\]/"seed": [2]/' "$W/grid.json" > "$W/grid4.json"
R4="$W/out4/runs/seed=2"
study "$W/grid4.json" --out "$W/out4" --parallel_models || { cat "$W/out.log"; bad "parallel call failed"; }
grep -q "seed=2: train sparse (lane):.*lane-sparse --progress false --model sparse" "$W/out.log" \
  || { cat "$W/out.log"; bad "no sparse lane"; }
[[ -s "$R4/sparse/checkpoint.safetensors" && ! -e "$R4/lane-sparse" && -s "$R4/train_sparse.log" ]] \
  || bad "the sparse lane was not joined into the run"
same_ppl() {
  python3 - "$R/seed=2/eval_results.json" "$R4/eval_results.json" <<'PY'
import json, sys
a, b = (json.load(open(f))["perplexity"] for f in sys.argv[1:])
assert a["dense"]["ppl"] == b["dense"]["ppl"] and a["sparse"]["ppl"] == b["sparse"]["ppl"], (a, b)
PY
}
same_ppl || bad "parallel lanes trained other models than the sequential run"
# the sparse lane lost (killed before its join): only it trains again, and joins
python3 - "$R4/training_summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); del s["models"]["sparse"]; json.dump(s, open(sys.argv[1], "w"))
PY
rm -r "$R4/sparse" "$R4/eval_results.json"
dsz=$(wc -c < "$R4/train_dense.log")
study "$W/grid4.json" --out "$W/out4" --parallel_models || { cat "$W/out.log"; bad "parallel resume failed"; }
grep -q "train dense (lane)" "$W/out.log" && bad "the finished dense lane trained again"
[[ $(wc -c < "$R4/train_dense.log") == "$dsz" ]] || bad "train_dense.log grew"
same_ppl || bad "the retrained sparse lane differs"

# bad grid files: one-line errors naming the file
echo '{"axes": {"seed": []}}' > "$W/empty.json"
study "$W/empty.json" --out "$W/o2" && bad "an empty axis was accepted"
grep -q "empty.json: axis 'seed' must be a non-empty list" "$W/out.log" || { cat "$W/out.log"; bad "empty axis message"; }
echo '{"axes": ' > "$W/broken.json"
study "$W/broken.json" --out "$W/o2" && bad "broken JSON was accepted"
grep -q "broken.json" "$W/out.log" || { cat "$W/out.log"; bad "broken JSON message does not name the file"; }
python3 "$SGT_STUDY" "$W/grid.json" --out "$W/o3" --bin /nonexistent > "$W/out.log" 2>&1 && bad "a bad --bin was accepted"
grep -q -- "--bin: no executable train in /nonexistent" "$W/out.log" || { cat "$W/out.log"; bad "bad --bin message"; }

if ((fails == 0)); then echo "test_study: all passed"; else echo "test_study: $fails failures"; exit 1; fi
