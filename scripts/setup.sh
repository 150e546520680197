#!/usr/bin/env bash
# Create .venv at the repository root and install napari-sansa into it, with napari and the
# test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_CONSTRAINT="$PWD/constraints.txt"
export SAM2_BUILD_CUDA=0            # the sam2 CUDA extension is optional; skip building it
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip=(.venv/bin/python -m pip install --quiet)
"${pip[@]}" --upgrade pip setuptools wheel setuptools-scm
"${pip[@]}" torch
# sam2 ships as source: build it against the torch just installed, not a fresh download.
"${pip[@]}" --no-build-isolation "sam2>=1.0,<1.2"
"${pip[@]}" -e ".[testing]"
echo "napari-sansa is installed in $PWD/.venv" >&2
