#!/usr/bin/python3
"""torch_gpt.py: a PyTorch reference of sgt's GPT (models/gpt.h), dense and SGT, with the same
parameter names, so that (a) bench/train_step_vs_torch.py can time a training step against ours,
and (b) weights saved by sgt (safetensors) load as they are, for golden comparisons.

Architecture (as models/gpt.c, nn/modules.c, nn/router.c):
    x = wte[idx] + wpe[pos]                                  learned absolute positions
    n_layers x { x += attn(rmsnorm(x));  x += ffn(rmsnorm(x)) }
    logits = head(rmsnorm(x))                                untied head
  RMSNorm: x / sqrt(mean(x^2) + eps) * weight, eps 1e-5.
  attn: qkv = x W_qkv^T [B,T,3C], split q,k,v along the output dim in that order, heads contiguous
        within each; causal softmax(q k^T / sqrt(D)) v; proj. No biases.
  dense FFN: down(silu(gate x) * up x).
  SGT FFN: router logits l = fc2(gelu_tanh(fc1 x)) (with biases); hard = top-k indicator of l;
        mask = hard + sigmoid(l) - stopgrad(sigmoid(l)) (straight-through);
        down((silu(gate x) * up x) * mask expanded over each block of block_size).
  aux (SGT, with targets): per layer alpha * nb * sum_i f_i P_i, f_i = count_i / (N k) (constant),
        P_i = mean over tokens of softmax(l)_i; averaged over layers; loss = ce + aux.
  Linear weights are [out, in].

Modes:
  --time       times full training steps (forward + aux, backward, AdamW, zero_grad) in f32 on the
               CPU with torch.set_num_threads(--threads), printing the human summary and one JSON
               line per model in the format of bench/bench_train_step.c. CPU time (all threads,
               time.process_time) is reported beside the wall time, as bench_train_step does.
  --profile    with --time: a per-op table of the timed steps from torch.autograd.profiler.
  --load PATH  loads weights from an sgt safetensors checkpoint (pure-Python reader below; Debian's
               torch 1.13 has no safetensors package) before anything else.
  --check      one forward + backward on the ids of bench_train_step.c (no update), printing
               {"check": model, "ce", "aux", "loss", "grad_norm"}: with --load of the file written by
               `bench_train_step --save`, the two lines must agree to f32 rounding.

GPU benchmark modes (bench/bench_gpu.c's counterpart, driven by bench/gpu_vs_torch.py):
  --what train,prefill,decode   runs those parts instead of --time, printing a human line and one
               JSON line per (model, part) in bench_gpu's format ("impl": "torch"):
                 train    full steps: forward (under autocast) + aux, backward, AdamW (fused on CUDA
                          where torch has it), zero_grad, reading the loss; median tokens/s
                 prefill  forward-only B x T passes under torch.no_grad (full logits): tokens/s
                 decode   batch 1: a --prompt-token prompt, then --decode-tokens single-token steps
                          with a KV cache in the model (static [1, H, prompt+tokens, D] buffers per
                          layer, written at the step's position; attention masks the positions not
                          yet written), argmax on the device, the id read back: ms/token
               Each part builds a fresh model (torch.manual_seed(1234)); on an out-of-memory error
               train/prefill retry at half the batch, as bench_gpu does. FLOPs per token use the
               formula of bench_gpu.c (6 N + 6 L T C for train, 2 N + 2 L T C for prefill).
  --device cpu|cuda            where (default cpu). On CUDA with --dtype f32, matmuls use TF32 like ours.
  --dtype f32|bf16             bf16: torch.autocast(bfloat16) around the forward, f32 master weights,
                               f32 AdamW (the mixed precision of sgt's cfg.compute = SGT_BF16).
  --attention auto|fused|composed   fused: F.scaled_dot_product_attention (is_causal=True: flash
                               attention on CUDA with bf16); composed: the manual matmul + masked softmax
                               + matmul above. auto (default): fused on CUDA, composed on the CPU (the
                               reference path, unchanged). Without SDPA (torch < 2.0) fused falls back to
                               composed with a printed note.
  --compile                    torch.compile the model (train, prefill) and the decode step
                               (mode="reduce-overhead": CUDA graphs). Without torch.compile (torch < 2.0)
                               it prints a note and runs eager; a compile failure in the first call falls
                               back to eager with a note. The JSON line says "compiled": true/false.
  --peak-tflops X              adds "mfu" to the JSON lines (the driver computes MFU itself otherwise).
  --what runs only with --model dense|sparse|both (PyTorch has no block skipping: bench/gpu_vs_torch.py
  compares our sparse-skip with this sparse model), and not with --check, --time, --load or --profile.

Run with /usr/bin/python3 (Debian's python3-torch); the pyenv `python3` on PATH has no torch.
"""

