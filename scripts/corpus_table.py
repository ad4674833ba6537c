"""Packages x labels of a corpus manifest, and the issue-13 source-diversity check.

    python3 scripts/corpus_table.py CORPUS/manifest.jsonl > table.md

Prints (markdown) per label: packages, distinct source files (rendered stems: distinct
presets/kits, i.e. split groups of the render sets, and distinct banks), minutes per split, and
whether the label meets the targets (>= 40 distinct sources from >= 3 packages or banks;
environmental labels >= 30 minutes); then the package x label table (files, minutes).
"""

import json
import sys
from collections import defaultdict

ENV = {"water", "wind", "engine", "animal"}


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    files = defaultdict(set)      # (label, package) -> distinct sources
    minutes = defaultdict(float)  # (label, package) -> minutes
    split_min = defaultdict(float)
    chains = defaultdict(set)     # label -> packages, and banks for rendered stems
    for r in rows:
        rendered = r["path"].split("/")[2].startswith("render-")
        key = (r["label"], r["path"].split("/")[2] if rendered else r["package"])
        # A rendered stem's distinct source is its preset (the split group); a recording's is
        # its file.
        files[key].add(r["group"] if rendered else r["source_file"])
        minutes[key] += r["duration"] / 60
        split_min[(r["label"], r["split"])] += r["duration"] / 60
        # A rendered instrument's chain is its bank (groups are BANK/PRESET); the procedural
        # ambience set is one chain (one synthesiser, its groups are patches).
        if rendered and "/" in r["group"]:
            chains[r["label"]].add(r["group"].split("/")[0])
        else:
            chains[r["label"]].add(key[1])
    labels = sorted({k[0] for k in files})
    print("| label | packages / banks | distinct sources | minutes | train | valid | test | heldout | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for l in labels:
        srcs = set()
        for (lab, p), f in files.items():
            if lab == l:
                srcs |= {(p, x) for x in f}
        total = sum(m for (lab, _), m in minutes.items() if lab == l)
        ok = len(srcs) >= 40 and len(chains[l]) >= 3 and (l not in ENV or total >= 30)
        sp = [split_min[(l, s)] for s in ("train", "valid", "test", "heldout")]
        print(f"| {l} | {len(chains[l])} | {len(srcs)} | {total:.1f} | "
              + " | ".join(f"{m:.1f}" for m in sp) + f" | {'met' if ok else 'not met'} |")
    print()
    print("| package | label | distinct sources | minutes |")
    print("|---|---|---|---|")
    for (l, p) in sorted(files, key=lambda k: (k[1], k[0])):
        print(f"| {p} | {l} | {len(files[(l, p)])} | {minutes[(l, p)]:.1f} |")


if __name__ == "__main__":
    main()
