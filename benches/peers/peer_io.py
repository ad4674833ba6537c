"""Shared I/O of the peer wrappers (peer_dfn.py, peer_spleeter.py): one file in, one 16-bit
file out at the input's rate; an evaluation folder's speech tracks in, TRACK/speech.wav out."""
import csv
import os
import sys

import numpy as np
import soundfile as sf


def process_file(src, dst, fn):
    """Reads src, writes fn(samples, rate) to dst as 16-bit PCM at the same rate."""
    x, sr = sf.read(src, dtype="float32", always_2d=False)
    y = fn(x, sr)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    sf.write(dst, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")


def main(name, run_file, run_track=None):
    """`NAME.py --file IN OUT` -> run_file(IN, OUT); `NAME.py EVAL_DIR OUT_DIR` -> run_track
    (default run_file) for every speech track of EVAL_DIR/tracks.csv into OUT_DIR/TRACK/speech.wav."""
    if sys.argv[1] == "--file":
        run_file(sys.argv[2], sys.argv[3])
        return
    ev, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(ev, "tracks.csv")) as f:
        tracks = [r["track"] for r in csv.DictReader(f) if r["label"] == "speech"]
    for t in tracks:
        (run_track or run_file)(os.path.join(ev, "mixtures", t + ".wav"), os.path.join(out, t, "speech.wav"))
        print(name, t, file=sys.stderr)