import argparse
import gc
import json
import math
import os
import statistics
import struct
import sys
import time


def _blas_threads_from_argv(argv):
    """--threads N also has to reach OpenBLAS, which Debian's torch uses for GEMMs: its pthread pool
    ignores torch.set_num_threads and sizes itself from OPENBLAS_NUM_THREADS when loaded, i.e. at
    `import torch`. So this runs before the import (argparse proper comes later)."""
    for i, a in enumerate(argv):
        v = None
        if a.startswith("--threads="):
            v = a.split("=", 1)[1]
        elif a == "--threads" and i + 1 < len(argv):
            v = argv[i + 1]
        if v is not None and v.isdigit() and int(v) > 0:
            os.environ["OPENBLAS_NUM_THREADS"] = v
            os.environ["OMP_NUM_THREADS"] = v


_blas_threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402  (after the thread settings above)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# The presets of models/gpt.c: L, C, H, d_ff, V, ctx, num_blocks, block_size, top_k.
PRESETS = {
    "sgt-150m": dict(n_layers=12, d_model=768, n_heads=12, d_ff=2048, vocab=50257, ctx_len=1024,
                     num_blocks=32, block_size=64, top_k=16),
    "small": dict(n_layers=6, d_model=384, n_heads=6, d_ff=1024, vocab=50257, ctx_len=512,
                  num_blocks=16, block_size=64, top_k=8),
    "tiny": dict(n_layers=4, d_model=256, n_heads=4, d_ff=512, vocab=50257, ctx_len=256,
                 num_blocks=8, block_size=64, top_k=4),
    "nano": dict(n_layers=2, d_model=32, n_heads=2, d_ff=64, vocab=101, ctx_len=32,
                 num_blocks=4, block_size=16, top_k=2),
}
ROUTER_HIDDEN = 128
INIT_STD = 0.02
NORM_EPS = 1e-5
AUX_WEIGHT = 0.01
LR, BETAS, EPS, WEIGHT_DECAY = 3e-4, (0.9, 0.95), 1e-8, 0.1


# ---- the model ----

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")  # torch >= 2.0


