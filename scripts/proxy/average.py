"""Averages the estimates of several `eval.sh` est-* folders (16-bit WAV, same layout) into OUT:
    python3 scripts/proxy/average.py OUT EST1 EST2 ... (an ensemble of separators, run 25)
"""
import os, sys, wave
import numpy as np
out, ins = sys.argv[1], sys.argv[2:]
for track in sorted(os.listdir(ins[0])):
    for f in os.listdir(os.path.join(ins[0], track)):
        acc, params = None, None
        for d in ins:
            w = wave.open(os.path.join(d, track, f))
            params = w.getparams()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
            acc = x if acc is None else acc + x
        y = np.clip(np.round(acc / len(ins)), -32768, 32767).astype("<i2")
        os.makedirs(os.path.join(out, track), exist_ok=True)
        w = wave.open(os.path.join(out, track, f), "wb")
        w.setparams(params)
        w.writeframes(y.tobytes())
        w.close()
