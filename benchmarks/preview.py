"""Live preview benchmark: how long an update takes after a stroke on a reference.

    .venv/bin/python benchmarks/preview.py                         # inputs 512 and 1024, CPU
    .venv/bin/python benchmarks/preview.py --image-sizes 1024 --updates 9

It runs the widget's own preview work (:func:`napari_sansa.plugin.core.preview.predict_preview`)
on SAM2-tiny with random weights (speed does not depend on the weights' values): one reference
(a 1024x1024 image of cells with its mask) and one target of the same size, both already
encoded. Each update adds a stroke (a disc) to the reference's mask and predicts the target
again: the changed reference's memory encoding plus one propagation, no encoder pass. For
comparison, one encoder pass and the per-target work beyond the encoder (a target with every
feature and memory cached). Medians of ``--updates`` updates. The widget adds its debounce
(250 ms after the last change) and writing the layer. Figures go to
benchmarks/results/preview.json and the "Live preview" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from page import write_section
from skimage.draw import disk

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module
from napari_sansa.plugin.core.preview import PreviewRequest, predict_preview
from napari_sansa.plugin.core.session import ImageSource, TargetKey
from napari_sansa.samples import cells

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Live preview"
HW = (1024, 1024)


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(image_size: int, updates: int, device: str) -> dict:
    (image, labels), (target, _), *others = cells(2 + 3, HW, seed=7)
    model = ns.Sansa(
        random_sansa_module("tiny", image_size), ns.SansaConfig(device=device, image_size=image_size)
    )
    encoder_s = median_s(lambda: model.encode(others.pop()[0]), 3)
    mask = labels == 1
    source = ImageSource("target", "target", target, 0)

    def request(generation: int) -> PreviewRequest:
        reference = ns.Reference(image, {1: ns.Mask(mask.copy())})
        return PreviewRequest(generation, TargetKey("target"), source, [reference])

    predict_preview(lambda: model, request(0))  # encodes the reference and the target once
    heads_s = median_s(lambda: predict_preview(lambda: model, request(0)), updates)  # all cached
    rng = np.random.default_rng(0)
    times, passes = [], []
    for generation in range(1, updates + 1):
        rr, cc = disk(tuple(rng.integers(50, HW[0] - 50, 2)), 12, shape=HW)
        mask[rr, cc] = True  # a stroke
        result = predict_preview(lambda: model, request(generation))
        times.append(result.seconds)
        passes.append(result.encoder_passes)
    return {
        "image_size": image_size,
        "device": device,
        "threads": torch.get_num_threads(),
        "encoder_s": encoder_s,
        "cached_target_s": heads_s,
        "update_s": statistics.median(times),
        "update_max_s": max(times),
        "encoder_passes_per_update": max(passes),
        "updates": updates,
        "load_average": os.getloadavg()[0],  # other work on the machine inflates every figure alike
    }


def section(results: list[dict], command: str) -> str:
    rows = [
        f"| {r['image_size']} | {r['update_s']:.2f} | {r['update_max_s']:.2f} | {r['cached_target_s']:.2f} "
        f"| {r['encoder_s']:.2f} | {r['encoder_passes_per_update']} |"
        for r in results
    ]
    r = results[0]
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `{command}` ({r['device']}, {r['threads']} torch thread(s)): SAM2-tiny, random "
            f"weights; one 1024x1024 reference with its mask and a 1024x1024 target, both encoded "
            f"before; each update adds a stroke to the mask and predicts the target again with the "
            f"widget's preview code (median of {r['updates']} updates). *Cached target*: the same "
            "prediction with the reference unchanged (every feature and memory cached), i.e. the "
            "per-target work beyond the encoder.",
            "",
            "| input | update (s) | slowest update (s) | cached target (s) | one encoder pass (s) | encoder passes per update |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "An update costs the changed reference's memory encoding (its image's features stay "
            "cached) and one propagation to the target, and no encoder pass. In the widget, add the "
            "250 ms debounce after the last change and writing the layer. Most of both is SAM2's "
            "memory attention over the target's 4,096 (input 1024) or 1,024 (512) image tokens. "
            f"The machine was shared (load average {max(x['load_average'] for x in results):.0f} "
            "during the run), which slows every figure alike: compare them within a row. No GPU was "
            "measured here.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = [measure(size, args.updates, args.device) for size in args.image_sizes]
    print(json.dumps(results, indent=1))
    (ROOT / "benchmarks" / "results" / "preview.json").write_text(json.dumps(results, indent=1))
    write_section(args.out, HEADING, section(results, "python benchmarks/preview.py"))


if __name__ == "__main__":
    main()
