"""Objects benchmark: time to split one image's classes into 1,000 objects, watershed and sam.

    .venv/bin/python benchmarks/instances.py                    # CPU: sam at input 256 (2-4 min on 2 cores)
    .venv/bin/python benchmarks/instances.py --image-size 1024  # as trained (CUDA: seconds; CPU: many minutes)

The image is 1024x1024 with 1,000 round objects 12-18 px across, in touching pairs. "sam" runs
on SAM2-tiny with random weights (speed does not depend on the weights' values) and starts from
the target's cached features, so it times the watershed seeds, the batched decoder calls, the
masks' non-maximum suppression and the table. Figures go to benchmarks/results/instances.json
and the "Objects" section at the end of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.draw import disk

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Objects"


def scene(seed: int = 0, hw=(1024, 1024)) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its class labels: 500 touching pairs of discs (1,000 objects)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(hw, np.uint8)
    for i in range(25):
        for j in range(20):
            r = rng.uniform(6, 9)
            for dx in (-0.9 * r, 0.9 * r):
                rr, cc = disk((20 + 40 * i, 25 + 50 * j + dx), r, shape=hw)
                labels[rr, cc] = 1
    image = rng.normal(40, 8, (*hw, 3)) + 150 * labels[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), labels


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(image_size: int, repeats: int, sam_repeats: int) -> dict:
    image, labels = scene()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ns.SansaConfig(device=device, image_size=image_size)
    model = ns.Sansa(random_sansa_module("tiny", image_size), config)
    reference = ns.Reference(image, {1: ns.Mask(labels == 1)})
    first = model.segment([reference], [image])[0]  # encodes the target: its features are cached
    prediction = dataclasses.replace(first, labels=labels, logits={})
    passes = model.encoder_passes
    split_s, split = timed(lambda: ns.split_instances(labels == 1), repeats)
    watershed_s, (_, table) = timed(lambda: prediction.instances("watershed"), repeats)
    sam_s, (_, sam_table) = timed(lambda: prediction.instances("sam"), sam_repeats)
    assert model.encoder_passes == passes, "objects must not run the encoder"
    return {
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "image_size": image_size,
        "objects": int(split.max()),
        "split_s": split_s,
        "watershed_s": watershed_s,
        "watershed_objects": len(table),
        "sam_s": sam_s,
        "sam_objects": len(sam_table),
        "repeats": repeats,
        "sam_repeats": sam_repeats,
    }


def section(r: dict, command: str) -> str:
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `{command}` on {r['machine']} ({r['device']}): one 1024x1024 image with "
            f"1,000 round objects 12-18 px across in touching pairs; median of {r['repeats']} runs "
            f'({r["sam_repeats"]} for sam). "sam" uses SAM2-tiny (random weights) at input '
            f"{r['image_size']}, from the target's cached features (no encoder pass).",
            "",
            "| step | seconds | objects found |",
            "| --- | --- | --- |",
            f"| `split_instances` (watershed only) | {r['split_s']:.2f} | {r['objects']} |",
            f'| `Prediction.instances("watershed")` (with the table) | {r["watershed_s"]:.2f} | '
            f"{r['watershed_objects']} |",
            f'| `Prediction.instances("sam")` | {r["sam_s"]:.1f} | {r["sam_objects"]} |',
            "",
            "Random weights give meaningless masks, so sam's object count here says nothing about "
            "quality (non-maximum suppression merges many). The decoder's cost grows with the input "
            "size (16x the image tokens at 1024 as at 256); no GPU was measured here.",
            "",
        ]
    )


def write_section(text: str, path: Path) -> None:
    """Replace the page's Objects section (always its last one), or add it at the end."""
    page = path.read_text() if path.exists() else "# Benchmarks\n"
    if HEADING in page:
        page = page[: page.index(HEADING)]
    path.write_text(page.rstrip("\n") + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256 if not torch.cuda.is_available() else 1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sam-repeats", type=int, default=2 if not torch.cuda.is_available() else 5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = measure(args.image_size, args.repeats, args.sam_repeats)
    print(json.dumps(results, indent=1))
    (ROOT / "benchmarks" / "results" / "instances.json").write_text(json.dumps(results, indent=1))
    command = "python benchmarks/instances.py" + (
        f" --image-size {args.image_size}" if args.image_size != parser.get_default("image_size") else ""
    )
    write_section(section(results, command), args.out)


if __name__ == "__main__":
    main()
