#!/usr/bin/env python3
"""vs_llmc.py: achieved training GFLOP/s of sgt's CPU step against llm.c's CPU trainer (train_gpt2.c).

Fetches nothing. --llmc PATH is a local clone of karpathy/llm.c; its train_gpt2.c is copied into a
temporary directory, its hard-coded B, T and step count are set to ours, its periodic validation and
sampling are switched off (so that only training steps run), and it is compiled with llm.c's own
Makefile flags (-Ofast -march=native -fopenmp; fast-math is llm.c's choice, sgt builds without it).
Beside it the script writes, in llm.c's formats:
  gpt2_124M.bin   a random-init GPT-2 checkpoint (header of 256 int32: magic 20240326, version 3,
                  maxT, V, L, NH, C, Vp; then the f32 parameters in llm.c's order: wte [Vp, C], wpe,
                  ln1 w/b, qkv w/b, attn proj w/b, ln2 w/b, fc w/b, fc proj w/b, lnf w/b) of the same
                  L, C, heads, vocabulary and context as our --config (weights N(0, 0.02), norms 1,
                  biases 0);
  dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin   random token ids (header of 256 int32:
                  magic 20240520, version 1, count; then uint16 ids).
The architectures differ (llm.c: GPT-2, LayerNorm, GELU MLP of 4C, tied head; sgt's dense model:
RMSNorm, SwiGLU of d_ff, untied head), so the step times are not comparable; the FLOP rates are:
model FLOPs per step = B T (6 N_mm + 6 L T C), N_mm the weights of the matmuls (the head included,
the embedding lookups not), 6 L T C the attention scores and mixing (fwd + bwd, no causal halving),
divided by the median step time. Rounds alternate: ours (bench/bench_train_step --model dense), then
llm.c; the table shows the median over rounds of each run's median step.

Usage: vs_llmc.py --llmc PATH [--bench build/bench/bench_train_step] [--config tiny] [--batch 4]
                  [--seq 256] [--steps 10] [--warmup 2] [--threads 2] [--rounds 3]
Needs numpy (for the random checkpoint).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# L, C, H, d_ff, V, ctx of models/gpt.c's presets (as bench/torch_gpt.py's PRESETS)
PRESETS = {"sgt-150m": (12, 768, 12, 2048, 50257, 1024), "small": (6, 384, 6, 1024, 50257, 512),
           "tiny": (4, 256, 4, 512, 50257, 256), "nano": (2, 32, 2, 64, 101, 32)}


def patch(src, old, new):
    if old not in src:
        sys.exit(f"vs_llmc: train_gpt2.c has no '{old}' (an llm.c this script does not know)")
    return src.replace(old, new, 1)


def build_llmc(llmc, work, B, T, steps):
    src_path = os.path.join(llmc, "train_gpt2.c")
    if not os.path.isfile(src_path) or not os.path.isdir(os.path.join(llmc, "llmc")):
        sys.exit(f"vs_llmc: {llmc} is not an llm.c clone (no train_gpt2.c and llmc/)")
    with open(src_path) as f:
        src = f.read()
    src = patch(src, "int B = 4;", f"int B = {B};")
    src = patch(src, "int T = 64;", f"int T = {T};")
    src = patch(src, "step <= 40;", f"step < {steps};")
    src = patch(src, "if (step % 10 == 0) {", "if (0) {")  # validation
    src = patch(src, "if (step > 0 && step % 20 == 0) {", "if (0) {")  # sampling
    out_src = os.path.join(work, "train_gpt2.c")
    with open(out_src, "w") as f:
        f.write(src)
    exe = os.path.join(work, "train_gpt2")
    cmd = ["gcc", "-Ofast", "-march=native", "-fopenmp", "-DOMP", "-Wno-unused-result", "-I", llmc,
           out_src, "-lm", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def write_llmc_files(work, L, C, H, V, maxT, ntok):
    import numpy as np
    Vp = (V + 127) // 128 * 128
    rng = np.random.default_rng(1234)
    sizes = [("w", Vp * C), ("w", maxT * C), ("1", L * C), ("0", L * C), ("w", L * 3 * C * C),
             ("0", L * 3 * C), ("w", L * C * C), ("0", L * C), ("1", L * C), ("0", L * C),
             ("w", L * 4 * C * C), ("0", L * 4 * C), ("w", L * C * 4 * C), ("0", L * C), ("1", C), ("0", C)]
    header = np.zeros(256, dtype="<i4")
    header[:8] = [20240326, 3, maxT, V, L, H, C, Vp]
    with open(os.path.join(work, "gpt2_124M.bin"), "wb") as f:
        f.write(header.tobytes())
        for kind, n in sizes:
            a = rng.normal(0.0, 0.02, n) if kind == "w" else np.full(n, float(kind))
            f.write(a.astype("<f4").tobytes())
    d = os.path.join(work, "dev", "data", "tinyshakespeare")
    os.makedirs(d)
    for name in ("train", "val"):
        h = np.zeros(256, dtype="<i4")
        h[:3] = [20240520, 1, ntok]
        with open(os.path.join(d, f"tiny_shakespeare_{name}.bin"), "wb") as f:
            f.write(h.tobytes())
            f.write(rng.integers(0, V, ntok).astype("<u2").tobytes())
    return sum(n for _, n in sizes)


def run(cmd, env, cwd=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    if p.returncode:
        sys.exit(f"vs_llmc: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llmc", required=True, help="a local clone of karpathy/llm.c")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_train_step"))
    ap.add_argument("--config", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    L, C, H, dff, V, ctx = PRESETS[a.config]
    B, T = a.batch, a.seq
    if T > ctx:
        sys.exit(f"vs_llmc: --seq {T} exceeds the context {ctx} of --config {a.config}")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    # model FLOPs per step (see the header)
    ours_mm = L * (4 * C * C + 3 * C * dff) + C * V
    llmc_mm = L * (12 * C * C) + C * V
    attn = 6 * L * T * C
    flops = {"sgt": B * T * (6 * ours_mm + attn), "llm.c": B * T * (6 * llmc_mm + attn)}

    work = tempfile.mkdtemp(prefix="sgt-vs-llmc-")
    try:
        total = a.warmup + a.steps
        exe = build_llmc(a.llmc, work, B, T, total)
        n_llmc = write_llmc_files(work, L, C, H, V, ctx, (total + 2) * B * T * 4 + 1)
        print(f"config {a.config}: L {L}, C {C}, heads {H}, V {V}, B {B} x T {T}, threads {a.threads}; "
              f"llm.c GPT-2 of {n_llmc / 1e6:.1f}M parameters (tied head), ours dense of "
              f"{(ours_mm + C * V + ctx * C) / 1e6:.1f}M (untied head); model GFLOP/step: sgt "
              f"{flops['sgt'] / 1e9:.2f}, llm.c {flops['llm.c'] / 1e9:.2f}")
        times = {"sgt": [], "llm.c": []}
        for r in range(a.rounds):
            out = run([a.bench, "--model", "dense", "--config", a.config, "--batch", str(B), "--seq", str(T),
                       "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)], env)
            ms = [json.loads(x)["median_ms"] for x in out.splitlines() if x.startswith("{") and '"model"' in x]
            times["sgt"].append(ms[0])
            out = run([exe], env, cwd=work)
            steps = [float(x.split("took ")[1].split(" ms")[0]) for x in out.splitlines() if x.startswith("step ")]
            if len(steps) != total:
                sys.exit(f"vs_llmc: llm.c printed {len(steps)} steps, expected {total}:\n{out[-2000:]}")
            times["llm.c"].append(statistics.median(steps[a.warmup:]))
            print(f"round {r + 1}/{a.rounds}: sgt {times['sgt'][-1]:.0f} ms/step, llm.c {times['llm.c'][-1]:.0f} "
                  f"ms/step", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| trainer | median ms/step | tokens/s | model GFLOP/step | GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    rate = {}
    for k in ("sgt", "llm.c"):
        ms = statistics.median(times[k])
        rate[k] = flops[k] / (ms / 1e3) / 1e9
        print(f"| {k} | {ms:.0f} | {B * T / (ms / 1e3):.0f} | {flops[k] / 1e9:.2f} | {rate[k]:.1f} |")
    print(f"\nGFLOP/s ratio sgt / llm.c: {rate['sgt'] / rate['llm.c']:.2f} (median of {a.rounds} alternating "
          f"rounds, each the median of {a.steps} steps after {a.warmup} warm-up)")


if __name__ == "__main__":
    main()
