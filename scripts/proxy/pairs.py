"""Mean SI-SDRi by interferer label, by number of interferers and by target x interferer pair (a
mixture counts once per interferer), from an eval.sh mixture set and its score CSV:
    python3 scripts/proxy/pairs.py EV CSV
"""
import csv, sys, statistics as st
ev, res = sys.argv[1], sys.argv[2]
inter = {r["track"]: r["interferers"].split("+") for r in csv.DictReader(open(ev + "/tracks.csv"))}
by, n_int = {}, {}
for r in csv.DictReader(open(res)):
    t = r["track"].split("/")[0]
    v = float(r["si_sdri"])
    n_int.setdefault((r["source"], len(inter[t])), []).append(v)
    for i in inter[t]:
        by.setdefault(i, []).append(v); by.setdefault((r["source"], i), []).append(v)
print("by interferer label (all targets):")
for k in sorted(x for x in by if isinstance(x, str)):
    print(f"  {k:8s} n={len(by[k]):3d} {st.mean(by[k]):+.2f}")
print("by number of interferers:")
for n in (1, 2, 3):
    vs = [v for (s, m), l in n_int.items() if m == n for v in l]
    print(f"  {n}: n={len(vs)} {st.mean(vs):+.2f}")
print("worst target x interferer pairs (n>=4):")
pairs = [(st.mean(v), k, len(v)) for k, v in by.items() if isinstance(k, tuple) and len(v) >= 4]
for m, k, n in sorted(pairs)[:12]:
    print(f"  {k[0]:8s} with {k[1]:8s} n={n:2d} {m:+.2f}")
