#!/usr/bin/env python3
"""Scoring benchmark: splitflow score against museval on the same 240 s, 4-source, stereo,
44.1 kHz track, in the same run.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install museval soundfile
    cargo build --release --example make_score_track
    /tmp/v/bin/python scripts/bench_score.py [SECONDS]

Prints wall time and peak RSS of `splitflow score` (full museval v4 SDR/ISR/SIR/SAR, and
SDR/SI-SDR/nSDR alone) and of museval.evaluate(win=hop=44100, mode="v4"), and the ratios.
Without museval installed it prints splitflow's figures only.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "splitflow")
GEN = os.path.join(ROOT, "target", "release", "examples", "make_score_track")


def child_peak_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 240.0
    with tempfile.TemporaryDirectory() as d:
        run([GEN, d, str(seconds)])
        refs, ests = os.path.join(d, "references"), os.path.join(d, "estimates")
        base = [BIN, "score", "--quiet", "--sources", "--references", refs, "--estimates", ests]
        fast = run(base + ["--metrics", "sdr,si_sdr,nsdr"])
        full = run(base + ["--metrics", "sdr,isr,sir,sar"])
        rss = child_peak_mb()
        print(f"splitflow score, {seconds:.0f} s x 4 sources stereo 44.1 kHz: "
              f"full v4 SDR/ISR/SIR/SAR {full:.2f} s; SDR+SI-SDR+nSDR {fast:.3f} s; peak RSS {rss:.0f} MB")
        try:
            import museval
            import numpy as np
            import soundfile as sf
        except ImportError:
            print("museval not installed: no peer figure")
            return
        names = sorted(os.listdir(os.path.join(refs, "track")))
        r = np.stack([sf.read(os.path.join(refs, "track", n))[0] for n in names])
        e = np.stack([sf.read(os.path.join(ests, "track", n))[0] for n in names])
        t = time.perf_counter()
        museval.evaluate(r, e, win=44100, hop=44100, mode="v4")
        mus = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"museval.evaluate v4, same track: {mus:.1f} s; python peak RSS {peak:.0f} MB")
        print(f"speed-up: full {mus / full:.1f}x, SDR/SI-SDR/nSDR {mus / fast:.0f}x")


if __name__ == "__main__":
    main()