class KVCache(nn.Module):
    """Keys and values of every position of one layer, [B, H, max_len, D] each, written in place at
    the positions of each call (static shapes: what torch.compile and CUDA graphs want)."""

    def __init__(self, B, H, max_len, D, dtype, device):
        super().__init__()
        self.register_buffer("k", torch.zeros(B, H, max_len, D, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(B, H, max_len, D, dtype=dtype, device=device), persistent=False)


class Attention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.C, self.H, self.D = C, H, C // H
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.proj = nn.Linear(C, C, bias=False)
        self.sdpa = False      # F.scaled_dot_product_attention instead of the manual path (GPU modes)
        self.kv_cache = None   # a KVCache for incremental decoding (GPT.setup_cache)

    def forward(self, x, pos=None):
        B, T, C = x.shape
        # [B, T, 3, H, D] -> [3, B, H, T, D]
        q, k, v = self.qkv(x).view(B, T, 3, self.H, self.D).permute(2, 0, 3, 1, 4)
        if pos is not None:  # decoding with the cache: write positions pos, attend to those <= each
            kc, vc = self.kv_cache.k, self.kv_cache.v
            kc[:, :, pos] = k.to(kc.dtype)
            vc[:, :, pos] = v.to(vc.dtype)
            allowed = pos.view(T, 1) >= torch.arange(kc.shape[2], device=x.device).view(1, -1)  # [T, max_len]
            k, v = kc.to(q.dtype), vc.to(q.dtype)
            if self.sdpa:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
                att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
                y = att.to(v.dtype) @ v
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            return self.proj(y)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class SwiGLU(nn.Module):
    def __init__(self, C, I):
        super().__init__()
        self.gate = nn.Linear(C, I, bias=False)
        self.up = nn.Linear(C, I, bias=False)
        self.down = nn.Linear(I, C, bias=False)

    def hidden(self, x):
        return F.silu(self.gate(x)) * self.up(x)

    def forward(self, x):
        return self.down(self.hidden(x))


class Router(nn.Module):
    def __init__(self, C, num_blocks, top_k):
        super().__init__()
        self.top_k = top_k
        self.fc1 = nn.Linear(C, ROUTER_HIDDEN, bias=True)
        self.fc2 = nn.Linear(ROUTER_HIDDEN, num_blocks, bias=True)

    def forward(self, x):
        logits = self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
        idx = logits.detach().topk(self.top_k, dim=-1).indices
        hard = torch.zeros_like(logits).scatter_(-1, idx, 1.0)
        s = torch.sigmoid(logits)
        mask = hard + (s - s.detach())  # forward: exactly hard; d mask / d l = sigmoid'(l)
        return logits, hard, mask


class BlockSparseSwiGLU(SwiGLU):
    """The SwiGLU's parameters sit beside the router's, as in sgt (ffn.gate, ffn.router.fc1...)."""

    def __init__(self, C, num_blocks, block_size, top_k):
        super().__init__(C, num_blocks * block_size)
        self.nb, self.bs = num_blocks, block_size
        self.router = Router(C, num_blocks, top_k)

    def forward(self, x):
        logits, hard, mask = self.router(x)
        h = self.hidden(x)
        masked = (h.unflatten(-1, (self.nb, self.bs)) * mask.unsqueeze(-1)).flatten(-2)
        return self.down(masked), (logits, hard)


def load_balance_loss(logits, hard, top_k, alpha):
    nb = logits.shape[-1]
    l2, h2 = logits.reshape(-1, nb), hard.reshape(-1, nb)
    f = h2.sum(0) / (l2.shape[0] * top_k)  # constant: hard carries no gradient
    P = l2.softmax(-1).mean(0)
    return alpha * nb * (f * P).sum()


class Layer(nn.Module):
    def __init__(self, cfg, sparse):
        super().__init__()
        C = cfg["d_model"]
        self.sparse = sparse
        self.ln1 = RMSNorm(C)
        self.attn = Attention(C, cfg["n_heads"])
        self.ln2 = RMSNorm(C)
        if sparse:
            self.ffn = BlockSparseSwiGLU(C, cfg["num_blocks"], cfg["block_size"], cfg["top_k"])
        else:
            self.ffn = SwiGLU(C, cfg["d_ff"])


class GPT(nn.Module):
    def __init__(self, cfg, sparse):
        super().__init__()
        self.cfg, self.sparse = cfg, sparse
        C, V, L = cfg["d_model"], cfg["vocab"], cfg["n_layers"]
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(cfg["ctx_len"], C)
        self.layers = nn.ModuleList([Layer(cfg, sparse) for _ in range(L)])
        self.ln_f = RMSNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        # GPT-2 style init as in sgt (values differ: sgt's RNG is its own): N(0, 0.02), residual
        # projections N(0, 0.02 / sqrt(2 L)), biases 0, norms 1.
        res_std = INIT_STD / math.sqrt(2 * L)
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            else:
                std = res_std if name.endswith(("attn.proj.weight", "ffn.down.weight")) else INIT_STD
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets=None, aux_weight=AUX_WEIGHT, pos=None, last_only=False):
        """Returns (logits, ce, aux, loss); ce/aux/loss are None without targets. pos (a long tensor of
        T positions) decodes with the KV caches of setup_cache; last_only keeps the last position's
        logits only."""
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(pos if pos is not None else torch.arange(T, device=idx.device))
        aux = None
        for layer in self.layers:
            x = x + layer.attn(layer.ln1(x), pos)
            h = layer.ln2(x)
            if self.sparse:
                y, (logits, hard) = layer.ffn(h)
                x = x + y
                if targets is not None and aux_weight > 0:
                    a = load_balance_loss(logits, hard, self.cfg["top_k"], aux_weight)
                    aux = a if aux is None else aux + a
            else:
                x = x + layer.ffn(h)
        if last_only:
            x = x[:, -1:]
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None, None, None
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss = ce
        if aux is not None:
            aux = aux / len(self.layers)
            loss = ce + aux
        return logits, ce, aux, loss

    def set_sdpa(self, on):
        for layer in self.layers:
            layer.attn.sdpa = on

    def setup_cache(self, B, max_len, dtype, device):
        """A KV cache of max_len positions in every layer (for forward(..., pos=...))."""
        H, D = self.cfg["n_heads"], self.cfg["d_model"] // self.cfg["n_heads"]
        for layer in self.layers:
            layer.attn.kv_cache = KVCache(B, H, max_len, D, dtype, device)

    def matmul_params(self):
        """N of bench_gpu.c: every 2-D weight but the embedding tables (all FFN blocks: PyTorch's
        sparse model multiplies them all)."""
        return sum(p.numel() for n, p in self.named_parameters() if p.dim() == 2 and not n.startswith(("wte.", "wpe.")))

    def param_groups(self):
        """AdamW groups as sgt's decay flags: decay on Linear weights (router's too), none on
        embeddings, norms and biases."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            is_matrix = p.dim() == 2 and not name.startswith(("wte.", "wpe."))
            (decay if is_matrix else no_decay).append(p)
        return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


# ---- safetensors (pure Python) ----

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    """{name: torch.Tensor} and the metadata dict of a safetensors file (all of it in memory)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors header ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header of {n} bytes exceeds the file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        dt, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if e > len(data) or b > e:
            raise ValueError(f"{path}: tensor '{name}' data_offsets [{b},{e}] outside the data ({len(data)} bytes)")
        if dt == "BF16":
            u16 = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32)
        elif dt in _ST_DTYPES:
            arr = np.frombuffer(data[b:e], dtype=np.dtype(_ST_DTYPES[dt]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dt}")
        count = int(np.prod(shape)) if shape else 1
        if arr.size != count:
            raise ValueError(f"{path}: tensor '{name}' has {arr.size} elements, shape {shape} needs {count}")
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out, meta


def load_sgt_weights(model, path):
    """Copies every parameter from an sgt checkpoint; the names must match exactly (both ways)."""
    tensors, _ = read_safetensors(path)
    copy_sgt_weights(model, tensors, path)


def copy_sgt_weights(model, tensors, path):
    """Copies every parameter from {name: tensor} read from the sgt checkpoint `path` (by any reader,
    e.g. the safetensors package); the names must match exactly (both ways)."""
    own = dict(model.named_parameters())
    missing, unknown = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unknown:
        raise ValueError(f"{path}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unknown {unknown[:5]}{'...' if len(unknown) > 5 else ''}")
    with torch.no_grad():
        for name, p in own.items():
            t = tensors[name]
            if (name in ("head.weight", "wte.weight") and t.dim() == 2 and t.shape[0] > p.shape[0]
                    and t.shape[1] == p.shape[1] and not t[p.shape[0]:].any()):
                t = t[:p.shape[0]]  # sgt pads the output projection's rows (zeros) to an aligned count
            if tuple(t.shape) != tuple(p.shape):
                raise ValueError(f"{path}: tensor '{name}' has shape {list(t.shape)}, the model expects {list(p.shape)}")
            p.copy_(t.to(p.dtype))


# ---- inputs, as bench_train_step.c ----

def make_batch(B, T, V):
    i = np.arange(B * (T + 1), dtype=np.uint64)
    ids = (((i * np.uint64(2654435761) + np.uint64(12345)) & np.uint64(0xFFFFFFFF)) % np.uint64(V)).astype(np.int64)
    ids = torch.from_numpy(ids.reshape(B, T + 1))
    return ids[:, :T].contiguous(), ids[:, 1:].contiguous()


# ---- modes ----

def check(model, name, B, T, weights):
    x, y = make_batch(B, T, model.cfg["vocab"])
    model.zero_grad(set_to_none=True)
    _, ce, aux, loss = model(x, y)
    loss.backward()
    gn = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None))
    print(json.dumps({"check": name, "impl": "torch", "weights": weights, "ce": float(ce),
                      "aux": float(aux) if aux is not None else 0.0, "loss": float(loss), "grad_norm": gn}))
    model.zero_grad(set_to_none=True)


