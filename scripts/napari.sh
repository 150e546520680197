#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), then open napari with the SANSA widget and sample images.
# The published SANSA model is downloaded on first use (~1 GB). Without internet, random test
# weights are preselected instead: everything runs, but the masks mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run=.venv/bin/napari-sansa
if [ -z "${NAPARI_SANSA_SAM2_CHECKPOINT:-}" ] && ! $run download universal; then
  echo "No published weights here: preselecting random test weights (results will be meaningless)." >&2
  $run make-test-weights .venv/sansa-test-weights >/dev/null
  export NAPARI_SANSA_SAM2_CHECKPOINT="$PWD/.venv/sansa-test-weights/sam2_hiera_tiny_random.pt"
  export NAPARI_SANSA_ADAPTER_CHECKPOINT="$PWD/.venv/sansa-test-weights/adapter_tiny_random.pth"
fi
exec $run gui "$@"
