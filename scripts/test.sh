#!/usr/bin/env bash
# Installs everything, then runs the whole test suite (napari tests run under Xvfb via pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
unset QT_QPA_PLATFORM  # offscreen Qt cannot draw image layers; pytest-xvfb provides a display
.venv/bin/python -m pytest "$@"
