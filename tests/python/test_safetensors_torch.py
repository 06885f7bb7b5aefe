#!/usr/bin/env python3
"""test_safetensors_torch.py: sgt's checkpoint.safetensors in the Python ecosystem.

tests/python/sgt_logits trains the `nano` GPT (dense, then SGT) for a few steps and writes its
checkpoint.safetensors (nn_save_params, as apps/train) and the logits of a fixed batch. This test
opens the checkpoint with the `safetensors` package (safe_open: names, dtypes, shapes, metadata;
safetensors.torch.load_file: the tensors), loads it into the in-repo PyTorch reference
(bench/torch_gpt.py) and checks that the reference reproduces our logits:
max |ours - torch| <= 1e-4 * max(1, max |ours|) (both f32; the forward differs by summation order).

Usage: test_safetensors_torch.py SGT_LOGITS_EXE. Exits 77 (skip) without torch, safetensors or numpy.
"""

import os
import subprocess
import sys
import tempfile

TOL = 1e-4
try:
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
except ImportError as e:
    print(f"SKIP: {e} (pip install: bash .ci/deps --python)")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import torch_gpt  # noqa: E402


def one(exe, kind, tmp):
    d = os.path.join(tmp, kind)
    os.makedirs(d)
    out = subprocess.run([exe, d, kind], stdout=subprocess.PIPE, text=True, check=True).stdout
    B, T, V = (int(x) for x in out.split())
    path = os.path.join(d, "checkpoint.safetensors")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        names = list(f.keys())
        assert meta and meta.get("preset") == "nano", f"{path}: metadata {meta}"
        assert all(f.get_slice(n).get_dtype() == "F32" for n in names), f"{path}: not all F32"
    tensors = load_file(path)
    model = torch_gpt.GPT(torch_gpt.PRESETS["nano"], kind == "sparse")
    torch_gpt.copy_sgt_weights(model, tensors, path)
    model.eval()
    x, _ = torch_gpt.make_batch(B, T, V)
    with torch.no_grad():
        ref = model(x)[0].numpy()
    ours = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(B, T, V)
    diff = float(np.abs(ours - ref).max())
    bound = TOL * max(1.0, float(np.abs(ours).max()))
    ok = diff <= bound
    print(f"{kind}: {len(names)} tensors via safetensors {__import__('safetensors').__version__}, "
          f"torch {torch.__version__}: logits [{B}, {T}, {V}] max |ours - torch| {diff:.3e} "
          f"(bound {bound:.3e}, max |logit| {float(np.abs(ours).max()):.3f}) {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: test_safetensors_torch.py SGT_LOGITS_EXE")
    with tempfile.TemporaryDirectory(prefix="sgt-st-") as tmp:
        ok = [one(sys.argv[1], k, tmp) for k in ("dense", "sparse")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
