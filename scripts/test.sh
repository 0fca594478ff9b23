#!/usr/bin/env bash
# Installs everything, checks the environment and the code's form, then runs the whole test suite
# (napari tests run under Xvfb via pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pip check  # a broken environment fails here, with pip's message
.venv/bin/python scripts/check_lock.py
.venv/bin/ruff check .
.venv/bin/ruff format --check .
unset QT_QPA_PLATFORM  # offscreen Qt cannot draw image layers; pytest-xvfb provides a display
.venv/bin/python -m pytest "$@"
