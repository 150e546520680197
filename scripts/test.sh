#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh) and run the test suite; GUI tests run on a virtual X server.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v Xvfb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
    bash scripts/system-deps.sh
  else
    echo "Xvfb is missing: install your system's xvfb and Mesa OpenGL packages (see README)." >&2
    exit 1
  fi
fi
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
