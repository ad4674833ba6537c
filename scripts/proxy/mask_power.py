"""Mask-power probe (docs/training.md, run 25): for every estimate of EST, the effective mask
|E| / |X| (clipped to [0, 1]) raised to G and applied to the mixture X on its own phase:
    python3 scripts/proxy/mask_power.py MIXTURES EST OUT G
"""
import os, sys, wave
import numpy as np
mixdir, estdir, outdir, g = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
N, H = 1024, 256
win = np.hanning(N + 1)[:-1].astype(np.float64)
def rd(p):
    w = wave.open(p); x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return x, w.getparams()
def stft(x):
    pad = np.pad(x, (N // 2, N // 2))
    n = 1 + (len(pad) - N) // H
    fr = np.stack([pad[i * H:i * H + N] * win for i in range(n)])
    return np.fft.rfft(fr, axis=1)
def istft(S, L):
    fr = np.fft.irfft(S, n=N, axis=1) * win
    out = np.zeros((S.shape[0] - 1) * H + N); norm = np.zeros_like(out)
    for i, f in enumerate(fr):
        out[i * H:i * H + N] += f; norm[i * H:i * H + N] += win ** 2
    out = out / np.maximum(norm, 1e-8)
    return out[N // 2:N // 2 + L]
for track in sorted(os.listdir(estdir)):
    mix, _ = rd(os.path.join(mixdir, track + ".wav"))
    X = stft(mix)
    for f in os.listdir(os.path.join(estdir, track)):
        e, params = rd(os.path.join(estdir, track, f))
        E = stft(e)
        m = np.clip(np.abs(E) / np.maximum(np.abs(X), 1e-9), 0, 1) ** g
        y = istft(X * m, len(mix))
        os.makedirs(os.path.join(outdir, track), exist_ok=True)
        w = wave.open(os.path.join(outdir, track, f), "wb"); w.setparams(params)
        w.writeframes(np.clip(np.round(y * 32768), -32768, 32767).astype("<i2").tobytes()); w.close()
