#!/bin/bash
# Spectrogram grids of one held-out mixture per label (mixture / estimate / reference, the
# estimate titled with its SI-SDRi), four labels per PNG, for a model already scored by
# scripts/proxy/eval.sh into WORK:
#   scripts/proxy/listen_look.sh WORK NAME OUT_DIR [INDEX]
# NAME: the estimates' tag (WORK/est-NAME, WORK/NAME.csv); INDEX: the mixture (default 000).
# Writes OUT_DIR/heldout_1.png .. heldout_3.png (docs/model.md "Listen and look").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=$1 NAME=$2 OUT=$3 IDX=${4:-000}
G=$REPO/target/release/examples/spectrogram_grid
[ -x "$G" ] || (cd "$REPO" && cargo build --release --example spectrogram_grid)
mkdir -p "$OUT"
i=0
for grp in "speech music drums bass" "piano guitar strings winds" "water wind engine animal"; do
  i=$((i + 1))
  rows=()
  for l in $grp; do
    s=$(grep "^${l}_${IDX}/" "$WORK/$NAME.csv" | cut -d, -f9 | xargs printf "%+.1f")
    rows+=("$l mixture=$WORK/eval/mixtures/${l}_${IDX}.wav"
           "$l estimate ($s dB SI-SDRi)=$WORK/est-$NAME/${l}_${IDX}/$l.wav"
           "$l reference=$WORK/eval/references/${l}_${IDX}/$l.wav")
  done
  "$G" "$OUT/heldout_$i.png" "${rows[@]}"
done
