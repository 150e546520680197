"""How long scoring takes: ``score_classes`` and ``score_objects`` on many touching objects.

    .venv/bin/python benchmarks/scores.py [--side 2048] [--objects 10000] [--repeats 5]

A ``side`` x ``side`` image with ``objects`` seeds grown into touching regions (scikit-image's
``expand_labels``), the prediction the same objects shifted by two columns and relabelled at
random. Prints the medians of ``repeats`` runs and writes ``benchmarks/results/scores.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

import napari_sansa as ns

RESULTS = Path(__file__).resolve().parent / "results"


def scene(side: int, objects: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.zeros((side, side), np.int32)
    truth[tuple(rng.integers(0, side, (2, objects)))] = np.arange(1, objects + 1)
    truth = expand_labels(truth, distance=max(2, int(side / np.sqrt(objects) / 2)))
    relabel = np.r_[0, rng.permutation(np.arange(1, truth.max() + 1))]
    return relabel[np.roll(truth, 2, axis=1)], truth


def median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    predicted, truth = scene(args.side, args.objects)
    n = len(np.unique(truth)) - 1
    objects = median_seconds(lambda: ns.score_objects(predicted, truth), args.repeats)
    classes = median_seconds(lambda: ns.score_classes(predicted > 0, truth > 0), args.repeats)
    table = ns.score_objects(predicted, truth).set_index("threshold")
    result = {
        "side": args.side,
        "objects": n,
        "score_objects_s": round(objects, 3),
        "score_classes_s": round(classes, 3),
        "f1_at_0.5": round(float(table.loc[0.5, "f1"]), 4),
        "repeats": args.repeats,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{n} objects in {args.side}x{args.side}: score_objects (3 thresholds) {objects:.2f} s, "
        f"score_classes {classes:.2f} s (medians of {args.repeats})"
    )


if __name__ == "__main__":
    main()
