"""Query-competition probe (docs/training.md, run 38): every mixture of EV separated once per
label (`splitflow separate EV/mixtures/*.wav --query Q --filename "{track}.{ext}" -o COMP/q-Q`),
each estimate's effective mask |E| / |X| (clipped to [0, 1]) renormalised against the other
labels' masks and applied to the mixture on its own phase; prints mean SI-SDRi per label:
    python3 scripts/proxy/compete.py EV COMP
"""
import csv, sys, wave, numpy as np
EV, COMP = sys.argv[1], sys.argv[2]
def rd(p):
    w = wave.open(p)  # the mixture sets are 16-bit PCM
    if w.getsampwidth() != 2:
        sys.exit(f"{p}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
    x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
    return x.reshape(-1, w.getnchannels()).mean(1), w.getframerate()
N, H = 2048, 512
win = np.hanning(N + 1)[:-1]
def stft(x):
    x = np.pad(x, (N, N)); f = [np.fft.rfft(win * x[i:i+N]) for i in range(0, len(x) - N, H)]
    return np.array(f)
def istft(S, n):
    y = np.zeros((len(S) - 1) * H + N); wsum = np.zeros_like(y)
    for i, s in enumerate(S):
        y[i*H:i*H+N] += win * np.fft.irfft(s, N); wsum[i*H:i*H+N] += win**2
    return (y / np.maximum(wsum, 1e-8))[N:N+n]
def sisdr(e, r):
    a = e @ r / (r @ r + 1e-12); t = a * r
    return 10 * np.log10((t @ t + 1e-12) / ((e - t) @ (e - t) + 1e-12))
rows = list(csv.DictReader(open(f"{EV}/tracks.csv")))
labels = sorted({r["label"] for r in rows})
res, stats = {}, {}
for r in rows:
    tr, lab = r["track"], r["label"]
    x, sr = rd(f"{EV}/mixtures/{tr}.wav"); ref, _ = rd(f"{EV}/references/{tr}/{lab}.wav")
    n = min(len(x), len(ref)); x, ref = x[:n], ref[:n]
    X = stft(x); ax = np.abs(X) + 1e-9
    M = {}
    for q in labels:
        e, _ = rd(f"{COMP}/q-{q}/{tr}.wav"); e = e[:n]
        M[q] = np.clip(np.abs(stft(e)) / ax, 0, 1)
    S = sum(M.values())
    present = [lab] + r["interferers"].split("+")
    Sp = sum(M[q] for q in present)
    est = {
        "direct(wav)": rd(f"{COMP}/q-{lab}/{tr}.wav")[0][:n],
        "remask": istft(M[lab] * X, n),
        "norm-max1": istft(M[lab] / np.maximum(1, S) * X, n),
        "norm-all": istft(M[lab] / np.maximum(S, 1e-6) * X, n),
        "wiener2-all": istft(M[lab]**2 / np.maximum(sum(m**2 for m in M.values()), 1e-9) * X, n),
        "norm-present(oracle labels)": istft(M[lab] / np.maximum(Sp, 1e-6) * X, n),
        "m^1.5": istft(M[lab]**1.5 * X, n),
        "m^0.7": istft(M[lab]**0.7 * X, n),
    }
    w = ax**2 / np.sum(ax**2)  # energy weights of the mixture's bins
    absent = [q for q in labels if q not in present]
    stats.setdefault("sum of 12 masks", []).append(np.sum(w * S))
    stats.setdefault("target's mask", []).append(np.sum(w * M[lab]))
    stats.setdefault("present interferers' masks (mean)", []).append(np.mean([np.sum(w * M[q]) for q in present[1:]]))
    stats.setdefault("absent labels' masks (mean)", []).append(np.mean([np.sum(w * M[q]) for q in absent]))
    base = sisdr(x, ref)
    for k, e in est.items():
        res.setdefault(k, {}).setdefault(lab, []).append(sisdr(e, ref) - base)
print("| variant | " + " | ".join(labels) + " | mean |")
for k, d in res.items():
    means = [np.mean(d[l]) for l in labels]
    print(f"| {k} | " + " | ".join(f"{m:+.2f}" for m in means) + f" | {np.mean(means):+.2f} |")
print()
print("energy-weighted mean mask (all mixtures):")
for k, v in stats.items():
    print(f"  {k}: {np.mean(v):.3f}")
