#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), then label generated sample images from one annotated image
# with the command line. Uses the published SANSA model (downloaded once, ~1 GB); without
# internet it falls back to random test weights, which run but segment nothing meaningful.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run=.venv/bin/napari-sansa
demo=demo-output
$run sample-data "$demo/samples"
model=(--model universal)
if ! $run download universal; then
  echo "No published weights here: using random test weights (results will be meaningless)." >&2
  $run make-test-weights "$demo/weights" >/dev/null
  model=(--sam2 "$demo/weights/sam2_hiera_tiny_random.pt" --adapter "$demo/weights/adapter_tiny_random.pth")
fi
$run segment -r "$demo/samples/images/cells_00.png:$demo/samples/cells_00_mask.png" \
  "$demo/samples/images" --out "$demo/labels" --overwrite "${model[@]}"
echo "Label images are in $demo/labels" >&2
