#!/usr/bin/env python3
"""gpu_vs_torch.py: the GPU benchmark of issue 6, ours against PyTorch on the same device in one run.

Runs bench/bench_gpu (ours) and then bench/torch_gpt.py --what (the same architecture in PyTorch:
bf16 autocast, scaled_dot_product_attention, torch.compile, fused AdamW) with matching settings:
the same config, B x T (the batch ours actually ran, if it had to halve it), precision, attention
kind, steps, warm-up, prompt and decode tokens. Prints one table per figure:

  training tokens/s   ours | PyTorch | floor = ideal tokens/s at the peak | ours/PyTorch | ours/floor (= MFU)
  prefill tokens/s    the same, for forward-only passes
  decode ms/token     ours | PyTorch | floor = bytes per token / measured bandwidth | ours/PyTorch | ours/floor

and the targets of the issue, each PASS or FAIL (or n/a, saying why):
  dense training MFU >= 45% at T = 1024 on an H100;  training tokens/s >= PyTorch's;
  sparse (mask-and-multiply) training tokens/s >= 90% of dense;  batch-1 decode within 2x of the floor.

Formulas (FLOPs per token, the floors): see the header of bench/bench_gpu.c. PyTorch's MFU uses the
same FLOPs per token as ours (its own count, printed in its JSON lines, agrees up to the vocabulary
padding of the head). PyTorch has no block skipping: our sparse-skip row is compared with its
mask-and-multiply sparse model (marked *).

PyTorch is optional: the first python (--python, else $TORCH_PYTHON, this interpreter, python3,
/usr/bin/python3) that imports torch (with CUDA, for --device cuda) runs torch_gpt.py. Without one
the tables say "PyTorch not available: ratio not printed" and the exit status is still 0. A PyTorch
run that fails or exceeds --torch-timeout leaves its cells empty, likewise. Exit status: 77 when
bench_gpu skips (no CUDA device), 1 when bench_gpu failed, else 0 (targets never change it).

Standard library only: run it with any python3.

Usage: gpu_vs_torch.py [--bench build/bench/bench_gpu] [--device cuda] [--config sgt-150m] [--model all]
                       [--batch 16] [--seq T] [--precision bf16] [--attention fused] [--steps 10] [--warmup 3]
                       [--decode-tokens 128] [--prompt 64] [--prefill-batch B] [--peak-tflops X]
                       [--what train,prefill,decode] [--no-compile] [--python PY] [--torch-timeout 600]
                       [--threads N] [--json OUT] [--quiet]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_MODEL = {"dense": "dense", "sparse": "sparse", "sparse-skip": "sparse"}
# Peak dense tensor-core TFLOP/s (bf16, TF32) by device name, for cards other than the H100 SXM /
# H200 that bench_gpu assumes; matched in order against the name torch or nvidia-smi reports.
PEAKS = [("H100 PCIe", 756.0, 378.0), ("H100 NVL", 835.0, 418.0), ("A100", 312.0, 156.0)]


def run_stream(cmd, timeout, echo, env=None):
    """Runs cmd (stderr into stdout), echoing lines as they come; returns (rc, lines, timed_out)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True, bufsize=1)
    lines = []

    def reader():
        for ln in p.stdout:
            lines.append(ln.rstrip("\n"))
            if echo:
                sys.stdout.write(ln)
                sys.stdout.flush()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    timed_out = False
    try:
        p.wait(timeout=timeout if timeout and timeout > 0 else None)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the process group this call started
        except ProcessLookupError:
            pass
        p.wait()
    th.join(timeout=10)
    return p.returncode, lines, timed_out


def json_lines(lines):
    out = []
    for ln in lines:
        ln = ln.strip()
        if ln.startswith("{") and '"bench": "gpu"' in ln:
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    return out


PROBE = r"""
import json
try:
    import torch
    import torch.nn.functional as F
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    raise SystemExit(0)
cuda = torch.cuda.is_available()
print(json.dumps({"version": torch.__version__, "cuda": cuda,
                  "name": torch.cuda.get_device_name(0) if cuda else None,
                  "sdpa": hasattr(F, "scaled_dot_product_attention"), "compile": hasattr(torch, "compile")}))
"""


