#!/bin/bash
# Query-use diagnostic: separate each held-out mixture with its target's label and with the
# label of its first interferer, name both as the target, score both against the target:
#   scripts/proxy/query_swap.sh MODEL EV OUT   (EV: an eval.sh mixture set, e.g. WORK/v3-ho24/eval)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SF=${SF:-$REPO/target/release/splitflow}
MODEL=$1 EV=$2 OUT=$3
rm -rf $OUT; mkdir -p $OUT/right $OUT/wrong
tail -n +2 $EV/tracks.csv | while IFS=, read -r track label inter tir; do
  wrong=${inter%%+*}
  $SF separate $EV/mixtures/$track.wav --query $label --model $MODEL --filename "{track}/$label.{ext}" -o $OUT/right --quiet
  $SF separate $EV/mixtures/$track.wav --query $wrong --model $MODEL --filename "{track}/$label.{ext}" -o $OUT/wrong --quiet
done
for k in right wrong; do
  $SF score --references $EV/references --estimates $OUT/$k --mixtures $EV/mixtures --skip-missing --csv $OUT/$k.csv --quiet -j 1 > /dev/null
  python3 $REPO/benches/peers/summarise.py $OUT/$k.csv | tail -14
done