def time_steps(model, name, args):
    B, T = args.batch, args.seq
    x, y = make_batch(B, T, model.cfg["vocab"])
    opt = torch.optim.AdamW(model.param_groups(), lr=LR, betas=BETAS, eps=EPS)
    ph = {"forward": [], "backward": [], "optimizer": [], "zero": []}
    tot, cpu, first_loss = [], [], None
    prof = None
    for s in range(args.warmup + args.steps):
        if args.profile and s == args.warmup:
            prof = torch.autograd.profiler.profile()
            prof.__enter__()
        c0 = time.process_time()
        t0 = time.perf_counter()
        _, _, _, loss = model(x, y)
        lv = float(loss)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        c4 = time.process_time()
        if s == 0:
            first_loss = lv
        if s >= args.warmup:
            for k, v in zip(ph, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                ph[k].append(v)
            tot.append(t4 - t0)
            cpu.append(c4 - c0)
    if prof is not None:
        prof.__exit__(None, None, None)
    med, mn, tok, cmed = statistics.median(tot), min(tot), B * T, statistics.median(cpu)
    pm = {k: statistics.median(v) for k, v in ph.items()}
    print(f"step: median {1e3 * med:.1f} ms, min {1e3 * mn:.1f} ms  ->  {tok / med:.0f} tokens/s (median), "
          f"{tok / mn:.0f} (best); {args.steps} steps after {args.warmup} warm-up")
    print("phases (median ms):" + "".join(f"  {k} {1e3 * v:.1f} ({100 * v / med:.0f}%)" for k, v in pm.items()))
    print(f"CPU time: median {1e3 * cmed:.1f} ms/step, {cmed / med:.2f} cores busy on average "
          f"(of {torch.get_num_threads()} threads)")
    print(f"loss {first_loss:.4f} (first step) -> {lv:.4f} (last)")
    print(json.dumps({"model": name, "impl": "torch", "config": args.config, "batch": B, "seq": T,
                      "threads": torch.get_num_threads(), "steps": args.steps, "tokens_per_s": round(tok / med, 1),
                      "median_ms": round(1e3 * med, 3), "min_ms": round(1e3 * mn, 3),
                      "forward_ms": round(1e3 * pm["forward"], 3), "backward_ms": round(1e3 * pm["backward"], 3),
                      "optimizer_ms": round(1e3 * pm["optimizer"], 3), "zero_reset_ms": round(1e3 * pm["zero"], 3),
                      "cpu_ms": round(1e3 * cmed, 3), "first_loss": round(first_loss, 6)}))
    if prof is not None:
        print(f"profile (torch.autograd.profiler, totals over the {args.steps} timed steps; the profiler "
              "slows the step):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    sys.stdout.flush()


# ---- the GPU benchmark modes (--what), bench_gpu.c's counterpart ----

def _note(msg):
    print(f"note: {msg}", flush=True)


def _short(e, n=400):
    m = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return m if len(m) <= n else m[:n] + "..."


def _is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e).lower()


class GpuBench:
    """Shared settings of the --what parts."""

    def __init__(self, args, cfg):
        self.args, self.cfg = args, cfg
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.amp = args.dtype == "bf16"
        want_sdpa = args.attention == "fused" or (args.attention == "auto" and self.cuda)
        if want_sdpa and not HAVE_SDPA:
            _note(f"torch {torch.__version__} has no F.scaled_dot_product_attention: composed (manual) attention")
        self.sdpa = want_sdpa and HAVE_SDPA
        self.compile = args.compile and hasattr(torch, "compile")
        if args.compile and not self.compile:
            _note(f"torch {torch.__version__} has no torch.compile: running eager")
        if self.cuda and not self.amp:
            torch.backends.cuda.matmul.allow_tf32 = True  # f32 matmuls on TF32 tensor cores, as ours
            torch.backends.cudnn.allow_tf32 = True

    def autocast(self):
        return torch.autocast(device_type=self.dev.type, dtype=torch.bfloat16, enabled=self.amp)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def build(self, name):
        torch.manual_seed(1234)
        model = GPT(self.cfg, sparse=(name == "sparse")).float().to(self.dev)
        model.set_sdpa(self.sdpa)
        return model

    def compiled(self, obj, mode=None):
        if not self.compile:
            return obj, False
        try:
            return (torch.compile(obj, mode=mode) if mode else torch.compile(obj)), True
        except Exception as e:  # noqa: BLE001 (any failure: run eager)
            _note(f"torch.compile failed ({_short(e)}): running eager")
            return obj, False

    def release(self):
        gc.collect()
        if self.compile and hasattr(torch, "_dynamo"):
            torch._dynamo.reset()
        if self.cuda:
            torch.cuda.empty_cache()

    def adamw(self, model):
        kw = dict(lr=LR, betas=BETAS, eps=EPS)
        if self.cuda:
            for extra in ({"fused": True}, {"foreach": True}):
                try:
                    return torch.optim.AdamW(model.param_groups(), **kw, **extra), next(iter(extra))
                except (TypeError, RuntimeError, ValueError):
                    pass
        return torch.optim.AdamW(model.param_groups(), **kw), "default"

    def first_call(self, what, fn, fallback):
        """fn() (the first call of a compiled function); on a failure other than out-of-memory,
        prints a note and returns fallback() instead, the eager path."""
        try:
            return fn(), True
        except Exception as e:  # noqa: BLE001
            if _is_oom(e):
                raise
            _note(f"the compiled {what} failed in its first call ({_short(e)}): running eager")
            if hasattr(torch, "_dynamo"):
                torch._dynamo.reset()
            return fallback(), False

    # -- parts: each returns the JSON fields of its result --

    def train(self, name, B):
        a, cfg = self.args, self.cfg
        T = a.seq
        model = self.build(name)
        opt, opt_kind = self.adamw(model)
        model_c, compiled = self.compiled(model)
        x, y = (t.to(self.dev) for t in make_batch(B, T, cfg["vocab"]))

        def step(m):
            with self.autocast():
                _, _, _, loss = m(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss)  # waits for the step's kernels

        tot, losses = [], []
        for s in range(a.warmup + a.steps):
            self.sync()
            t0 = time.perf_counter()
            if s == 0 and compiled:
                lv, compiled = self.first_call("training step", lambda: step(model_c),
                                               lambda: (opt.zero_grad(set_to_none=True), step(model))[1])
                if not compiled:
                    model_c = model
            else:
                lv = step(model_c)
            self.sync()
            t1 = time.perf_counter()
            losses.append(lv)
            if s >= a.warmup:
                tot.append(t1 - t0)
        med = statistics.median(tot)
        fl = 6 * model.matmul_params() + 6 * cfg["n_layers"] * T * cfg["d_model"]
        return dict(batch=B, seq=T, steps=a.steps, compiled=compiled, optimizer=opt_kind,
                    median_ms=round(1e3 * med, 4), min_ms=round(1e3 * min(tot), 4),
                    tokens_per_s=round(B * T / med, 1), flops_per_token=fl, first_loss=round(losses[0], 6),
                    last_loss=round(losses[-1], 6), loss_finite=all(math.isfinite(v) for v in losses))

    def prefill(self, name, B):
        a, cfg = self.args, self.cfg
        T = a.seq
        model = self.build(name)
        model_c, compiled = self.compiled(model)
        x = make_batch(B, T, cfg["vocab"])[0].to(self.dev)

        def fwd(m):
            with torch.no_grad(), self.autocast():
                m(x)

        tot = []
        for s in range(a.warmup + a.steps):
            self.sync()
            t0 = time.perf_counter()
            if s == 0 and compiled:
                _, compiled = self.first_call("prefill", lambda: fwd(model_c), lambda: fwd(model))
                if not compiled:
                    model_c = model
            else:
                fwd(model_c)
            self.sync()
            t1 = time.perf_counter()
            if s >= a.warmup:
                tot.append(t1 - t0)
        med = statistics.median(tot)
        fl = 2 * model.matmul_params() + 2 * cfg["n_layers"] * T * cfg["d_model"]
        return dict(batch=B, seq=T, steps=a.steps, compiled=compiled, median_ms=round(1e3 * med, 4),
                    min_ms=round(1e3 * min(tot), 4), tokens_per_s=round(B * T / med, 1), flops_per_token=fl)

    def decode(self, name, B):
        a, cfg = self.args, self.cfg
        npr = max(1, min(a.prompt, cfg["ctx_len"] // 2))
        ng = min(a.decode_tokens, cfg["ctx_len"] - npr)
        model = self.build(name)
        model.setup_cache(1, npr + ng, torch.bfloat16 if self.amp else torch.float32, self.dev)
        prompt = make_batch(1, npr, cfg["vocab"])[0].to(self.dev)

        def step_eager(idx, pos):  # called under no_grad and autocast (compiled, it sees both)
            return model(idx, pos=pos, last_only=True)[0][0, -1].argmax()

        step_c, compiled = self.compiled(step_eager, mode="reduce-overhead")
        times = []
        with torch.no_grad(), self.autocast():
            for session, n in enumerate((min(ng, 8), ng)):  # a warm-up session, then the timed one
                nxt = int(step_eager(prompt, torch.arange(npr, device=self.dev)))
                for i in range(n):
                    self.sync()
                    t0 = time.perf_counter()
                    idx = torch.tensor([[nxt]], dtype=torch.long, device=self.dev)
                    pos = torch.tensor([npr + i], dtype=torch.long, device=self.dev)
                    if session == 0 and i == 0 and compiled:
                        r, compiled = self.first_call("decode step", lambda: step_c(idx, pos),
                                                      lambda: step_eager(idx, pos))
                        if not compiled:
                            step_c = step_eager
                        nxt = int(r)
                    else:
                        nxt = int(step_c(idx, pos))  # waits for the step
                    t1 = time.perf_counter()
                    if session == 1:
                        times.append(t1 - t0)
        times.sort()
        med = statistics.median(times)
        return dict(batch=1, prompt=npr, tokens=ng, compiled=compiled, median_ms=round(1e3 * med, 4),
                    min_ms=round(1e3 * times[0], 4), ms_per_token=round(1e3 * med, 4),
                    p90_ms=round(1e3 * times[int(0.9 * (len(times) - 1))], 4), tokens_per_s=round(1 / med, 2))

    def run(self, name, what):
        a = self.args
        B = {"train": a.batch, "prefill": a.prefill_batch or a.batch, "decode": 1}[what]
        out = {"bench": "gpu", "impl": "torch", "model": name, "what": what, "device": self.dev.type,
               "config": a.config, "precision": a.dtype, "attention": "fused" if self.sdpa else "composed",
               "torch": torch.__version__, "batch_requested": B}
        while True:
            failure = None
            try:
                r = getattr(self, what)(name, B)
            except Exception as e:  # noqa: BLE001 (report it in the JSON line; the other parts still run)
                failure = (_is_oom(e), _short(e, 600))  # not e itself: its traceback holds the tensors
            self.release()
            if failure is None:
                break
            if failure[0] and B > 1 and what != "decode":
                print(f"\nnote: {name} {what} at B x T = {B} x {a.seq} does not fit ({failure[1][:200]}); "
                      f"retrying at batch {B // 2}", flush=True)
                B //= 2
                continue
            r = {"batch": B, "error": failure[1]}
            break
        out.update(r)
        if a.peak_tflops and "flops_per_token" in out:
            out["mfu"] = round(out["flops_per_token"] * out["tokens_per_s"] / (a.peak_tflops * 1e12), 4)
        shape = f"1 x ({out.get('prompt')}+{out.get('tokens')})" if what == "decode" else f"{out['batch']} x {a.seq}"
        asked = f" (asked for batch {out['batch_requested']}: it did not fit)" if out["batch_requested"] != out["batch"] else ""
        print(f"\n== {name} {what}, {shape}{asked}")
        if "error" in out:
            print(f"FAILED: {out['error']}")
        elif what == "decode":
            print(f"decode: median {out['ms_per_token']:.3f} ms/token, p90 {out['p90_ms']:.3f}, best {out['min_ms']:.3f} "
                  f"over {out['tokens']} tokens after a {out['prompt']}-token prompt (compiled: {out['compiled']})")
        else:
            extra = f", loss {out['first_loss']:.4f} -> {out['last_loss']:.4f}, AdamW {out['optimizer']}" if what == "train" else ""
            mfu = f", MFU {100 * out['mfu']:.1f}%" if "mfu" in out else ""
            print(f"{what}: median {out['median_ms']:.2f} ms, best {out['min_ms']:.2f} ms over {a.steps} steps after "
                  f"{a.warmup} warm-up -> {out['tokens_per_s']:.0f} tokens/s{mfu} (compiled: {out['compiled']}){extra}")
        print(json.dumps(out), flush=True)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["dense", "sparse", "both"], default="both")
    ap.add_argument("--config", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top_k_blocks", type=int, default=0, help="the SGT model's k (default: the preset's)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--time", action="store_true", help="time training steps (default when --check is not given)")
    ap.add_argument("--check", action="store_true", help="print ce/aux/loss/grad norm of one step, no update")
    ap.add_argument("--profile", action="store_true", help="per-op table of the timed steps (torch's profiler)")
    ap.add_argument("--what", help="comma list of train,prefill,decode: the GPU benchmark parts (bench_gpu's "
                    "format) instead of --time")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="bf16: autocast to bfloat16 with f32 master weights (--what modes)")
    ap.add_argument("--attention", choices=["auto", "fused", "composed"], default="auto",
                    help="fused: scaled_dot_product_attention; auto: fused on cuda, composed on cpu (--what modes)")
    ap.add_argument("--compile", action="store_true", help="torch.compile where available (--what modes)")
    ap.add_argument("--prefill-batch", type=int, default=0, help="prefill batch (default --batch)")
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=64, help="decode prompt length (at most half the context)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="adds MFU to the --what JSON lines")
    ap.add_argument("--load", metavar="PATH", help="sgt safetensors weights; with --model both, PATH gets "
                    "'.dense'/'.sparse' inserted before the extension, as bench_train_step --save writes")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    cfg = dict(PRESETS[args.config])
    if args.top_k_blocks:
        if not 0 < args.top_k_blocks <= cfg["num_blocks"]:
            ap.error(f"--top_k_blocks {args.top_k_blocks} is not in 1..{cfg['num_blocks']} for preset '{args.config}'")
        cfg["top_k"] = args.top_k_blocks
    if args.seq > cfg["ctx_len"]:
        ap.error(f"--seq {args.seq} exceeds the context length {cfg['ctx_len']} of preset '{args.config}'")
    if not args.what and (args.device != "cpu" or args.dtype != "f32" or args.compile or args.attention != "auto"):
        ap.error("--device, --dtype, --attention and --compile are for the --what modes (--time and --check "
                 "are the f32 CPU reference)")
    whats = []
    if args.what:
        whats = [w for w in args.what.split(",") if w]
        bad = [w for w in whats if w not in ("train", "prefill", "decode")]
        if bad or not whats:
            ap.error(f"--what takes a comma list of train, prefill, decode (got {args.what!r})")
        if args.check or args.time or args.load or args.profile:
            ap.error("--what runs on its own (not with --check, --time, --load or --profile)")
        if args.device == "cuda" and not torch.cuda.is_available():
            print(f"torch_gpt: skipped: torch {torch.__version__} has no usable CUDA device")
            sys.exit(77)
        gb = GpuBench(args, cfg)
        dev_name = torch.cuda.get_device_name(0) if gb.cuda else "cpu"
        print(f"torch_gpt: torch {torch.__version__}, device {args.device} ({dev_name}), config {args.config}, "
              f"B {args.batch} x T {args.seq}, {args.dtype}{' (autocast, f32 master weights)' if gb.amp else ''}"
              f"{' (TF32 matmuls)' if gb.cuda and not gb.amp else ''}, attention "
              f"{'sdpa' if gb.sdpa else 'composed'}, compile {'on' if gb.compile else 'off'}, threads "
              f"{torch.get_num_threads()}, AdamW lr {LR}, aux weight {AUX_WEIGHT}", flush=True)
        names = ["dense", "sparse"] if args.model == "both" else [args.model]
        for name in names:
            for w in ("train", "prefill", "decode"):
                if w in whats:
                    gb.run(name, w)
        return
    do_time = args.time or not args.check
    print(f"torch_gpt: torch {torch.__version__}, config {args.config}, B {args.batch}, T {args.seq}, "
          f"threads {torch.get_num_threads()} (OPENBLAS_NUM_THREADS {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}), f32, AdamW lr {LR}, aux weight {AUX_WEIGHT}")
    names = ["dense", "sparse"] if args.model == "both" else [args.model]
    for name in names:
        model = GPT(cfg, sparse=(name == "sparse")).float()
        weights = None
        if args.load:
            weights = args.load
            if args.model == "both":
                dot = args.load.rfind(".")
                dot = dot if dot > args.load.rfind("/") else len(args.load)
                weights = f"{args.load[:dot]}.{name}{args.load[dot:]}"
            load_sgt_weights(model, weights)
        nparams = sum(p.numel() for p in model.parameters())
        print(f"\n== {name} ({args.config}{', SGT' if name == 'sparse' else ''}): {nparams} params, "
              f"B {args.batch} x T {args.seq} = {args.batch * args.seq} tokens/step")
        if args.check:
            check(model, name, args.batch, args.seq, weights)
        if do_time:
            time_steps(model, name, args)


if __name__ == "__main__":
    main()
