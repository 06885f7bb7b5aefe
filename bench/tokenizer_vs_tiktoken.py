#!/usr/bin/env python3
"""tokenizer_vs_tiktoken.py: sgt's GPT-2 tokenizer (apps/data/tokenizer.c) against tiktoken.

tiktoken's "gpt2" Encoding is built offline from the tokenizer directory (encoder.json and
vocab.bpe, as in ../shared/tokenizer/gpt2): its mergeable ranks are the bytes of each token of
encoder.json (GPT-2's byte-to-unicode map undone), its pattern GPT-2's regex, its one special token
"<|endoftext|>" = 50256. Nothing is downloaded.

1. Identity: bench/bench_tokenize --dump encodes every document of the given JSONL files; the ids
   must equal tiktoken's encode_ordinary() of the same text, document by document (PASS / FAIL).
2. Throughput on 1 thread and on --threads threads (default: all cores): rounds alternate between
   ours (one bench_tokenize run of --inner passes after a warm-up pass, its median) and tiktoken
   (--inner passes of encode_ordinary on one thread, encode_ordinary_batch(num_threads=N) on N,
   after a warm-up pass, their median); the table shows the median over --rounds rounds, MB/s of
   UTF-8 text and tokens/s, and the ratio ours / tiktoken (goal >= 1.0).

Needs tiktoken (pip install tiktoken==0.14.*). Usage:
  tokenizer_vs_tiktoken.py [--bench build/bench/bench_tokenize] [--tokenizer ../shared/tokenizer/gpt2]
                           [--rounds 5] [--inner 3] [--threads N] [FILE.jsonl ...]
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def byte_decoder():
    """GPT-2's unicode symbol -> byte (the inverse of its bytes_to_unicode map)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def tiktoken_gpt2(tok_dir):
    """tiktoken's gpt2 Encoding from tok_dir/encoder.json (vocab.bpe must be there too)."""
    import tiktoken
    for f in ("encoder.json", "vocab.bpe"):
        if not os.path.isfile(os.path.join(tok_dir, f)):
            sys.exit(f"tokenizer_vs_tiktoken: {os.path.join(tok_dir, f)} not found")
    with open(os.path.join(tok_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    dec = byte_decoder()
    ranks = {bytes(dec[ch] for ch in tok): i for tok, i in encoder.items() if tok != "<|endoftext|>"}
    return tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": encoder["<|endoftext|>"]},
                             explicit_n_vocab=len(encoder))


def read_docs(files):
    docs = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    docs.append(json.loads(line)["text"])
    return docs


def ours(bench, tok_dir, files, threads, inner):
    """(median seconds of one pass, tokens) from one bench_tokenize run"""
    p = subprocess.run([bench, "--tokenizer", tok_dir, "--threads", str(threads), "--rounds",
                        str(inner)] + files, stdout=subprocess.PIPE, text=True, check=True)
    secs, toks = [], 0
    for line in p.stdout.splitlines():
        if line.startswith("round"):
            w = line.split()
            toks = int(w[4])
            secs.append(float(w[6]))
    return statistics.median(secs), toks


def theirs(enc, docs, threads, inner):
    def one_pass():
        if threads == 1:
            return sum(len(enc.encode_ordinary(d)) for d in docs)
        return sum(len(x) for x in enc.encode_ordinary_batch(docs, num_threads=threads))
    one_pass()  # warm-up, like ours
    secs = []
    for _ in range(inner):
        t0 = time.perf_counter()
        toks = one_pass()
        secs.append(time.perf_counter() - t0)
    return statistics.median(secs), toks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_tokenize"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "tokenizer", "gpt2"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = a.files or sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "*.jsonl")))
    if not files:
        sys.exit("tokenizer_vs_tiktoken: no JSONL files (give some, or have ../shared/data)")
    import tiktoken
    enc = tiktoken_gpt2(a.tokenizer)
    docs = read_docs(files)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"tiktoken {tiktoken.__version__}; {len(docs)} documents, {nbytes / 1e6:.3f} MB of UTF-8 "
          f"from {', '.join(os.path.basename(f) for f in files)}")

    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "ids.txt")
        subprocess.run([a.bench, "--tokenizer", a.tokenizer, "--dump", dump] + files, check=True)
        with open(dump) as f:
            mine = [[int(x) for x in line.split()] for line in f]
    bad = [i for i, d in enumerate(docs) if i >= len(mine) or enc.encode_ordinary(d) != mine[i]]
    if len(mine) != len(docs):
        bad.append(len(docs))
    n_ids = sum(len(m) for m in mine)
    print(f"identical ids: {'PASS' if not bad else 'FAIL'} ({len(docs) - len(bad)} of {len(docs)} "
          f"documents, {n_ids} ids)" + (f"; first differing document {bad[0]}" if bad else ""))

    rows = []
    for threads in sorted({1, a.threads}):
        ms, ts = [], []
        toks = 0
        for _ in range(a.rounds):  # alternate: ours, tiktoken, ours, ...
            s, toks = ours(a.bench, a.tokenizer, files, threads, a.inner)
            ms.append(s)
            s, _ = theirs(enc, docs, threads, a.inner)
            ts.append(s)
        m, t = statistics.median(ms), statistics.median(ts)
        rows.append((threads, nbytes / 1e6 / m, toks / m, nbytes / 1e6 / t, toks / t, t / m))
    print(f"\n{'threads':>7} {'sgt MB/s':>9} {'sgt tok/s':>11} {'tiktoken MB/s':>13} "
          f"{'tiktoken tok/s':>14} {'ratio':>6}")
    for r in rows:
        print(f"{r[0]:>7} {r[1]:>9.2f} {r[2]:>11.0f} {r[3]:>13.2f} {r[4]:>14.0f} {r[5]:>5.2f}x")
    print(f"(median of {a.rounds} alternating rounds, each the median of {a.inner} passes after a "
          "warm-up pass; ratio = sgt / tiktoken throughput, goal >= 1.0)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
