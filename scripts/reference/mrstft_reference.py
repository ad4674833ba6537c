#!/usr/bin/env python3
"""Reference values for `splitflow::metrics::mrstft` from auraloss.

Writes tests/reference/mrstft/values.json (read by tests/metrics_mrstft.rs).

Inputs are rebuilt from the 31-bit LCG of tests/conformance/UPSTREAM_README.md:
    x <- (1103515245 * x + 12345) mod 2^31, sample = x / 2^31 - 0.5,
starting from x = seed, first sample taken after the first update. For every case and channel c
    reference[c] = float32(lcg(n, ref_seeds[c]))
    estimate[c]  = float32(a[c] * lcg(n, ref_seeds[c]) + b[c] * lcg(n, other_seeds[c]))
with the arithmetic in float64 on the exact LCG values and one rounding to float32 at the end.

Every loss is `auraloss.freq.MultiResolutionSTFTLoss(...)(input=estimate, target=reference)`:
  * "default": all defaults, the whole signal as one item of shape (1, C, T);
  * "default_aw": defaults plus perceptual_weighting=True, sample_rate=sr, shape (1, C, T);
  * "svs": fft_sizes = win_lengths = [256, 512, 1024, 2048, 4096], hop = win / 4,
    perceptual_weighting=True, sample_rate=sr, each channel alone as (1, 1, T), mean over
    channels (the setting of the gensvs_eval metrics script, Bereuter et al. 2025).
Each is computed twice: as auraloss runs (float32 tensors, "f32") and with the window, the
A-weighting taps (already rounded to float32 by auraloss) and the float32 inputs promoted to
float64 ("f64"), which is what the Rust code computes.

Usage (from the repository root):
    /work/pyref/bin/python scripts/reference/mrstft_reference.py
Needs torch, auraloss (0.4.0 used), numpy, scipy.
"""

import json
import sys
from pathlib import Path

import auraloss
import numpy as np
import scipy
import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "reference" / "mrstft" / "values.json"

SVS = [256, 512, 1024, 2048, 4096]

CASES = [
    {"name": "mono_16k", "sample_rate": 16000, "n": 16000,
     "ref_seeds": [1], "other_seeds": [2], "a": [0.8], "b": [0.1]},
    {"name": "stereo_44k", "sample_rate": 44100, "n": 44100,
     "ref_seeds": [3, 4], "other_seeds": [5, 6], "a": [0.8, 0.3], "b": [0.1, 0.3]},
    {"name": "mono_22k_odd", "sample_rate": 22050, "n": 12345,
     "ref_seeds": [7], "other_seeds": [8], "a": [-0.5], "b": [0.7]},
]


def lcg(n, seed):
    x = seed
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        x = (1103515245 * x + 12345) % 2**31
        out[i] = x / 2**31 - 0.5
    return out


def signals(case):
    ref, est = [], []
    for rs, os_, a, b in zip(case["ref_seeds"], case["other_seeds"], case["a"], case["b"]):
        r = lcg(case["n"], rs)
        o = lcg(case["n"], os_)
        ref.append(r.astype(np.float32))
        est.append((a * r + b * o).astype(np.float32))
    return np.stack(ref), np.stack(est)


def make_loss(kind, sr, dtype):
    if kind == "default":
        loss = auraloss.freq.MultiResolutionSTFTLoss()
    elif kind == "default_aw":
        loss = auraloss.freq.MultiResolutionSTFTLoss(perceptual_weighting=True, sample_rate=sr)
    elif kind == "svs":
        loss = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=SVS, hop_sizes=[s // 4 for s in SVS], win_lengths=SVS,
            perceptual_weighting=True, sample_rate=sr)
    else:
        raise ValueError(kind)
    if dtype == torch.float64:
        for f in loss.stft_losses:
            f.window = torch.hann_window(f.win_length, dtype=torch.float64)
            if f.perceptual_weighting:
                f.prefilter.fir.weight.data = f.prefilter.fir.weight.data.double()
    return loss


def run(kind, sr, ref, est, dtype):
    loss = make_loss(kind, sr, dtype)
    r = torch.from_numpy(ref).to(dtype)
    e = torch.from_numpy(est).to(dtype)
    with torch.no_grad():
        if kind == "svs":
            vals = [loss(e[c][None, None], r[c][None, None]).item() for c in range(r.shape[0])]
            return float(np.mean(vals))
        return loss(e[None], r[None]).item()


def per_resolution(sr, ref, est):
    """Spectral convergence and log-magnitude terms of each default resolution (float64)."""
    loss = make_loss("default", sr, torch.float64)
    r = torch.from_numpy(ref).double()[None]
    e = torch.from_numpy(est).double()[None]
    out = []
    with torch.no_grad():
        for f in loss.stft_losses:
            f.output = "full"
            _, sc, logmag, _, _ = f(e, r)
            out.append({"fft_size": f.fft_size, "hop_size": f.hop_size, "win_length": f.win_length,
                        "sc": sc.item(), "log_mag": logmag.item()})
    return out


def main():
    torch.set_num_threads(2)
    result = {
        "generator": "scripts/reference/mrstft_reference.py",
        "versions": {"auraloss": getattr(auraloss, "__version__", "0.4.0"), "torch": torch.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__, "python": sys.version.split()[0]},
        "input_recipe": (
            "LCG x <- (1103515245*x + 12345) mod 2^31, sample = x/2^31 - 0.5, first sample after the "
            "first update; reference[c] = f32(lcg(n, ref_seeds[c])); estimate[c] = "
            "f32(a[c]*lcg(n, ref_seeds[c]) + b[c]*lcg(n, other_seeds[c])) computed in f64"),
        "loss_call": "MultiResolutionSTFTLoss(...)(input=estimate, target=reference)",
        "a_weighting_taps": {},
        "cases": [],
    }
    for sr in sorted({c["sample_rate"] for c in CASES}):
        fir = auraloss.perceptual.FIRFilter(filter_type="aw", fs=sr)
        result["a_weighting_taps"][str(sr)] = [float(t) for t in fir.fir.weight.data.view(-1).tolist()]
    for case in CASES:
        ref, est = signals(case)
        sr = case["sample_rate"]
        entry = dict(case)
        entry["first_samples"] = {"reference": [float(v) for v in ref[0, :3]],
                                  "estimate": [float(v) for v in est[0, :3]]}
        entry["values"] = {}
        for kind in ["default", "default_aw", "svs"]:
            entry["values"][kind] = {"f32": run(kind, sr, ref, est, torch.float32),
                                     "f64": run(kind, sr, ref, est, torch.float64)}
        entry["identity"] = {kind: run(kind, sr, ref, ref, torch.float64) for kind in ["default", "svs"]}
        entry["default_per_resolution"] = per_resolution(sr, ref, est)
        result["cases"].append(entry)
        print(case["name"], json.dumps(entry["values"]), file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
