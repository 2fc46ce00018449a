#!/usr/bin/env bash
# Fetch the official SPoC release (Kulal et al. 2019, CC BY 4.0) into data/spoc.
#
#   bash scripts/get_spoc.sh            # data/spoc/{train,test,testcases}
#   SPOC_URL=... bash scripts/get_spoc.sh
#
# With the official release present, the loader (composed_ft/code/spoc.py) trains on the real
# train split (train/split/spoc-train-train.tsv). Without network access this script says so and
# exits 1; the code experiments then fall back to ../shared/data/spoc (eval -> train, test ->
# validation), and every table states that mapping.
set -euo pipefail
cd "$(dirname "$0")/.."
SPOC_URL=${SPOC_URL:-https://sumith1896.github.io/spoc/data/spoc.zip}
DEST=${DEST:-data/spoc}

if [[ -f "$DEST/train/split/spoc-train-train.tsv" ]]; then
    echo "[get_spoc] $DEST already holds the official release"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[get_spoc] downloading $SPOC_URL"
if ! curl -fsSL --connect-timeout 20 -o "$tmp/spoc.zip" "$SPOC_URL"; then
    echo "[get_spoc] cannot download $SPOC_URL (offline?). The code experiments fall back to" \
         "../shared/data/spoc (eval split as train, test split as validation)." >&2
    exit 1
fi
python3 - "$tmp/spoc.zip" "$tmp/x" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
# the archive holds one top-level folder (spoc/) with train/ test/ testcases/
root=$(dirname "$(find "$tmp/x" -path '*/train/spoc-train.tsv' | head -1)")/..
if [[ ! -f "$root/train/split/spoc-train-train.tsv" ]]; then
    echo "[get_spoc] $SPOC_URL: unexpected layout (no train/split/spoc-train-train.tsv)" >&2; exit 1
fi
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.partial" && cp -r "$root" "$DEST.partial" && rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
echo "[get_spoc] SPoC release unpacked into $DEST"
