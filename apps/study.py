#!/usr/bin/env python3
"""study.py: a grid of train + eval runs (model, k, router, seed, tokens, ...), resumable, skipping
finished runs, collected into one table and plots for docs/RESULTS.md.

Usage: python3 apps/study.py GRID.json --out DIR [--bin build/apps] [--dry_run] [--only NAME] [--parallel_models]

GRID.json (every flag is a flag of apps/train or apps/eval, without the dashes):
  {"common": {"dataset": "../shared/data/tinystories-sample.jsonl", "val_fraction": 0.2},  # both
   "train":  {"config": "tiny", "ffn_path": "skip"},                                       # train only
   "eval":   {"prompt_tokens": 8},                                                          # eval only
   "axes":   {"top_k_blocks": [16, 8], "seed": [1, 2], "max_tokens": ["1M", "2M"]}}        # the grid
An axis whose name is an eval flag goes to eval too (common flags are given to both; an axis is a
train flag unless it is listed in "eval_axes").
An axis value may be an object of several flags, named by its "name" key: "variant": [{"name":
"balanced", "router": "balanced", "aux_loss_weight": 0}, ...] (the run is named variant=balanced).
"sparse_only_axes": [names] lists axes that leave the dense model alone (router, top_k_blocks,
aux_loss_weight, ...): runs that differ only there share one dense model, trained by the first of
them (in grid order); the others train --model sparse and link dense/ to it (the batches are the
same: they depend on the seed and the data only).

Each run lives in DIR/runs/NAME (NAME = the axis values) with run.json (its two command lines).
A run is finished when eval_results.json is there and run.json matches: it is skipped. A run whose
training stopped (killed, a machine reset) is resumed with --resume; one that finished training
but not eval is only evaluated. A run whose run.json differs from the grid's is an error (the grid
changed under an existing directory: use a new --out). Failures are reported and the others go on;
the exit status is non-zero if any run failed.

--parallel_models trains a run's dense and sparse models at once, as two processes (two cores, one
thread each: half the wall time of one run). The sparse model trains in NAME/lane-sparse with
--model sparse (its batches depend on the seed and the data only, so it is the model a sequential
run trains) and is then moved to NAME/sparse, its summary merged into NAME's. Interrupted, each
lane resumes where it stopped.

Outputs: DIR/results.json (one row per run), DIR/results.md (the table, with 95% intervals), and
DIR/gap_vs_tokens.svg (the sparse-vs-dense gap against training tokens, one series per setting of
the other axes, seeds side by side, interval bars), DIR/utilisation.svg (per-layer normalised
entropy of block use). Standard library only.
"""
import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys

TRAIN_ONLY_DONE = "training_summary.json"


def flag_args(flags):
    out = []
    for k, v in flags.items():
        if isinstance(v, bool):
            out += [f"--{k}", "true" if v else "false"]
        else:
            out += [f"--{k}", str(v)]
    return out


def value_name(v):
    return v.get("name", json.dumps(v, sort_keys=True)) if isinstance(v, dict) else v


def run_name(point):
    parts = [f"{k}={value_name(v)}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9=.,_+-]", "_", "-".join(parts)) or "run"


def parse_tokens(v):
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([kKmMgG]?)\s*", str(v))
    if not m:
        return float("nan")
    mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    return float(m.group(1)) * mult


def load_grid(path):
    try:
        with open(path) as f:
            g = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"study: {path}: {e}")
    if not isinstance(g, dict) or not isinstance(g.get("axes", {}), dict):
        sys.exit(f"study: {path}: expected an object with \"axes\": {{name: [values]}}")
    for k, v in g.get("axes", {}).items():
        if not isinstance(v, list) or not v:
            sys.exit(f"study: {path}: axis '{k}' must be a non-empty list")
    return g


def points(grid):
    axes = grid.get("axes", {})
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        yield dict(zip(names, combo))


def dense_key(grid, point):
    """the axis values that decide the dense model (all but the sparse-only axes)"""
    only = set(grid.get("sparse_only_axes", []))
    return tuple((k, json.dumps(v)) for k, v in point.items() if k not in only)


def commands(grid, point, rundir, bindir, sparse_only=False):
    eval_axes = set(grid.get("eval_axes", []))
    common = dict(grid.get("common", {}))
    train = {**common, **grid.get("train", {})}
    ev = {**common, **grid.get("eval", {})}
    for k, v in point.items():
        flags = {f: x for f, x in v.items() if f != "name"} if isinstance(v, dict) else {k: v}
        (ev if k in eval_axes else train).update(flags)
    train["output_dir"] = rundir
    ev["output_dir"] = rundir
    if sparse_only:
        train["model"] = "sparse"
    train.setdefault("progress", False)
    return ([os.path.join(bindir, "train")] + flag_args(train), [os.path.join(bindir, "eval")] + flag_args(ev))


