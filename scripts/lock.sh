#!/usr/bin/env bash
# Refreshes requirements.lock, the exact versions that install.sh installs and CI tests, from
# pyproject.toml (the extras the README's set-up installs: all, testing) and constraints.txt
# (torch's CPU build), with pip-compile pinned in scripts/lock-tools.txt.
#
#   bash scripts/lock.sh              # keep the locked versions that still satisfy pyproject.toml
#   UPGRADE=1 bash scripts/lock.sh    # move every package to the newest release that resolves
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools"
"$tools/bin/python" -m pip install -q -r scripts/lock-tools.txt
upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
"$tools/bin/pip-compile" --quiet "${upgrade[@]}" --extra all --extra testing \
  --constraint constraints.txt --strip-extras --allow-unsafe --no-emit-find-links \
  --no-emit-index-url --output-file requirements.lock pyproject.toml
# `all` names napari-sgi's own extras, so pip-compile lists the project itself; install.sh installs
# it from the work tree, not from the lock.
sed -i '/^napari-sgi @ /,/^[^ ]/{/^napari-sgi @ /d;/^    # via napari-sgi/d}' requirements.lock
"$tools/bin/python" scripts/check_lock.py
