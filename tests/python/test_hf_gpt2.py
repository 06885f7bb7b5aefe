#!/usr/bin/env python3
"""test_hf_gpt2.py: the classic GPT-2 (models/gpt2.h) and Hugging Face's GPT2LMHeadModel, both ways.

1. Import: a random GPT2LMHeadModel (2 layers, 32 wide, vocabulary 101, 32 positions; its biases
   and LayerNorms randomised too), saved by transformers' save_pretrained (model.safetensors with
   Conv1D weights), is loaded by `hf_gpt2 --hf_dir` and gives the same logits.
2. Export: a nano GPT-2 initialised and trained 30 steps by sgt, written by `hf_gpt2 --export`,
   is loaded by GPT2LMHeadModel.from_pretrained and gives the same logits.
3. Round trip: the imported model exported again loads back with the same logits.
Tolerance: max |sgt - transformers| <= 1e-4 * max(1, max |logits|) (f32 both, eval mode).
A directory with the wrong shapes is refused with one line naming the file.

Usage: test_hf_gpt2.py HF_GPT2_EXE. Exits 77 (skip) without torch or transformers.
"""

import json
import os
import subprocess
import sys
import tempfile

TOL = 1e-4
try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"SKIP: {e} (pip install transformers: bash .ci/deps --python)")
    sys.exit(77)

EXE = sys.argv[1]
IDS = [5, 17, 3, 99, 42, 0, 64, 7, 23, 100, 11, 58]


def sgt_logits(args, out):
    r = subprocess.run([EXE, *args, "--ids", ",".join(map(str, IDS)), "--logits_out", out],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"FAIL: hf_gpt2 {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    with open(out) as f:
        return torch.tensor(json.load(f)["logits"], dtype=torch.float32)


def hf_logits(model):
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0]


def compare(what, ours, theirs):
    assert ours.shape == theirs.shape, f"{what}: shapes {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    d = (ours - theirs).abs().max().item()
    scale = max(1.0, theirs.abs().max().item())
    print(f"{what}: max |sgt - transformers| = {d:.3g} (logits up to {scale:.3g})")
    if d > TOL * scale:
        sys.exit(f"FAIL: {what}: {d:.3g} > {TOL * scale:.3g}")


def main():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # every parameter away from its initial 0 / 1, so each one matters
        for name, p in hf.named_parameters():
            if "ln_" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "hf"), os.path.join(d, "logits.json")
        hf.save_pretrained(src, safe_serialization=True)
        compare("import (transformers -> sgt)", sgt_logits(["--hf_dir", src], out), hf_logits(hf))

        exp = os.path.join(d, "sgt")
        ours = sgt_logits(["--config", "gpt2-nano", "--seed", "3", "--train_steps", "30", "--export", exp], out)
        back = GPT2LMHeadModel.from_pretrained(exp)
        compare("export (sgt -> transformers)", ours, hf_logits(back))

        again = os.path.join(d, "again")
        sgt_logits(["--hf_dir", src, "--export", again], out)
        compare("round trip (transformers -> sgt -> transformers)", hf_logits(GPT2LMHeadModel.from_pretrained(again)),
                hf_logits(hf))

        bad = os.path.join(d, "bad")  # a 3-layer config over the 2-layer weights
        os.makedirs(bad)
        with open(os.path.join(src, "config.json")) as f:
            c = json.load(f)
        c["n_layer"] = 3
        with open(os.path.join(bad, "config.json"), "w") as f:
            json.dump(c, f)
        os.link(os.path.join(src, "model.safetensors"), os.path.join(bad, "model.safetensors"))
        r = subprocess.run([EXE, "--hf_dir", bad], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 1 or len(lines) != 1 or "model.safetensors" not in lines[0]:
            sys.exit(f"FAIL: a mismatched checkpoint: exit {r.returncode}, stderr {r.stderr!r}")
        print(f"mismatched checkpoint refused: {lines[0]}")
    print("PASS")


main()