def summary_models(d):
    """the models d's training_summary.json names ({} when there is none)"""
    try:
        with open(os.path.join(d, TRAIN_ONLY_DONE)) as f:
            return json.load(f).get("models", {})
    except (OSError, ValueError, AttributeError):
        return {}


def write_json(path, obj):
    """path written whole or not at all (a .tmp renamed over it)"""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def training_done(rundir, train_cmd):
    """training_summary.json names every model this run trains (train writes it after the last)"""
    models = summary_models(rundir)
    which = train_cmd[train_cmd.index("--model") + 1] if "--model" in train_cmd else "both"
    want = {"both": ("dense", "sparse")}.get(which, (which,))
    return all(m in models for m in want)


def has_checkpoint(rundir):
    return any(os.path.exists(os.path.join(rundir, m, "checkpoint.safetensors")) for m in ("dense", "sparse"))


def link_dense(rundir, dense_from):
    """rundir/dense -> the run that trained this run's dense model (a relative link)"""
    link = os.path.join(rundir, "dense")
    target = os.path.relpath(os.path.join(dense_from, "dense"), rundir)
    if os.path.islink(link) and os.readlink(link) == target:
        return
    if os.path.lexists(link):
        raise OSError(f"{link} exists and is not the link to {target}")
    os.symlink(target, link)


def lane_command(train_cmd, d, model):
    cmd = list(train_cmd)
    cmd[cmd.index("--output_dir") + 1] = d
    cmd += ["--model", model]
    return cmd + (["--resume"] if os.path.exists(os.path.join(d, model, "checkpoint.safetensors")) else [])


