"""Objects benchmark: how well split_instances finds touching objects, and the time to split one
image's classes into 1,000 objects, watershed and sam.

    .venv/bin/python benchmarks/instances.py                    # CPU: sam at input 256 (2-4 min on 2 cores)
    .venv/bin/python benchmarks/instances.py --image-size 1024  # as trained (CUDA: seconds; CPU: many minutes)
    .venv/bin/python benchmarks/instances.py --accuracy-only --baseline 41de717  # before/after a change

Accuracy: 100 touching pairs, 100 chains of three and 100 triangles of three ellipses (10-32 px
wide, necks 0.3-0.7 of the smaller one's width; benchmarks/instance_scenes.py) and 200 single
irregular objects (wobbly outlines, bent rods, long ellipses), scored with ns.score_objects at
IoU 0.5; "split" counts single objects cut into more than one. ``--baseline REV`` scores the
split_instances of git revision REV on the same scenes, in the same run.

The image is 1024x1024 with 1,000 round objects 12-18 px across, in touching pairs. "sam" runs
on SAM2-tiny with random weights (speed does not depend on the weights' values) and starts from
the target's cached features, so it times the watershed seeds, the batched decoder calls, the
masks' non-maximum suppression and the table. Figures go to benchmarks/results/instances.json
and the "Objects" section at the end of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.draw import disk

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instance_scenes import KINDS, mosaic, scenes  # noqa: E402
from page import write_section

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Objects"
NECK_BINS = ((0.3, 0.5), (0.5, 0.6), (0.6, 0.7))


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


def split_at(revision: str):
    """split_instances as it was at git ``revision`` (its split.py, loaded on its own)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/napari_sansa/engine/objects/split.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(f"split_{revision}", file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.split_instances


def scored(split, truth: np.ndarray) -> dict:
    row = ns.score_objects(split(truth > 0), truth, thresholds=(0.5,)).iloc[0]
    return {
        k: (int(row[k]) if k != "f1" else float(row[k]))
        for k in ("true_positives", "false_positives", "false_negatives", "f1")
    }


def accuracy(split, drawn: dict) -> dict:
    """F1 at IoU 0.5 of each kind of touching group (and by neck), and single objects split."""
    out = {}
    for kind in KINDS:
        groups = drawn[kind]
        out[kind] = scored(split, mosaic([t for t, _ in groups]))
        out[kind]["objects"] = sum(int(t.max()) for t, _ in groups)
        out[kind]["by_neck"] = {}
        for lo, hi in NECK_BINS:
            inside = [t for t, neck in groups if lo <= neck < hi or (hi == 0.7 and neck == hi)]
            if inside:
                found = scored(split, mosaic(inside))
                out[kind]["by_neck"][f"{lo}-{hi}"] = [
                    found["true_positives"],
                    sum(int(t.max()) for t in inside),
                ]
    everything = mosaic([t for kind in KINDS for t, _ in drawn[kind]])
    out["touching"] = scored(split, everything) | {"objects": int(everything.max())}
    singles = mosaic(drawn["single"])
    predicted = split(singles > 0)
    pairs = np.unique(np.stack([singles[predicted > 0], predicted[predicted > 0]]), axis=1)
    pieces = np.bincount(pairs[0], minlength=int(singles.max()) + 1)[1:]
    out["single"] = scored(lambda _: predicted, singles) | {
        "objects": int(singles.max()),
        "split": int((pieces > 1).sum()),
    }
    return out


def accuracy_rows(name: str, a: dict) -> list[str]:
    cells = []
    for kind in (*KINDS, "touching"):
        r = a[kind]
        cells.append(f"{r['f1']:.3f} ({r['true_positives']}/{r['objects']})")
    necks = [
        f"{sum(a[k]['by_neck'].get(f'{lo}-{hi}', [0, 0])[0] for k in KINDS)}/"
        f"{sum(a[k]['by_neck'].get(f'{lo}-{hi}', [0, 0])[1] for k in KINDS)}"
        for lo, hi in NECK_BINS
    ]
    single = a["single"]
    return [
        f"| {name} | {' | '.join(cells)} | {' | '.join(necks)} | {single['split']}/{single['objects']} "
        f"| {a['split_s']:.2f} |"
    ]


def accuracy_section(r: dict) -> list[str]:
    if "accuracy" not in r:
        return []
    a = r["accuracy"]
    header = " | ".join(f"neck {lo}-{hi}" for lo, hi in NECK_BINS)
    lines = [
        "",
        f"Accuracy, measured by `{a['command']}` (seed {a['seed']}): F1 at IoU 0.5 (objects found / "
        "objects) on touching ellipses 10-32 px wide whose necks are 0.3-0.7 of the smaller one's width "
        "(benchmarks/instance_scenes.py); objects found by neck; and single irregular objects (wobbly "
        "outlines, bent rods, long ellipses) cut into more than one; seconds to split the 1,000 objects "
        "of the timing image above (median of the same run).",
        "",
        f"| split_instances | pairs | chains of 3 | triangles of 3 | all touching | {header} | singles split "
        "| seconds, 1,000 objects |",
        "| --- " * (7 + len(NECK_BINS)) + "|",
    ]
    if "baseline" in a:
        lines += accuracy_rows(f"before ({a['baseline_revision']})", a["baseline"])
    lines += accuracy_rows("now", a["now"])
    return lines


def section(r: dict, command: str) -> str:
    if "split_s" not in r:
        return "\n".join([HEADING, *accuracy_section(r), ""])
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
            *accuracy_section(r),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256 if not torch.cuda.is_available() else 1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sam-repeats", type=int, default=2 if not torch.cuda.is_available() else 5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--accuracy-only", action="store_true", help="keep the saved timings; score only")
    parser.add_argument("--baseline", default=None, help="git revision whose split_instances to score too")
    parser.add_argument("--seed", type=int, default=0, help="of the accuracy scenes")
    args = parser.parse_args()
    saved = ROOT / "benchmarks" / "results" / "instances.json"
    results = json.loads(saved.read_text()) if args.accuracy_only and saved.exists() else {}
    if not args.accuracy_only:
        results = measure(args.image_size, args.repeats, args.sam_repeats)
    drawn = scenes(args.seed)
    command = "python benchmarks/instances.py" + (" --accuracy-only" if args.accuracy_only else "")
    command += f" --baseline {args.baseline}" if args.baseline else ""
    mask = scene()[1] == 1
    results["accuracy"] = {"command": command, "seed": args.seed, "now": accuracy(ns.split_instances, drawn)}
    results["accuracy"]["now"]["split_s"] = timed(lambda: ns.split_instances(mask), args.repeats)[0]
    if args.baseline:
        before = split_at(args.baseline)
        results["accuracy"]["baseline_revision"] = args.baseline
        results["accuracy"]["baseline"] = accuracy(before, drawn)
        results["accuracy"]["baseline"]["split_s"] = timed(lambda: before(mask), args.repeats)[0]
    print(json.dumps(results, indent=1))
    saved.write_text(json.dumps(results, indent=1))
    command = "python benchmarks/instances.py" + (
        f" --image-size {args.image_size}" if args.image_size != parser.get_default("image_size") else ""
    )
    write_section(args.out, HEADING, section(results, results.get("timing_command", command)), before=None)


if __name__ == "__main__":
    main()
