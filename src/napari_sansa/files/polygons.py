"""Label images as polygons that follow the pixel edges, read tile by tile.

Shared by the GeoJSON (QuPath) and COCO writers. A pixel (row r, column c) is the unit square
x in [c, c + 1], y in [r, r + 1], so a polygon's area is its object's pixel count exactly and
holes are kept. Each object's outline is traced along the pixel sides in numpy (where two of its
pixels touch only at a corner, its rows' runs of pixels are joined as boxes by shapely instead). Labels are read one tile at a time (a zarr store or a tiled TIFF never
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
DIRECT_IDS = 2**22  # object ids up to this are located without renumbering them


@dataclass(frozen=True)
class Region:
    """One object (instance labels) or one connected region of a class (class labels)."""

    label: int  # the object's label, or the region's number in the plane (from 1)
    class_id: int
    geometry: Any  # shapely Polygon or MultiPolygon in pixel coordinates (x = column, y = row)
    plane: int | None = None  # the plane of a stack


def _boxes_geometry(mask: np.ndarray, row0: int, col0: int):
    """The mask as the union of one box per run of pixels in a row (slower; any mask)."""
    import shapely

    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)  # row-major order: each run's end follows its start
    boxes = shapely.box(col0 + starts, row0 + rows, col0 + ends, row0 + rows + 1)
    return shapely.simplify(shapely.union_all(boxes), 0)  # drops vertices along straight edges


def _rings(mask: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """The mask's outlines as closed rings of pixel corners ``(x, y)`` (corners only), outer
    rings clockwise on screen, holes the other way; and whether two pixels of it touch only at a
    corner (a *pinch*, where a ring may pass twice).

    Every pixel side between the mask and the rest is an edge, directed with the mask on its
    right; each edge's successor is the edge starting where it ends (at a pinch, the right turn).
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), bool)
    p[1:-1, 1:-1] = mask
    inside, width = p[1:-1, 1:-1], w + 1
    parts = []
    for d, outside, (r0, c0), (r1, c1) in (
        (0, p[:-2, 1:-1], (0, 0), (0, 1)),  # top: (c, r) -> (c + 1, r), going right
        (1, p[1:-1, 2:], (0, 1), (1, 1)),  # right side: going down
        (2, p[2:, 1:-1], (1, 1), (1, 0)),  # bottom: going left
        (3, p[1:-1, :-2], (1, 0), (0, 0)),  # left side: going up
    ):
        r, c = np.nonzero(inside & ~outside)
        parts.append(((r + r0) * width + c + c0, (r + r1) * width + c + c1, np.full(r.size, d)))
    start, end, d = (np.concatenate(a) for a in zip(*parts))
    order = np.lexsort((d, start))
    start, end, d = start[order], end[order], d[order]
    first = np.searchsorted(start, end, "left")
    pinch = np.searchsorted(start, end, "right") - first == 2
    successor = first.copy()
    other = first[pinch] + 1
    successor[pinch] = np.where(d[other] == (d[pinch] + 1) % 4, other, first[pinch])
    seen = np.zeros(start.size, bool)
    rings = []
    for e0 in range(start.size):  # each cycle of the successor permutation is a ring
        ring = []
        e = e0
        while not seen[e]:
            seen[e] = True
            ring.append(e)
            e = successor[e]
        if ring:
            ring = np.array(ring)
            corners = start[ring[d[ring] != d[np.roll(ring, 1)]]]
            rings.append(np.column_stack([corners % width, corners // width]))
    return rings, bool(pinch.any())


def mask_geometry(mask: np.ndarray, row0: int = 0, col0: int = 0):
    """A boolean mask's pixels as one shapely (Multi)Polygon along pixel edges, offset by
    (row0, col0): its outlines traced, holes kept, the area its pixel count."""
    import shapely

    rings, pinched = _rings(mask)
    if pinched:  # rings that touch themselves are no valid polygon: let GEOS join boxes
        return _boxes_geometry(mask, row0, col0)
    shells, holes = [], []
    for xy in rings:
        x, y = xy[:, 0], xy[:, 1]
        signed = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)  # > 0: an outer ring
        (shells if signed > 0 else holes).append(xy + (col0, row0))
    if len(shells) == 1:
        return shapely.Polygon(shells[0], holes)
    outer = [shapely.Polygon(s) for s in shells]
    inner: list[list[np.ndarray]] = [[] for _ in shells]
    for hole in holes:  # a hole belongs to the smallest outer ring around it
        point = shapely.Polygon(hole).representative_point()
        owners = [i for i, polygon in enumerate(outer) if polygon.contains(point)]
        inner[min(owners, key=lambda i: outer[i].area)].append(hole)
    return shapely.MultiPolygon([shapely.Polygon(s, h) for s, h in zip(shells, inner)])


def _pieces(block: np.ndarray, instances: bool) -> Iterator[tuple[int, int, np.ndarray, tuple]]:
    """``(key, class value, mask, slices)`` per object or connected class region of a tile."""
    from scipy import ndimage
    from skimage.measure import label as connected

    if instances:
        top = int(block.max(initial=0))
        if top <= DIRECT_IDS:  # find_objects lists every id up to the largest: cheap for these
            for index, where in enumerate(ndimage.find_objects(block.astype(np.intp, copy=False)), 1):
                if where is not None:
                    yield index, index, block[where] == index, where
            return
        ids, numbered = np.unique(block, return_inverse=True)  # huge ids: numbered 1.. first
        if ids[0] != 0:
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
