#!/bin/bash
# Scores a model on one split of a corpus, per label:
#   [SPLIT=heldout] scripts/proxy/eval.sh MODEL CORPUS N WORK > table.md
# SPLIT: test (default: same-package test), heldout (packages train never hears), train;
# CORPUS may also be a view of scripts/proxy/views.py (its test split).
# N mixtures per label at 0 dB TIR, 4 s (`splitflow data mixtures`, cached in WORK/eval),
# one-step separation with the model's default sampler, `splitflow score`, and the per-label
# table of benches/peers/summarise.py (mean SI-SDRi, SDRi, median SDR).
# SEP_ARGS: more `separate` options (e.g. "--sampler direct"); TAG: the estimates' and CSV's
# name (default: the model folder's); METRICS: `score --metrics` (e.g. add mrstft,emb_mse;
# scripts/proxy/metrics.py tabulates them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SF=${SF:-$REPO/target/release/splitflow}
MODEL=$1 VIEW=$2 N=$3 WORK=$4 SPLIT=${SPLIT:-test}
mkdir -p "$WORK"
ev="$WORK/eval"
[ -f "$ev/tracks.csv" ] || "$SF" data mixtures --data "$VIEW" --split "$SPLIT" --tir 0 --n "$N" \
    --seconds 4 -o "$ev" > /dev/null
name=${TAG:-$(basename "$MODEL")}
read -r -a extra <<< "${SEP_ARGS:-}"
metrics=()
[ -n "${METRICS:-}" ] && metrics=(--metrics "$METRICS")
est="$WORK/est-$name"
rm -rf "$est"
for label in $(tail -n +2 "$ev/tracks.csv" | cut -d, -f2 | sort -u); do
  "$SF" separate "$ev"/mixtures/"${label}"_*.wav --query "$label" --model "$MODEL" \
      "${extra[@]}" --filename "{track}/$label.{ext}" -o "$est" --quiet
done
"$SF" score --references "$ev/references" --estimates "$est" --mixtures "$ev/mixtures" \
    --skip-missing "${metrics[@]}" --csv "$WORK/$name.csv" --quiet -j 1 > /dev/null
python3 "$REPO/benches/peers/summarise.py" "$WORK/$name.csv"
