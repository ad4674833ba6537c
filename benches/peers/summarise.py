#!/usr/bin/env python3
"""Tables for benches/peers/run_peers.sh.

summarise.py SYSTEM.csv ... > table.md   per label (rows of `splitflow score --csv`): tracks,
                                         mean SI-SDRi, mean SDRi, median SDR; then the mean
                                         over labels for a system with several labels
summarise.py --speed times.txt           `run rep wall(h:m:s) max_rss_kB` lines -> the best
                                         of the repetitions per run, RTF for 60 s, peak RSS
"""
import csv
import os
import statistics as st
import sys


def quality(paths):
    print("| system | label | n | SI-SDRi mean dB | SDRi mean dB | SDR median dB |")
    print("|---|---|---:|---:|---:|---:|")
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        by = {}
        with open(path) as f:
            for r in csv.DictReader(f):
                by.setdefault(r["source"], []).append(r)
        means_si, means_sd = [], []
        for label in sorted(by):
            rows = by[label]
            si = st.mean(float(r["si_sdri"]) for r in rows)
            sd = st.mean(float(r["sdri"]) for r in rows)
            sdr = st.median(float(r["sdr"]) for r in rows)
            means_si.append(si)
            means_sd.append(sd)
            print(f"| {name} | {label} | {len(rows)} | {si:.2f} | {sd:.2f} | {sdr:.2f} |")
        if len(by) > 1:
            n = sum(len(v) for v in by.values())
            print(f"| {name} | mean of {len(by)} labels | {n} | {st.mean(means_si):.2f} | "
                  f"{st.mean(means_sd):.2f} | – |")


def speed(path, seconds=60.0):
    best = {}
    with open(path) as f:
        for line in f:
            run, _rep, wall, kb = line.split()
            parts = [float(p) for p in wall.split(":")]
            secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
            if run not in best or secs < best[run][0]:
                best[run] = (secs, int(kb) / 1024)
    print("| run | wall s (best of 2) | RTF | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for run, (secs, mb) in best.items():
        print(f"| {run} | {secs:.2f} | {secs / seconds:.3f} | {mb:.0f} |")


if __name__ == "__main__":
    if sys.argv[1] == "--speed":
        speed(sys.argv[2])
    else:
        quality(sys.argv[1:])
