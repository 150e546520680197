"""A target's cost on the CPU with and without the copy trims of ``engine.trims`` (same run).

    .venv/bin/python benchmarks/copies.py [--size tiny] [--image-size 1024] [--repeats 5]

One model, its references cached; targets alternate between the model as built (position
encodings made once per grid) and the same model with SAM2's own position encoding calls put
back, so both see the same machine load; every target is a new image (one encoder pass each). Prints medians of the per-target seconds and, from
``torch.profiler``, the share of ``aten::copy_`` and the elements copied, and writes
``benchmarks/results/copies.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module
from napari_sansa.engine.network.trims import SharedPositions, share_position_encodings

RESULTS = Path(__file__).resolve().parent / "results"


def untrimmed(sam) -> None:
    """Put SAM2's own position encoding calls back."""
    for owner in (sam.image_encoder.neck, sam.memory_encoder):
        if isinstance(owner.position_encoding, SharedPositions):
            owner.position_encoding = owner.position_encoding.inner
    sam.sam_prompt_encoder.__dict__.pop("get_dense_pe", None)
    sam.image_encoder.trunk.__dict__.pop("_get_pos_embed", None)


def images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(n)]


def copies(model, refs, target) -> dict:
    with torch.profiler.profile(record_shapes=True) as profile:
        model.segment(refs, [target])
    events = profile.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    copy = sum(e.self_cpu_time_total for e in events if e.key == "aten::copy_")
    calls = {e.key: e.count for e in events if e.key in ("aten::copy_", "aten::_to_copy", "aten::repeat")}
    return {"copy_ share": copy / total, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = ns.SansaConfig(device="cpu", precision="fp32", image_size=args.image_size, disk_cache_bytes=0)
    model = ns.Sansa(random_sansa_module(args.size, args.image_size), config)
    mask = np.zeros((480, 640), bool)
    mask[150:330, 200:420] = True
    refs = [ns.Reference(images(1, 1)[0], {1: ns.Mask(mask)})]
    variants = {
        "trimmed": lambda: share_position_encodings(model.sam, model.dtype),
        "SAM2's own": lambda: untrimmed(model.sam),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    profiles = {}
    for index, (name, apply) in enumerate(variants.items()):  # warm-up and profile each
        apply()
        model.segment(refs, images(1, 2))
        profiles[name] = copies(model, refs, images(1, 3 + index)[0])  # a new target: encoded
    for index, target in enumerate(images(args.repeats * len(variants), 10)):
        name = list(variants)[index % len(variants)]
        variants[name]()
        start = time.perf_counter()
        model.segment(refs, [target])
        seconds[name].append(time.perf_counter() - start)
    import os

    out = {
        "size": args.size,
        "image size": args.image_size,
        "repeats": args.repeats,
        "load average": list(os.getloadavg()),
        "median s": {name: statistics.median(values) for name, values in seconds.items()},
        "profile": profiles,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "copies.json").write_text(json.dumps(out, indent=1))
    for name in variants:
        p = profiles[name]
        print(
            f"{name}: {out['median s'][name]:.3f} s per target (median of {args.repeats}), "
            f"copy_ {p['copy_ share']:.1%} of the profiled time, calls {p['calls']}"
        )


if __name__ == "__main__":
    main()


def report_lines(r: dict | None) -> list[str]:
    """The page's paragraph on the copy trims."""
    if not r:
        return []
    own, trimmed = r["profile"]["SAM2's own"], r["profile"]["trimmed"]
    seconds = r["median s"]
    return (
        [
            f"### Copies in a target (SAM2 {r['size']}, fp32, input {r['image size']})",
            "",
            f"Measured by `.venv/bin/python benchmarks/copies.py` (load average {r['load average'][0]:.1f} "
            "at the end: shared cores). Position encodings made once per grid (`engine/trims.py`) against "
            "SAM2's own calls, alternating targets in the same run:",
            "",
            "| | seconds per target (median) | `aten::copy_` share of the profile | `copy_` calls | `_to_copy` calls | `repeat` calls |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        + [
            f"| {name} | {seconds[name]:.2f} | {p['copy_ share']:.1%} | {p['calls'].get('aten::copy_', 0)} | "
            f"{p['calls'].get('aten::_to_copy', 0)} | {p['calls'].get('aten::repeat', 0)} |"
            for name, p in (("SAM2's own", own), ("trimmed", trimmed))
        ]
        + [
            "",
            "The remaining copies are inside SAM2's modules: each linear layer's bias copied into its output "
            "before the product (`addmm`), `contiguous()` before layer norms and pooling in Hiera, window "
            "partitions, and the fp32 round trip of rotary position encoding in memory attention.",
            "",
        ]
    )
