#!/usr/bin/env python3
"""train_step_vs_torch.py: one f32 CPU training step of sgt's GPT against the same model in PyTorch.

Runs bench/bench_train_step (ours) and bench/torch_gpt.py (PyTorch, under --python, by default
Debian's /usr/bin/python3 which has torch 1.13) with the same config, B, T, steps, warm-up and
threads, one model at a time and alternating (ours dense, torch dense, ours sparse, torch sparse),
so that drift in the load of a shared machine hits both alike; --rounds R repeats that alternation
and reports the median over the rounds of each program's median step. Prints a table of tokens/s at the
median step time and the ratio ours / PyTorch (target >= 1.0), then the per-phase medians.

--verify first checks that the two are the same model: bench_train_step --save writes its initial
weights, torch_gpt.py --load --check recomputes ce, aux, loss and the gradient norm of one step on
the same ids, and the driver compares them (relative tolerance --rtol).

Both programs run with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to --threads; other settings
(OMP_WAIT_POLICY in particular, see docs/BENCHMARKS.md) come from the caller's environment and are
printed with the table.

This script only needs the Python standard library (run it with any python3).

--model all adds sparse-skip: our SGT model with block skipping (only the selected blocks computed),
timed against the same PyTorch sparse model (mask-and-multiply, the seed's formulation).

Usage: train_step_vs_torch.py [--bench build/bench/bench_train_step] [--model both] [--config tiny]
                              [--batch 4] [--seq 256] [--steps 10] [--warmup 2] [--threads 2] [--rounds 1]
                              [--verify]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, echo, env):
    """Runs cmd, returns its stdout lines; stdout is echoed when `echo`. Fails loudly on error."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if echo:
        sys.stdout.write(p.stdout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit(f"train_step_vs_torch: command failed with status {p.returncode}: {' '.join(cmd)}")
    return p.stdout.splitlines()


def json_lines(lines, key):
    out = []
    for ln in lines:
        if ln.startswith("{"):
            d = json.loads(ln)
            if key in d:
                out.append(d)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="build/bench/bench_train_step", help="our benchmark binary")
    ap.add_argument("--python", default="/usr/bin/python3", help="a python3 with torch")
    ap.add_argument("--torch-script", default=os.path.join(HERE, "torch_gpt.py"))
    ap.add_argument("--model", choices=["dense", "sparse", "sparse-skip", "both", "all"], default="both",
                    help="both = dense + sparse; all adds sparse-skip (ours with block skipping, against "
                    "PyTorch's mask-and-multiply sparse model: the same forward, a different router gradient)")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the alternation; report the median over rounds")
    ap.add_argument("--verify", action="store_true", help="check first that both compute the same loss and gradient norm")
    ap.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of --verify")
    ap.add_argument("--quiet", action="store_true", help="do not echo the two programs' output")
    args = ap.parse_args()

    common = ["--config", args.config, "--batch", str(args.batch), "--seq", str(args.seq),
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    ours_cmd = [args.bench] + common
    torch_cmd = [args.python, args.torch_script] + common
    models = {"both": ["dense", "sparse"], "all": ["dense", "sparse", "sparse-skip"]}.get(args.model, [args.model])
    torch_model = {"sparse-skip": "sparse"}
    echo = not args.quiet
    # Both programs get the same thread counts for OpenMP and OpenBLAS (Debian's torch runs its GEMMs
    # in OpenBLAS's own pthread pool, which torch.set_num_threads does not size). Anything else, such
    # as OMP_WAIT_POLICY, is inherited from the caller's environment and printed with the table.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    env_line = ", ".join(f"{k}={env.get(k, 'unset')}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY"))

    with open("/proc/loadavg") as f:
        load0 = f.read().strip()

    if args.verify:
        with tempfile.TemporaryDirectory(prefix="sgt-verify-") as d:
            bad = False
            for m in [m for m in models if m != "sparse-skip"]:  # its router gradient differs by design
                path = os.path.join(d, f"{m}.safetensors")
                ours = json_lines(run(ours_cmd + ["--model", m, "--steps", "1", "--warmup", "0", "--save", path],
                                      False, env), "check")[0]
                ref = json_lines(run(torch_cmd + ["--model", m, "--check", "--load", path], False, env), "check")[0]
                for k in ("ce", "aux", "loss", "grad_norm"):
                    a, b = ours[k], ref[k]
                    ok = abs(a - b) <= args.rtol * max(abs(b), 1e-12) + 1e-7
                    bad |= not ok
                    print(f"verify {m:6s} {k:9s} ours {a:.9g}  torch {b:.9g}  rel diff {abs(a - b) / max(abs(b), 1e-12):.2e}"
                          f"  {'ok' if ok else 'MISMATCH'}")
            if bad:
                sys.exit("train_step_vs_torch: --verify failed: the two models differ")

    runs = {(m, impl): [] for m in models for impl in ("sgt", "torch")}
    for r in range(args.rounds):
        for m in models:
            runs[(m, "sgt")].append(json_lines(run(ours_cmd + ["--model", m], echo, env), "model")[0])
            tm = torch_model.get(m, m)
            prev = runs.get((tm, "torch"), []) if m != tm else []
            if len(prev) > r:
                runs[(m, "torch")].append(prev[r])  # PyTorch's sparse model, already measured this round
            else:
                runs[(m, "torch")].append(json_lines(run(torch_cmd + ["--model", tm, "--time"], echo, env), "model")[0])
            o, t = runs[(m, "sgt")][-1], runs[(m, "torch")][-1]
            print(f"round {r + 1}/{args.rounds} {m}: ours {o['tokens_per_s']:.0f} tokens/s, PyTorch "
                  f"{t['tokens_per_s']:.0f}, ratio {o['tokens_per_s'] / t['tokens_per_s']:.2f}", flush=True)
    # Over rounds: the median of the per-round medians (min: the best step of all).
    res = {}
    tok = args.batch * args.seq
    for key, rs in runs.items():
        agg = {k: statistics.median(x[k] for x in rs) for k in rs[0] if k.endswith("_ms") and k != "min_ms"}
        agg["min_ms"] = min(x["min_ms"] for x in rs)
        agg["tokens_per_s"] = tok / (agg["median_ms"] / 1e3)
        res[key] = agg

    with open("/proc/loadavg") as f:
        load1 = f.read().strip()

    rounds = f", median over {args.rounds} alternating rounds" if args.rounds > 1 else ""
    print(f"\nconfig {args.config}, B {args.batch} x T {args.seq}, threads {args.threads}, f32, "
          f"median of {args.steps} steps after {args.warmup} warm-up{rounds}")
    print(f"environment: {env_line}")
    print(f"load average: start {load0}; end {load1}")
    print("\n| model | ours tokens/s | PyTorch tokens/s | ratio ours/PyTorch | ours median ms (min) "
          "| PyTorch median ms (min) | ratio at best step | ours CPU ms | PyTorch CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in models:
        o, t = res[(m, "sgt")], res[(m, "torch")]
        print(f"| {m} | {o['tokens_per_s']:.0f} | {t['tokens_per_s']:.0f} | {o['tokens_per_s'] / t['tokens_per_s']:.2f} "
              f"| {o['median_ms']:.0f} ({o['min_ms']:.0f}) | {t['median_ms']:.0f} ({t['min_ms']:.0f}) "
              f"| {t['min_ms'] / o['min_ms']:.2f} | {o['cpu_ms']:.0f} | {t['cpu_ms']:.0f} |")
    print("\n(tokens/s = B*T / median wall time of a step; ratio at best step = PyTorch min / ours min, the "
          "least disturbed figure on a shared machine; CPU ms = median CPU time of a step over all threads)")
    print("\nphase medians, ms:\n")
    print("| model | impl | forward | backward | optimizer | zero+reset |")
    print("|---|---|---:|---:|---:|---:|")
    for m in models:
        for impl, label in (("sgt", "ours"), ("torch", "PyTorch")):
            r = res[(m, impl)]
            print(f"| {m} | {label} | {r['forward_ms']:.0f} | {r['backward_ms']:.0f} | {r['optimizer_ms']:.0f} "
                  f"| {r['zero_reset_ms']:.0f} |")


if __name__ == "__main__":
    main()
