#!/usr/bin/env bash
# Installs everything, then runs the main job on a real sample image shipped with napari-sgi:
# fits SGI to the 512x512 brightfield IHC image and prints what it did and the measured quality.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PRESET=${PRESET:-fast}
.venv/bin/napari-sgi fit src/napari_sgi/data/ihc_colon.png --preset "$PRESET" -o ihc_colon.sgi-decoded.png