def find_torch(args):
    """(python, info) of the first interpreter whose torch fits the device, or (None, reason)."""
    cands = [args.python] if args.python else [os.environ.get("TORCH_PYTHON"), sys.executable, "python3",
                                                  "/usr/bin/python3"]
    seen, reasons = set(), []
    for py in cands:
        if not py:
            continue
        path = shutil.which(py) or py
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(path):
            continue
        seen.add(real)
        try:
            p = subprocess.run([path, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=180)
            info = json.loads(p.stdout.strip().splitlines()[-1])
        except Exception as e:  # noqa: BLE001 (a broken interpreter is just not a candidate)
            reasons.append(f"{py}: {type(e).__name__}")
            continue
        if "error" in info:
            reasons.append(f"{py}: no torch ({info['error'][:80]})")
            continue
        if args.device == "cuda" and not info["cuda"]:
            reasons.append(f"{py}: torch {info['version']} without CUDA")
            continue
        return path, info
    return None, "; ".join(reasons) or "no python3 found"


def gpu_name_smi():
    if not shutil.which("nvidia-smi"):
        return None
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=30)
        return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else None
    except Exception:  # noqa: BLE001
        return None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="build/bench/bench_gpu", help="our benchmark binary")
    ap.add_argument("--torch-script", default=os.path.join(HERE, "torch_gpt.py"))
    ap.add_argument("--python", help="a python with torch (default: the first of $TORCH_PYTHON, this one, python3, "
                    "/usr/bin/python3 that has one)")
    ap.add_argument("--no-torch", action="store_true", help="ours only")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--config", default="sgt-150m")
    ap.add_argument("--model", default="all", help="dense, sparse, sparse-skip, or all (comma list)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=0, help="default: the preset's context length")
    ap.add_argument("--precision", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--attention", choices=["fused", "composed"], default="fused")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top_k_blocks", type=int, default=0, help="the SGT models' k, both programs (default: the preset's)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--prefill-batch", type=int, default=0)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="default: bench_gpu's (H100 SXM), or the "
                    "reported card's from a short table (H100 PCIe/NVL, A100)")
    ap.add_argument("--what", default="train,prefill,decode")
    ap.add_argument("--no-compile", action="store_true", help="PyTorch eager (no torch.compile)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for both (--device cpu)")
    ap.add_argument("--torch-timeout", type=float, default=600, help="seconds per PyTorch run (one per model)")
    ap.add_argument("--bench-timeout", type=float, default=0, help="seconds for bench_gpu (0: none)")
    ap.add_argument("--json", metavar="OUT", help="also write every result (both programs' JSON lines) here")
    ap.add_argument("--quiet", action="store_true", help="do not echo the two programs' output")
    args = ap.parse_args()
    echo = not args.quiet
    t_start = time.time()

    if not os.path.exists(args.bench):
        sys.exit(f"gpu_vs_torch: {args.bench} not found: build it (meson setup build && ninja -C build) or pass --bench")

    # PyTorch first: it names the card, which picks the peak when the card is not an H100 SXM / H200.
    torch_py, torch_info = (None, "--no-torch") if args.no_torch else find_torch(args)
    gpu_name = (torch_info.get("name") if torch_py else None) if args.device == "cuda" else None
    if args.device == "cuda" and not gpu_name:
        gpu_name = gpu_name_smi()
    peak = args.peak_tflops
    peak_note = "given" if peak else "bench_gpu's default (H100 SXM / H200)"
    if not peak and gpu_name:
        for key, bf16, tf32 in PEAKS:
            if key.lower() in gpu_name.lower():
                peak = bf16 if args.precision == "bf16" else tf32
                peak_note = f"the {key}'s dense tensor-core peak"
                break
        else:
            if not any(k in gpu_name for k in ("H100", "H200", "GH200")):
                print(f"gpu_vs_torch: warning: {gpu_name} is not an H100/H200; the default peak is an H100 SXM's: "
                      "pass --peak-tflops for a meaningful MFU")
    if torch_py:
        print(f"gpu_vs_torch: PyTorch {torch_info['version']} ({torch_py}), sdpa {torch_info['sdpa']}, "
              f"compile {torch_info['compile']}")
    else:
        print(f"gpu_vs_torch: PyTorch not available ({torch_info}): ratio not printed")
    if gpu_name:
        print(f"gpu_vs_torch: device {gpu_name}")

    # ---- ours ----
    ours_cmd = [args.bench, "--device", args.device, "--config", args.config, "--model", args.model,
                "--batch", str(args.batch), "--precision", args.precision, "--attention", args.attention,
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--decode-tokens", str(args.decode_tokens),
                "--prompt", str(args.prompt), "--what", args.what]
    if args.seq:
        ours_cmd += ["--seq", str(args.seq)]
    if args.top_k_blocks:
        ours_cmd += ["--top_k_blocks", str(args.top_k_blocks)]
    if args.prefill_batch:
        ours_cmd += ["--prefill-batch", str(args.prefill_batch)]
    if peak:
        ours_cmd += ["--peak-tflops", str(peak)]
    if args.threads and args.device == "cpu":
        ours_cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.threads and args.device == "cpu":
        env.update(OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    print("\n$ " + " ".join(ours_cmd), flush=True)
    t0 = time.time()
    rc, lines, timed_out = run_stream(ours_cmd, args.bench_timeout, echo, env)
    t_ours = time.time() - t0
    if rc == 77:
        if not echo:
            print(next((ln for ln in lines if "skipped" in ln), "bench_gpu: skipped"))
        print("gpu_vs_torch: skipped (exit 77): no usable device for bench_gpu")
        sys.exit(77)
    recs = json_lines(lines)
    setup = next((r["setup"] for r in recs if "setup" in r), None)
    ours = {(r["model"], r["what"]): r for r in recs if "setup" not in r}
    ours_failed = rc != 0 or timed_out or setup is None
    if ours_failed and not echo:
        sys.stdout.write("\n".join(lines[-40:]) + "\n")
    if setup is None:
        print(f"gpu_vs_torch: bench_gpu failed (status {rc}{', timed out' if timed_out else ''}) before it ran a part")
        sys.exit(1)
    models = [m for m in ("dense", "sparse", "sparse-skip") if any(k[0] == m for k in ours)]
    whats = [w for w in ("train", "prefill", "decode") if any(k[1] == w for k in ours)]

    # ---- PyTorch, one run per model, with the B x T ours ran ----
    theirs, torch_notes, t_torch = {}, [], 0.0
    if torch_py:
        for tm in [m for m in ("dense", "sparse") if any(TORCH_MODEL[x] == m for x in models)]:
            src = [ours.get((m, w)) for m in models if TORCH_MODEL[m] == tm for w in ("train", "prefill")]
            tb = next((r["batch"] for r in src if r and r["what"] == "train" and "error" not in r), setup["batch"])
            pb = next((r["batch"] for r in src if r and r["what"] == "prefill" and "error" not in r),
                      setup["prefill_batch"])
            cmd = [torch_py, args.torch_script, "--what", ",".join(whats), "--model", tm, "--device", args.device,
                   "--config", args.config, "--batch", str(tb), "--seq", str(setup["seq"]), "--prefill-batch", str(pb),
                   "--dtype", args.precision, "--attention", args.attention, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--prompt", str(setup["prompt"]),
                   "--decode-tokens", str(setup["decode_tokens"])]
            if args.top_k_blocks:
                cmd += ["--top_k_blocks", str(args.top_k_blocks)]
            if not args.no_compile:
                cmd.append("--compile")
            if args.threads and args.device == "cpu":
                cmd += ["--threads", str(args.threads)]
            print("\n$ " + " ".join(cmd), flush=True)
            t0 = time.time()
            trc, tlines, tto = run_stream(cmd, args.torch_timeout, echo, env)
            t_torch += time.time() - t0
            got = [r for r in json_lines(tlines) if r.get("impl") == "torch"]
            for r in got:
                theirs[(r["model"], r["what"])] = r
            if tto:
                torch_notes.append(f"PyTorch {tm} timed out after {args.torch_timeout:.0f} s: ratio not printed for "
                                   "the parts it had not finished")
            elif trc == 77:
                torch_notes.append(f"PyTorch {tm}: no usable CUDA device for torch: ratio not printed")
            elif trc != 0:
                torch_notes.append(f"PyTorch {tm} failed (status {trc}): ratio not printed for its missing parts")
                if not echo:
                    sys.stdout.write("\n".join(tlines[-20:]) + "\n")

    # ---- tables ----
    def t_rec(m, w):
        r = theirs.get((TORCH_MODEL[m], w))
        return r if r and "error" not in r else None

    def o_rec(m, w):
        r = ours.get((m, w))
        return r if r and "error" not in r else None

    peak_flops = setup["peak_flops"] or None
    t_att = sorted({r["attention"] for r in theirs.values()})
    t_comp = sorted({str(r["compiled"]) for r in theirs.values() if "compiled" in r})
    t_desc = (f"PyTorch {torch_info['version']}: {'/'.join(t_att)} attention, compiled {'/'.join(t_comp) or '-'}"
              if theirs else "no PyTorch results")
    print(f"\n\n# sgt vs PyTorch on {gpu_name or setup['device']}: {setup['config']}, {setup['precision']}, "
          f"{setup['attention']} attention ({t_desc})")
    print(f"peak {peak_flops / 1e12:.4g} TFLOP/s ({peak_note})" if peak_flops else "peak: unknown (no MFU; --peak-tflops X)",
          end="")
    print(f"; bandwidth {setup['bandwidth_gbs']:.1f} GB/s (measured by bench_gpu)" if setup["bandwidth_gbs"] else "")
    if not torch_py:
        print("PyTorch not available: ratio not printed")
    for n in torch_notes:
        print(n)

    for w in ("train", "prefill"):
        if w not in whats:
            continue
        title = "Training" if w == "train" else "Prefill (forward only, no grad)"
        print(f"\n## {title} tokens/s, B x T = {setup['batch'] if w == 'train' else setup['prefill_batch']} x "
              f"{setup['seq']} (requested), median of {setup['steps']} after {setup['warmup']} warm-up\n")
        print("| model | B | ours tokens/s | PyTorch tokens/s | floor (ideal at peak) | ours/PyTorch | ours/floor (MFU) "
              "| PyTorch MFU | PyTorch compiled |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for m in models:
            o, t = o_rec(m, w), t_rec(m, w)
            if (m, w) in ours and not o:
                print(f"| {m} | - | FAILED: {ours[(m, w)]['error'][:120]} | | | | | | |")
                continue
            if not o:
                continue
            ideal = peak_flops / o["flops_per_token"] if peak_flops else None
            tt = t["tokens_per_s"] if t else None
            star = "*" if m == "sparse-skip" and t else ""
            bnote = "" if not t or t["batch"] == o["batch"] else f" (PyTorch B {t['batch']})"
            print(f"| {m} | {o['batch']}{bnote} | {o['tokens_per_s']:.0f} | {fmt(tt, '.0f')}{star} | {fmt(ideal, '.0f')} "
                  f"| {fmt(ratio(o['tokens_per_s'], tt), '.2f')} | {fmt(ratio(o['tokens_per_s'], ideal), '.1%')} "
                  f"| {fmt(ratio(tt, ideal), '.1%')} | {t['compiled'] if t else '-'} |")
    if "decode" in whats:
        print(f"\n## Decode ms/token, batch 1, {setup['prompt']}-token prompt + {setup['decode_tokens']} tokens "
              "(median); floor = weight + KV bytes per token / bandwidth\n")
        print("| model | ours ms/token | PyTorch ms/token | floor ms/token | ours/PyTorch (time: < 1 = ours faster) "
              "| ours/floor | PyTorch/floor | PyTorch compiled |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for m in models:
            o, t = o_rec(m, "decode"), t_rec(m, "decode")
            if (m, "decode") in ours and not o:
                print(f"| {m} | FAILED: {ours[(m, 'decode')]['error'][:120]} | | | | | | |")
                continue
            if not o:
                continue
            tt = t["ms_per_token"] if t else None
            star = "*" if m == "sparse-skip" and t else ""
            print(f"| {m} | {o['ms_per_token']:.3f} | {fmt(tt, '.3f')}{star} | {o['floor_ms']:.3f} "
                  f"| {fmt(ratio(o['ms_per_token'], tt), '.2f')} | {o['ratio_to_floor']:.2f} "
                  f"| {fmt(ratio(tt, o['floor_ms']), '.2f')} | {t['compiled'] if t else '-'} |")
    if "sparse-skip" in models and torch_py:
        print("\n* PyTorch has no block skipping: our sparse-skip is compared with its mask-and-multiply sparse model.")

    # ---- targets ----
    print("\n## Targets\n")
    res = []

    def target(name, ok, value, why=""):
        verdict = "n/a" if ok is None else "PASS" if ok else "FAIL"
        print(f"- {name}: {value} -> {verdict}{' (' + why + ')' if why else ''}")
        res.append({"target": name, "value": value, "verdict": verdict, "note": why})

    d = o_rec("dense", "train")
    if d and peak_flops:
        mfu = d["flops_per_token"] * d["tokens_per_s"] / peak_flops
        cond = []
        if setup["device"] != "cuda":
            cond.append("not on a GPU")
        if setup["seq"] != 1024:
            cond.append(f"T = {setup['seq']}, not 1024")
        if gpu_name and "H100" not in gpu_name:
            cond.append(f"on {gpu_name}, not an H100")
        target("dense training MFU >= 45% at T = 1024 on an H100", mfu >= 0.45, f"{mfu:.1%}", "; ".join(cond))
    else:
        target("dense training MFU >= 45% at T = 1024 on an H100", None, "-",
               "no dense training result" if not d else "no peak FLOP/s (--peak-tflops)")
    for m in models:
        o = o_rec(m, "train")
        if not o:
            continue
        t = t_rec(m, "train")
        name = f"{m} training tokens/s >= PyTorch's" + (" (its mask-and-multiply sparse)" if m == "sparse-skip" else "")
        if t:
            target(name, o["tokens_per_s"] >= t["tokens_per_s"], f"{o['tokens_per_s']:.0f} vs {t['tokens_per_s']:.0f} "
                   f"({o['tokens_per_s'] / t['tokens_per_s']:.2f}x)")
        else:
            target(name, None, f"{o['tokens_per_s']:.0f} vs -", "PyTorch not available: ratio not printed")
    s = o_rec("sparse", "train")
    if d and s:
        target("sparse (mask-and-multiply) training tokens/s >= 90% of dense", s["tokens_per_s"] >= 0.9 * d["tokens_per_s"],
               f"{s['tokens_per_s'] / d['tokens_per_s']:.1%}")
    elif "train" in whats:
        target("sparse (mask-and-multiply) training tokens/s >= 90% of dense", None, "-", "needs both training results")
    for m in models:
        o = o_rec(m, "decode")
        if o:
            target(f"{m} batch-1 decode within 2x of the bandwidth floor", o["ms_per_token"] <= 2 * o["floor_ms"],
                   f"{o['ms_per_token']:.3f} ms vs floor {o['floor_ms']:.3f} ms ({o['ratio_to_floor']:.2f}x)")
    print(f"\n(wall time: ours {t_ours:.0f} s, PyTorch {t_torch:.0f} s, total {time.time() - t_start:.0f} s)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": setup, "gpu": gpu_name, "torch": torch_info if torch_py else None,
                       "ours": list(ours.values()), "torch_results": list(theirs.values()), "targets": res,
                       "notes": torch_notes}, f, indent=1)
        print(f"results written to {args.json}")
    if ours_failed:
        print(f"gpu_vs_torch: bench_gpu exited with status {rc}{' (timed out)' if timed_out else ''}: some of our "
              "parts failed (see FAILED above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
