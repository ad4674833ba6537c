"""Per-label table of proxy runs: python3 scripts/proxy/table.py NAME=WORK/VIEW-MODEL.md ...

Each argument is a column name and the markdown table scripts/proxy/eval.sh printed; rows are
labels (mean SI-SDRi, dB), the last row the mean over labels.
"""
import sys
from collections import defaultdict

cols, table = [], defaultdict(dict)
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    cols.append(name)
    for line in open(path):
        c = [x.strip() for x in line.split("|")]
        if len(c) > 5 and c[3].isdigit():
            label = "mean" if c[2].startswith("mean") else c[2]
            table[label][name] = float(c[4])
print("| label | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
for label in sorted(table, key=lambda l: (l == "mean", l)):
    cells = [f"{table[label][c]:+.2f}" if c in table[label] else "–" for c in cols]
    print(f"| {label} | " + " | ".join(cells) + " |")
