#!/usr/bin/env bash
# Screenshots of notebooks 01, 04 and 05 for the README, taken in a real browser (headless Chromium).
#
# Each notebook is copied to a temporary folder, executed there at the given scale and exported to HTML
# (`jupyter nbconvert --execute --to html`; the tracked notebooks are never written), then Chromium renders
# the page (plotly.js inlined, so no network) and saves a PNG, cropped to the page's content.
#
# Usage: scripts/screenshots.sh [SCALE] [OUT_DIR] [NOTEBOOK_NUMBERS...]
#   SCALE     ALAD_SCALE for the notebooks (default: tiny); OUT_DIR where the PNGs go (default: docs)
#   NOTEBOOK_NUMBERS  which notebooks (default: 01 04 05) -> OUT_DIR/notebook_<NN>.png
# Environment: ALAD_DATA_DIR as for the notebooks; ALAD_RUNS_DIR (default: runs/nb of this checkout, so a
# second call reuses the runs); SHOW_CODE=1 keeps the code cells (default: prose, tables and figures only);
# WIDTH (default 1280) and MAX_HEIGHT (default 16000) in CSS pixels; CHROMIUM (default: chromium).
# Needs: jupyter nbconvert, Pillow and chromium (`apt-get install -y chromium`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCALE=${1:-tiny}
OUT=$(mkdir -p "${2:-$ROOT/docs}" && cd "${2:-$ROOT/docs}" && pwd)
shift $(($# > 2 ? 2 : $#))
NUMBERS=("${@:-01 04 05}")
read -r -a NUMBERS <<< "${NUMBERS[*]}"
CHROMIUM=${CHROMIUM:-chromium}
WIDTH=${WIDTH:-1280}
MAX_HEIGHT=${MAX_HEIGHT:-16000}
command -v "$CHROMIUM" > /dev/null || { echo "screenshots.sh: no $CHROMIUM (apt-get install -y chromium)" >&2; exit 1; }
command -v jupyter > /dev/null || { echo "screenshots.sh: no jupyter (pip install nbconvert nbclient ipykernel)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/alad-screenshots.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/notebooks" "$TMP/html"
ln -s "$ROOT/results" "$TMP/results"  # the notebooks read ../results (committed studies) from notebooks/

export ALAD_SCALE="$SCALE"
export ALAD_RUNS_DIR="${ALAD_RUNS_DIR:-$ROOT/runs/nb}"
export ALAD_STATIC_WIDGETS=1  # nbconvert has no widget front end: the explorer shows its current view
export PLOTLY_RENDERER=notebook  # plotly.js inlined in the page: Chromium needs no network
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"  # library deprecations are noise on a screenshot
NO_INPUT=(--no-input)
[[ "${SHOW_CODE:-0}" == 1 ]] && NO_INPUT=()

for nn in "${NUMBERS[@]}"; do
  src=$(ls "$ROOT"/notebooks/"${nn}"_*.ipynb 2> /dev/null | head -1)
  [[ -n "$src" ]] || { echo "screenshots.sh: no notebook $nn in $ROOT/notebooks" >&2; exit 1; }
  cp "$src" "$TMP/notebooks/"
  copy="$TMP/notebooks/$(basename "$src")"
  start=$(date +%s)
  (cd "$TMP/notebooks" && jupyter nbconvert --to html --execute "${NO_INPUT[@]}" \
    --ExecutePreprocessor.timeout=3600 --output-dir "$TMP/html" "$copy" > "$TMP/nbconvert_$nn.log" 2>&1) \
    || { tail -40 "$TMP/nbconvert_$nn.log" >&2; echo "screenshots.sh: notebook $nn failed" >&2; exit 1; }
  page="$TMP/html/$(basename "$src" .ipynb).html"
  png="$OUT/notebook_${nn}.png"
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --virtual-time-budget=30000 --window-size="$WIDTH,$MAX_HEIGHT" --screenshot="$png" "file://$page" \
    > "$TMP/chromium_$nn.log" 2>&1 || { tail -20 "$TMP/chromium_$nn.log" >&2; exit 1; }
  python - "$png" <<'CROP'  # cut the blank page below the last content (the window is MAX_HEIGHT tall)
import sys

from PIL import Image, ImageChops

path = sys.argv[1]
image = Image.open(path).convert("RGB")
box = ImageChops.difference(image, Image.new("RGB", image.size, image.getpixel((0, image.height - 1)))).getbbox()
if box:
    image = image.crop((0, 0, image.width, min(image.height, box[3] + 24)))
image.quantize(colors=256).save(path, optimize=True)  # palette PNG: a tenth of the size, same look
CROP
  echo "notebook $nn -> $png ($(($(date +%s) - start)) s)"
done
