"""Exports benchmark: time to trace objects into QuPath GeoJSON and COCO, in one tile and in many.

    .venv/bin/python benchmarks/exports.py          # about a minute on one core

The labels are instances.py's scene (1024x1024, 1,000 round objects 12-18 px across in touching
pairs) and a 4096x4096 mosaic of 16 of them (16,000 objects), traced in 2048 px tiles (the
default) and in 512 px tiles (many objects cut by tile borders, joined at the end). Medians of
repeated runs; figures go to benchmarks/results/exports.json and are quoted in docs/guide.md.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from instances import scene, timed  # benchmarks/instances.py

from napari_sansa.files.coco import CocoWriter
from napari_sansa.files.geojson import write_geojson
from napari_sansa.files.polygons import label_regions

ROOT = Path(__file__).resolve().parents[1]


def objects(tiles: int) -> np.ndarray:
    """Instance labels: ``tiles`` x ``tiles`` copies of the scene, ids unique."""
    from skimage.measure import label

    one = label(scene()[1] > 0, connectivity=1)  # the scene's mask as objects (pairs may join)
    rows = []
    for r in range(tiles):
        rows.append(
            np.hstack([np.where(one > 0, one + (r * tiles + c) * one.max(), 0) for c in range(tiles)])
        )
    return np.vstack(rows).astype(np.int32)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, labels, tile, repeats in [
            ("1024 px, 1 tile", objects(1), 2048, 5),
            ("4096 px, 2048 px tiles", objects(4), 2048, 3),
            ("4096 px, 512 px tiles", objects(4), 512, 3),
        ]:
            classes = {int(i): 1 for i in np.unique(labels) if i}
            pixels = int(np.count_nonzero(labels))

            def geojson(labels=labels, tile=tile, classes=classes):
                regions = label_regions(labels, instances=True, classes=classes, tile=tile)
                write_geojson(Path(folder) / "x.geojson", regions, {1: "cell"}, instances=True)

            def coco(labels=labels, tile=tile, classes=classes):
                writer = CocoWriter({1: "cell"}, [1])
                writer.add(
                    "x.tif", labels.shape, label_regions(labels, instances=True, classes=classes, tile=tile)
                )
                writer.write(Path(folder) / "coco.json")

            (g, _), (c, _) = timed(geojson, repeats), timed(coco, repeats)
            results[name] = {
                "objects": len(classes),
                "object_pixels": pixels,
                "geojson_s": round(g, 3),
                "coco_s": round(c, 3),
                "objects_per_s": round(len(classes) / g),
                "mpixels_per_s": round(pixels / g / 1e6, 2),
            }
            print(name, results[name], flush=True)
    (ROOT / "benchmarks" / "results" / "exports.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
