"""``coco.json``: a run's objects as COCO instance annotations, for detector-training tools.

One file per run: ``images`` (file name, width, height; a stack gives one image per plane),
``categories`` (the class ids and names), ``annotations`` (one per object, or per connected
region of a class: ``segmentation`` as polygons along the pixel edges, or as uncompressed RLE
where a region has holes, which COCO polygons cannot hold; ``area`` in pixels, ``bbox``
``[x, y, width, height]`` from the pixel edges, ``iscrowd`` 0). Written atomically at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_sansa.files.class_table import class_name
from napari_sansa.files.images import atomic_write
from napari_sansa.files.polygons import Region

COCO_FILE = "coco.json"


def rle(geometry, hw: tuple[int, int]) -> dict:
    """The pixels inside a geometry as COCO's uncompressed RLE (column-major run lengths)."""
    import shapely

    h, w = hw
    x0, y0, x1, y1 = (int(round(v)) for v in geometry.bounds)
    rows, cols = np.mgrid[y0:y1, x0:x1]
    inside = shapely.contains_xy(geometry, cols + 0.5, rows + 0.5)  # pixel centres
    index = np.sort(cols[inside] * h + rows[inside])
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = index[np.r_[0, breaks]]
    ends = index[np.r_[breaks - 1, len(index) - 1]] + 1
    edges = np.column_stack([starts, ends]).ravel()
    counts = np.diff(np.r_[0, edges, h * w])
    return {"counts": counts.astype(np.int64).tolist(), "size": [h, w]}


def segmentation(geometry, hw: tuple[int, int]) -> list[list[int]] | dict:
    """COCO polygons (one flat ``[x1, y1, x2, y2, ...]`` per part), or RLE for a region with holes."""
    import shapely

    parts = shapely.get_parts(geometry)
    if any(len(part.interiors) for part in parts):
        return rle(geometry, hw)
    return [np.rint(part.exterior.coords[:-1]).astype(np.int64).ravel().tolist() for part in parts]


@dataclass
class CocoWriter:
    """Collects a run's images and their regions; :meth:`write` saves ``coco.json``."""

    class_names: dict[int, str]
    class_ids: Iterable[int] = ()
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add(self, file_name: str, shape: tuple[int, ...], regions: Iterable[Region]) -> None:
        """One target (``shape``: its labels' (H, W), or (..., H, W) for a stack: one image a plane)."""
        h, w = shape[-2:]
        planes = int(np.prod(shape[:-2])) if len(shape) > 2 else None
        first = len(self.images) + 1
        for plane in range(planes or 1):
            entry = {"id": first + plane, "file_name": file_name, "width": int(w), "height": int(h)}
            self.images.append(entry if planes is None else {**entry, "plane": plane})
        for region in regions:
            x0, y0, x1, y1 = (int(round(v)) for v in region.geometry.bounds)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": first + (region.plane or 0),
                    "category_id": int(region.class_id),
                    "segmentation": segmentation(region.geometry, (h, w)),
                    "area": int(round(region.geometry.area)),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                }
            )

    def document(self) -> dict:
        ids = sorted({int(c) for c in self.class_ids} | set(self.class_names))
        ids = ids or sorted({a["category_id"] for a in self.annotations})
        return {
            "info": {"description": "napari-sansa segmentation"},
            "images": self.images,
            "categories": [
                {"id": c, "name": class_name(self.class_names, c), "supercategory": "object"} for c in ids
            ],
            "annotations": self.annotations,
        }

    def write(self, path: str | os.PathLike) -> Path:
        text = json.dumps(self.document())
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
