"""Mean of any `splitflow score` CSV column per label, several runs side by side:
python3 scripts/proxy/metrics.py COLUMN NAME=RUN.csv ...   (e.g. mrstft, emb_mse, si_sdri)

Rows are labels, the last row the mean over labels; non-finite values are skipped.
"""
import csv
import math
import sys
from collections import defaultdict

column, runs = sys.argv[1], sys.argv[2:]
cols, table = [], defaultdict(dict)
for arg in runs:
    name, path = arg.split("=", 1)
    cols.append(name)
    per = defaultdict(list)
    for row in csv.DictReader(open(path)):
        v = float(row[column])
        if math.isfinite(v):
            per[row["source"]].append(v)
    for label, vals in per.items():
        table[label][name] = sum(vals) / len(vals)
    means = [table[l][name] for l in per]
    table["mean"][name] = sum(means) / len(means)
print(f"| label ({column}) | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
for label in sorted(table, key=lambda l: (l == "mean", l)):
    cells = [f"{table[label][c]:.3f}" if c in table[label] else "–" for c in cols]
    print(f"| {label} | " + " | ".join(cells) + " |")
