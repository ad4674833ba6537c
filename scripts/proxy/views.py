"""Corpus views for proxy runs with a held-out-package validation (runs 1-6 of
docs/training.md). `splitflow data build` now writes split `heldout` itself
(src/data/sources.rs HELDOUT, the same packages as below); new runs train on the corpus and
score with `SPLIT=heldout scripts/proxy/eval.sh`.

    python3 scripts/proxy/views.py CORPUS OUT

writes two corpus folders that share CORPUS/audio (symlinked) and differ in the manifest:
  OUT/ho: split `test` = the held-out packages' rows (any split of the original), train and
          valid = the original train/valid rows minus those;
  OUT/sp: split `test` = the original test rows minus the held-out ones (same-package test),
          train and valid as in OUT/ho;
  OUT/tr: split `test` = the train rows themselves (the figure on what the model has heard).
So a model trained on either view has seen neither test set. Held-out packages per label
(HELDOUT below): a recording chain that train does not see for that label; engine has a
single package and is scored on the same-package test only.
"""

import json
import os
import sys
from collections import defaultdict

HELDOUT = {
    "speech": {"ktuberling-data", "gcin-voice", "asterisk-core-sounds-ru-wav"},
    "music": {"wesnoth-1.16-music"},
    "animal": {"supertuxkart-data"},
    "water": {"megaglest-data"},
    "wind": {"megaglest-data"},
    "drums": {"hydrogen-drumkits"},
    "bass": {"lmms-common", "sonic-pi-samples"},
    "guitar": {"lmms-common", "sonic-pi-samples"},
    "piano": {"lmms-common", "sonic-pi-samples"},
    "strings": {"lmms-common", "sonic-pi-samples"},
    "winds": {"lmms-common", "sonic-pi-samples"},
    "engine": set(),
}


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(os.path.join(corpus, "manifest.jsonl"))]
    minutes = defaultdict(float)
    views = {"ho": [], "sp": [], "tr": []}
    for r in rows:
        held = r["package"] in HELDOUT.get(r["label"], set())
        for name in views:
            v = dict(r)
            if held:
                if name != "ho":
                    continue
                v["split"] = "test"
            elif r["split"] == "test" and name != "sp":
                continue
            elif r["split"] == "train" and name == "tr":
                v["split"] = "test"
            views[name].append(v)
            minutes[(name, v["label"], v["split"])] += v["duration"] / 60
    for name, vrows in views.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, "audio")
        if not os.path.islink(link):
            os.symlink(os.path.abspath(os.path.join(corpus, "audio")), link)
        with open(os.path.join(d, "manifest.jsonl"), "w") as f:
            for v in vrows:
                f.write(json.dumps(v, separators=(",", ":")) + "\n")
    labels = sorted({r["label"] for r in rows})
    print("label    train  valid  heldout-test  same-package-test  (minutes)")
    for l in labels:
        print(f"{l:8} {minutes[('ho', l, 'train')]:6.1f} {minutes[('ho', l, 'valid')]:6.1f} "
              f"{minutes[('ho', l, 'test')]:13.1f} {minutes[('sp', l, 'test')]:18.1f}")


if __name__ == "__main__":
    main()
