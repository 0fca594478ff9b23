#!/usr/bin/env bash
# Installs everything, then runs the main job on a real sample image shipped with napari-sgi:
# compresses the 512x512 brightfield IHC image into ihc_colon.sgi, shows where the bytes went and
# decodes it back to ihc_colon.decoded.png, printing what it did and the measured quality.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PRESET=${PRESET:-fast}
.venv/bin/napari-sgi compress src/napari_sgi/data/ihc_colon.png -o ihc_colon.sgi --preset "$PRESET"
.venv/bin/napari-sgi info ihc_colon.sgi
.venv/bin/napari-sgi decompress ihc_colon.sgi -o ihc_colon.decoded.png
