#!/usr/bin/env bash
# A report of the bundled default model on the demo song, opened in a real headless browser
# (Debian's chromium): checks that the page parses with every player, picture and score row it
# should have, and saves a screenshot to docs/figures/report.png.
#
#   scripts/report-demo.sh            # builds the release binary if needed
#   SF=target/debug/splitflow scripts/report-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SF=${SF:-target/release/splitflow}
[ -x "$SF" ] || cargo build --release
if ! command -v chromium > /dev/null; then
    apt-get update -q && apt-get install -y -q chromium
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/mix" "$W/ref/demo"
cp assets/demo/mixture.wav "$W/mix/demo.wav"
cp assets/demo/drums.wav "$W/ref/demo/drums.wav"
# The residual of a drums query is everything else: the demo's harmonic part.
cp assets/demo/harmonic.wav "$W/ref/demo/no_drums.wav"
"$SF" separate "$W/mix/demo.wav" --query drums --residual -o "$W/est" --quiet
"$SF" report --mixtures "$W/mix" --estimates "$W/est" --references "$W/ref" \
    -o "$W/page/report.html" --title "splitflow report: the demo song, drums"
browse() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "$@" 2> "$W/chromium.log"; }
browse --dump-dom "file://$W/page/report.html" > "$W/dom.html"
python3 - "$W/dom.html" "$W/page" <<'PY'
import re, sys, os, urllib.parse
dom = open(sys.argv[1]).read()
audio = re.findall(r'<audio [^>]*src="([^"]+)"', dom)
imgs = re.findall(r'<img [^>]*src="data:image/png;base64,', dom)
rows = re.findall(r'<tr><td>(drums|no_drums)</td>', dom)
assert len(audio) == 5, f"players: {audio}"
assert len(imgs) == 5, f"pictures: {len(imgs)}"
assert len(rows) == 2, f"score rows: {rows}"
for a in audio:
    path = os.path.join(sys.argv[2], urllib.parse.unquote(a))
    assert os.path.isfile(path), f"{a} does not resolve to a file"
print(f"browser DOM: {len(audio)} players (links resolve), {len(imgs)} pictures, {len(rows)} score rows")
PY
mkdir -p docs/figures
browse --window-size=1280,1320 --screenshot="$PWD/docs/figures/report.png" "file://$W/page/report.html"
echo "wrote docs/figures/report.png ($(stat -c %s docs/figures/report.png) bytes)"