def train_lanes(name, rundir, train_cmd, dry):
    """the dense model in rundir and the sparse one in rundir/lane-sparse at once, then joined"""
    side = os.path.join(rundir, "lane-sparse")
    procs = []
    for model, d in (("dense", rundir), ("sparse", side)):
        if model in summary_models(rundir) or model in summary_models(d):
            continue
        cmd = lane_command(train_cmd, d, model)
        print(f"study: {name}: train {model} (lane): {' '.join(cmd)}", flush=True)
        if dry:
            continue
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(d, f"train_{model}.log"), "a")
        procs.append((model, d, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    ok = True
    for model, d, p, log in procs:
        r = p.wait()
        log.close()
        if r != 0:
            print(f"study: {name}: train {model} failed (exit {r}); see {d}/train_{model}.log", flush=True)
            ok = False
    if dry or not ok or not os.path.isdir(side):
        return ok
    # join: lane-sparse/sparse -> sparse, its summary entry merged, its log kept beside dense's
    lane = summary_models(side).get("sparse")
    if lane is None:
        print(f"study: {name}: {side} has no finished sparse model", flush=True)
        return False
    if os.path.lexists(os.path.join(rundir, "sparse")):
        print(f"study: {name}: {rundir}/sparse exists; cannot move the lane's sparse model there", flush=True)
        return False
    os.replace(os.path.join(side, "sparse"), os.path.join(rundir, "sparse"))
    path = os.path.join(rundir, TRAIN_ONLY_DONE)
    with open(path) as f:
        summary = json.load(f)
    summary.setdefault("models", {})["sparse"] = lane
    write_json(path, summary)
    os.replace(os.path.join(side, "train_sparse.log"), os.path.join(rundir, "train_sparse.log"))
    shutil.rmtree(side)
    return True


def run_one(name, rundir, train_cmd, eval_cmd, dry, dense_from=None, parallel=False):
    os.makedirs(rundir, exist_ok=True)
    meta_path = os.path.join(rundir, "run.json")
    meta = {"train": train_cmd[1:], "eval": eval_cmd[1:]}
    if dense_from:
        meta["dense_from"] = os.path.basename(dense_from)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            old = json.load(f)
        if old != meta:
            print(f"study: {name}: {meta_path} holds other command lines than the grid's; use a new --out", flush=True)
            return "failed"
    elif not dry:
        write_json(meta_path, meta)
    if os.path.exists(os.path.join(rundir, "eval_results.json")):
        print(f"study: {name}: finished, skipped", flush=True)
        return "skipped"
    steps = []
    lanes = parallel and "--model" not in train_cmd  # a run of one model has nothing to run beside it
    if not training_done(rundir, train_cmd):
        if lanes and not train_lanes(name, rundir, train_cmd, dry):
            return "failed"
        if not (dry and lanes) and not training_done(rundir, train_cmd):
            steps.append(("train (resumed)" if has_checkpoint(rundir) else "train",
                          train_cmd + (["--resume"] if has_checkpoint(rundir) else [])))
    steps.append(("eval", eval_cmd))
    for what, cmd in steps:
        print(f"study: {name}: {what}: {' '.join(cmd)}", flush=True)
        if dry:
            continue
        if what == "eval" and dense_from:
            try:
                link_dense(rundir, dense_from)
            except OSError as e:
                print(f"study: {name}: {e}", flush=True)
                return "failed"
        with open(os.path.join(rundir, f"{what.split()[0]}.log"), "a") as log:
            r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            print(f"study: {name}: {what} failed (exit {r.returncode}); see {rundir}/{what.split()[0]}.log",
                  flush=True)
            return "failed"
    return "dry" if dry else "ran"


def collect(grid, out):
    rows = []
    for point in points(grid):
        name = run_name(point)
        path = os.path.join(out, "runs", name, "eval_results.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        p = r.get("perplexity", {})
        rows.append({
            "name": name, "point": point,
            "dense_ppl": p.get("dense", {}).get("ppl"), "dense_ci": p.get("dense", {}).get("ppl_ci95"),
            "sparse_ppl": p.get("sparse", {}).get("ppl"), "sparse_ci": p.get("sparse", {}).get("ppl_ci95"),
            "gap": p.get("relative_gap"), "gap_ci": p.get("relative_gap_ci95"), "verdict": p.get("verdict"),
            "predicted_tokens": p.get("predicted_tokens"), "documents": p.get("documents"),
            "flop_ppl": p.get("dense_flop", {}).get("ppl"), "flop_ci": p.get("dense_flop", {}).get("ppl_ci95"),
            "gap_vs_flop": p.get("dense_flop", {}).get("sparse_relative_gap"),
            "gap_vs_flop_ci": p.get("dense_flop", {}).get("sparse_relative_gap_ci95"),
            "utilisation": [u.get("normalised_entropy") for u in r.get("block_utilisation", [])],
            "dead_blocks": [u.get("dead_blocks") for u in r.get("block_utilisation", [])],
        })
    return rows


def fmt_ci(v, ci, pct=False):
    if v is None:
        return "-"
    if pct:
        s = f"{100 * v:+.2f}%"
        return s + (f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "")
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def write_table(grid, rows, out):
    axes = list(grid.get("axes", {}))
    flop = any(r["flop_ppl"] is not None for r in rows)
    head = axes + ["dense PPL [95%]", "sparse PPL [95%]", "gap [95%]", "verdict"] + (
        ["FLOP-matched dense PPL [95%]", "sparse vs it [95%]"] if flop else []) + ["eval tokens", "docs", "dead blocks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(value_name(r["point"][a])) for a in axes] + [
            fmt_ci(r["dense_ppl"], r["dense_ci"]), fmt_ci(r["sparse_ppl"], r["sparse_ci"]),
            fmt_ci(r["gap"], r["gap_ci"], pct=True), str(r["verdict"])] + (
            [fmt_ci(r["flop_ppl"], r["flop_ci"]), fmt_ci(r["gap_vs_flop"], r["gap_vs_flop_ci"], pct=True)] if flop else []) + [
            str(r["predicted_tokens"]),
            str(r["documents"]), str(sum(d or 0 for d in r["dead_blocks"]))]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def svg_frame(w, h, title, xlabel, ylabel, xs, ys):
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys + [0.0]), max(ys + [0.0])
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = 0.08 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    L, R, T, B = 70, 220, 40, 50
    sx = lambda x: L + (x - x0) / (x1 - x0) * (w - L - R)
    sy = lambda y: h - B - (y - y0) / (y1 - y0) * (h - T - B)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
             f'<line x1="{L}" y1="{h - B}" x2="{w - R}" y2="{h - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{h - B}" stroke="black"/>',
             f'<text x="{(L + w - R) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>',
             f'<text x="16" y="{(T + h - B) / 2}" transform="rotate(-90 16 {(T + h - B) / 2})" text-anchor="middle">{ylabel}</text>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{L - 6}" y="{sy(yv) + 4}" text-anchor="end">{yv:.3g}</text>')
        xv = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{sx(xv)}" y="{h - B + 16}" text-anchor="middle">{xv:.3g}</text>')
    if y0 < 0 < y1:
        parts.append(f'<line x1="{L}" y1="{sy(0)}" x2="{w - R}" y2="{sy(0)}" stroke="#999" stroke-dasharray="4"/>')
    return parts, sx, sy


def write_gap_plot(grid, rows, out):
    axes = list(grid.get("axes", {}))
    tok_axis = "max_tokens" if "max_tokens" in axes else None
    series = {}
    for r in rows:
        key = ", ".join(f"{a}={value_name(r['point'][a])}" for a in axes if a not in ("max_tokens", "seed")) or "all"
        x = parse_tokens(r["point"][tok_axis]) if tok_axis else float(len(series.get(key, [])))
        if r["gap"] is not None:
            series.setdefault(key, []).append((x, 100 * r["gap"], [100 * c for c in (r["gap_ci"] or [r["gap"]] * 2)]))
    if not series:
        return
    xs = [p[0] for s in series.values() for p in s]
    ys = [c for s in series.values() for p in s for c in p[2]]
    target = 100 * 0.02
    parts, sx, sy = svg_frame(760, 420, "sparse vs dense validation PPL gap (95% intervals)",
                              "training tokens per model" if tok_axis else "run", "gap (%)", xs, ys + [target])
    parts.append(f'<line x1="{sx(min(xs))}" y1="{sy(target)}" x2="{sx(max(xs))}" y2="{sy(target)}" stroke="#2ca02c" '
                 f'stroke-dasharray="6 3"/><text x="{sx(max(xs)) + 4}" y="{sy(target) + 4}" fill="#2ca02c">2% target</text>')
    span = (max(xs) - min(xs)) or 1.0
    for i, (key, pts) in enumerate(sorted(series.items())):
        col = COLOURS[i % len(COLOURS)]
        off = (i - (len(series) - 1) / 2) * 0.012 * span
        for x, y, (lo, hi) in pts:
            X = sx(x + off)
            parts.append(f'<line x1="{X}" y1="{sy(lo)}" x2="{X}" y2="{sy(hi)}" stroke="{col}"/>')
            parts.append(f'<circle cx="{X}" cy="{sy(y)}" r="3.5" fill="{col}"/>')
        parts.append(f'<text x="{760 - 210}" y="{60 + 18 * i}" fill="{col}">{key}</text>')
    parts.append("</svg>")
    with open(os.path.join(out, "gap_vs_tokens.svg"), "w") as f:
        f.write("\n".join(parts) + "\n")


def write_utilisation_plot(rows, out):
    rows = [r for r in rows if r["utilisation"]]
    if not rows:
        return
    nl = max(len(r["utilisation"]) for r in rows)
    xs = list(range(nl))
    ys = [u for r in rows for u in r["utilisation"] if u is not None]
    parts, sx, sy = svg_frame(760, 420, "block utilisation: normalised entropy of block use per layer", "layer",
                              "entropy (1 = uniform)", xs or [0, 1], ys + [1.0])
    for i, r in enumerate(rows[:len(COLOURS) * 2]):
        col = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{sx(l)},{sy(u)}" for l, u in enumerate(r["utilisation"]) if u is not None)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}"/>')
        parts.append(f'<text x="{760 - 210}" y="{60 + 16 * i}" fill="{col}" font-size="10">{r["name"][:36]}</text>')
    parts.append("</svg>")
    with open(os.path.join(out, "utilisation.svg"), "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "apps"))
    ap.add_argument("--dry_run", action="store_true")
    ap.add_argument("--only", help="run only the run of this name")
    ap.add_argument("--parallel_models", action="store_true",
                    help="train a run's dense and sparse models at once, as two processes")
    a = ap.parse_args()
    grid = load_grid(a.grid)
    for exe in ("train", "eval"):
        if not os.access(os.path.join(a.bin, exe), os.X_OK):
            sys.exit(f"study: --bin: no executable {exe} in {a.bin}")
    os.makedirs(os.path.join(a.out, "runs"), exist_ok=True)
    status = {}
    owner = {}  # dense_key -> the run dir that trains that dense model
    for point in points(grid):
        name = run_name(point)
        rundir = os.path.join(a.out, "runs", name)
        key = dense_key(grid, point)
        dense_from = owner.setdefault(key, rundir)
        dense_from = None if dense_from == rundir else dense_from
        if a.only and name != a.only:
            continue
        tc, ec = commands(grid, point, rundir, a.bin, sparse_only=dense_from is not None)
        status[name] = run_one(name, rundir, tc, ec, a.dry_run, dense_from, a.parallel_models)
    rows = collect(grid, a.out)
    write_table(grid, rows, a.out)
    write_gap_plot(grid, rows, a.out)
    write_utilisation_plot(rows, a.out)
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("ran", "skipped", "failed", "dry")}
    print(f"study: {len(status)} runs: {counts['ran']} ran, {counts['skipped']} skipped, {counts['failed']} failed"
          + (f", {counts['dry']} dry" if counts["dry"] else "") + f"; table {os.path.join(a.out, 'results.md')}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
