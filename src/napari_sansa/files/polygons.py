"""Label images as polygons that follow the pixel edges, read tile by tile.

Shared by the GeoJSON (QuPath) and COCO writers. A pixel (row r, column c) is the unit square
x in [c, c + 1], y in [r, r + 1], so a polygon's area is its object's pixel count exactly and
holes are kept. Each object's rows are cut into runs of pixels, one box per run, and the boxes
joined with shapely. Labels are read one tile at a time (a zarr store or a tiled TIFF never
whole); pieces that touch a tile's inner border wait until the end and are joined once, so an
object cut by tile borders is still one region.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

TILE = 2048  # pixels a side read at a time


@dataclass(frozen=True)
class Region:
    """One object (instance labels) or one connected region of a class (class labels)."""

    label: int  # the object's label, or the region's number in the plane (from 1)
    class_id: int
    geometry: Any  # shapely Polygon or MultiPolygon in pixel coordinates (x = column, y = row)
    plane: int | None = None  # the plane of a stack


def mask_geometry(mask: np.ndarray, row0: int = 0, col0: int = 0):
    """A boolean mask's pixels as one shapely geometry along pixel edges, offset by (row0, col0)."""
    import shapely

    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)  # row-major order: each run's end follows its start
    boxes = shapely.box(col0 + starts, row0 + rows, col0 + ends, row0 + rows + 1)
    joined = shapely.union_all(boxes)
    return shapely.simplify(joined, 0)  # drops the vertices runs leave along straight edges


def _pieces(block: np.ndarray, instances: bool) -> Iterator[tuple[int, int, np.ndarray, tuple]]:
    """``(key, class value, mask, slices)`` per object or connected class region of a tile."""
    from scipy import ndimage
    from skimage.measure import label as connected

    if instances:
        ids, numbered = np.unique(block, return_inverse=True)
        if ids[0] != 0:  # numbered 1.. with 0 for the background, as find_objects wants
            ids, numbered = np.concatenate([[0], ids]), numbered + 1
        numbered = numbered.reshape(block.shape)
        for index, where in enumerate(ndimage.find_objects(numbered), start=1):
            if where is not None:
                yield int(ids[index]), int(ids[index]), numbered[where] == index, where
        return
    numbered = connected(block, background=0, connectivity=1)
    for index, where in enumerate(ndimage.find_objects(numbered), start=1):
        if where is not None:
            mask = numbered[where] == index
            yield index, int(block[where][mask][0]), mask, where


def _plane_regions(
    labels: Any, instances: bool, classes: Mapping[int, int] | None, plane: int | None, tile: int
) -> Iterator[Region]:
    """The regions of one 2D plane, read ``tile`` pixels a side at a time."""
    import shapely

    h, w = labels.shape
    waiting: dict[int, list] = defaultdict(list)  # pieces touching an inner tile border, by key
    count = 0
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            block = np.asarray(labels[r0 : r0 + tile, c0 : c0 + tile])
            bh, bw = block.shape
            for key, value, mask, (rows, cols) in _pieces(block, instances):
                geometry = mask_geometry(mask, r0 + rows.start, c0 + cols.start)
                cut = (rows.start == 0 and r0 > 0) or (cols.start == 0 and c0 > 0)
                cut = cut or (rows.stop == bh and r0 + bh < h) or (cols.stop == bw and c0 + bw < w)
                if cut:  # objects: joined by label; class regions: by class, split after
                    waiting[key if instances else value].append(geometry)
                    continue
                count += 1
                class_id = classes.get(value, 0) if (instances and classes is not None) else value
                yield Region(key if instances else count, class_id, geometry, plane)
    for key, pieces in sorted(waiting.items()):
        joined = shapely.union_all(pieces)
        joined = shapely.simplify(joined, 0)
        if instances:
            class_id = classes.get(key, 0) if classes is not None else key
            yield Region(key, class_id, joined, plane)
            continue
        for part in shapely.get_parts(joined):  # regions of one class that the borders joined
            count += 1
            yield Region(count, key, part, plane)


def label_regions(
    labels: Any,
    *,
    instances: bool = False,
    classes: Mapping[int, int] | None = None,
    tile: int = TILE,
) -> Iterator[Region]:
    """Each object (``instances``: labels are object ids, ``classes`` maps them to class ids) or
    each 4-connected region of a class (labels are class ids) as a :class:`Region`.

    ``labels``: a 2D array, or a stack (planes first, flattened in order), numpy or any lazily
    sliced array (zarr).
    """
    if len(labels.shape) > 3:  # e.g. (T, Z, H, W): its planes in order
        labels = np.asarray(labels).reshape(-1, *labels.shape[-2:])
    if len(labels.shape) == 3:
        for plane in range(labels.shape[0]):
            view = _Plane(labels, plane)
            yield from _plane_regions(view, instances, classes, plane, tile)
        return
    yield from _plane_regions(labels, instances, classes, None, tile)


class _Plane:
    """One plane of a stack, sliced lazily."""

    def __init__(self, array: Any, index: int) -> None:
        self.array, self.index = array, index
        self.shape = tuple(array.shape[1:])

    def __getitem__(self, key: tuple) -> np.ndarray:
        return np.asarray(self.array[(self.index, *key)])
