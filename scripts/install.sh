#!/usr/bin/env bash
# Installs everything napari-sgi needs on a fresh Debian/Ubuntu machine: the Debian packages for
# compiling (g++, ninja for torchac) and for Qt under Xvfb, then a virtual environment in .venv with
# the exact versions of requirements.lock (the CPU build of torch among them) and napari-sgi with
# all its extras. Safe to run again. Refresh the lock with scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(g++ ninja-build python3-venv python3-dev
  libfontconfig1 libgl1 libglib2.0-0 libegl1 libxkbcommon0 libdbus-1-3 xvfb xauth
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-render-util0 libxcb-shape0 libxcb-xkb1)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -r scripts/lock-tools.txt
# Exactly the versions of requirements.lock (torch's CPU build included), and nothing they do not
# name: --no-deps, so that a lock missing a package fails `pip check` instead of pip fetching
# whatever the registry serves that day. napari-sgi itself builds with the lock's setuptools.
.venv/bin/python -m pip install -q --no-deps -r requirements.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# torchac compiles its C++ coder on first import (into a folder of this environment's own); do it
# now, once, rather than inside the first compression or test.
.venv/bin/python -c "from napari_sgi.codec.torchac_backend import load_torchac; load_torchac()"
echo "napari-sgi installed in .venv"
