"""Objects of labels too large for memory: each class's connected pieces, merged across blocks.

The class labels are read a block at a time (any array that takes slices: zarr, a memory map).
Each block's pieces of each class are labelled (8-connected, as
``split_instances(method="components")``) with provisional ids that are written straight into
the output; what is held between blocks is the provisional ids along the last row of the blocks
above and the last column of the block to the left, a union-find of the ids that touch across
those borders, and each provisional id's pixel count, coordinate sums and bounding box. A second
pass over the output gives the merged objects their final ids (class by class, in the order they
were first met; those under ``min_size`` pixels dropped). Touching objects of one class stay one
object: the watershed split needs the whole object's distance map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE
from napari_sansa.engine.objects.table import BASE_COLUMNS

BLOCK = 2048
EIGHT = np.ones((3, 3), bool)


class _UnionFind:
    """Provisional ids joined when they touch across a block border."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:  # path compression
            a, self.parent[a] = self.parent.get(a, a), root
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the first met stays the root


class _Stats:
    """Per provisional id: class, pixel count, coordinate sums and bounding box, grown as blocks come."""

    def __init__(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {
            k: [] for k in ("cls", "area", "sr", "sc", "r0", "c0", "r1", "c1")
        }

    def add(self, pieces: np.ndarray, n: int, class_id: int, r0: int, c0: int) -> None:
        from scipy import ndimage

        rows, cols = np.nonzero(pieces)
        ids = pieces[rows, cols]
        area = np.bincount(ids, minlength=n + 1)[1:]
        boxes = ndimage.find_objects(pieces, n)
        self.columns["cls"].append(np.full(n, class_id, np.int64))
        self.columns["area"].append(area.astype(np.int64))
        self.columns["sr"].append(np.bincount(ids, rows + r0, minlength=n + 1)[1:])
        self.columns["sc"].append(np.bincount(ids, cols + c0, minlength=n + 1)[1:])
        self.columns["r0"].append(np.array([b[0].start + r0 for b in boxes], np.int64))
        self.columns["c0"].append(np.array([b[1].start + c0 for b in boxes], np.int64))
        self.columns["r1"].append(np.array([b[0].stop + r0 for b in boxes], np.int64))
        self.columns["c1"].append(np.array([b[1].stop + c0 for b in boxes], np.int64))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.columns.items()}


def _blocks(shape: tuple[int, int], block: int) -> Iterator[tuple[slice, slice]]:
    for r in range(0, shape[0], block):
        for c in range(0, shape[1], block):
            yield slice(r, min(r + block, shape[0])), slice(c, min(c + block, shape[1]))


def _join(
    unions: _UnionFind, ids: np.ndarray, cls: np.ndarray, other_ids: np.ndarray, other_cls: np.ndarray
) -> None:
    """Union the ids of two touching lines of pixels (8-connected: straight and diagonal
    neighbours) where both are of the same class. ``other`` is one pixel longer on each side."""
    for shift in (0, 1, 2):
        theirs, their_cls = other_ids[shift : shift + len(ids)], other_cls[shift : shift + len(ids)]
        same = (ids > 0) & (theirs > 0) & (cls == their_cls)
        for a, b in set(zip(ids[same].tolist(), theirs[same].tolist())):
            unions.union(a, b)


def stream_objects(
    labels: Any,
    out: Any,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    class_names: Mapping[int, str] | None = None,
    block: int = BLOCK,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write each object of the class labels ``labels`` ``(H, W)`` its own id into ``out`` (an
    int32 array of the same shape that takes slices, e.g. zarr) and return their table (the
    columns of :func:`~.table.object_table` without intensities; ``score`` left empty).
    ``progress(done, total)`` follows the two passes' blocks."""
    from scipy import ndimage

    h, w = (int(n) for n in labels.shape)
    blocks = list(_blocks((h, w), block))
    total = 2 * len(blocks)
    unions, stats = _UnionFind(), _Stats()
    next_id = 1
    pad = np.zeros(1, np.int64)
    above_ids = above_cls = None  # the last row of the row of blocks above, one pixel wider each side
    below_ids, below_cls = np.zeros(w + 2, np.int64), np.zeros(w + 2, np.int64)
    left_ids = left_cls = None
    for k, (rows, cols) in enumerate(blocks):
        if cols.start == 0:  # a new row of blocks
            if rows.start > 0:
                above_ids, above_cls = below_ids.copy(), below_cls.copy()
            left_ids = left_cls = None
        data = np.asarray(labels[rows, cols])
        ids = np.zeros(data.shape, np.int64)
        for class_id in np.unique(data):
            if class_id == 0:
                continue
            pieces, n = ndimage.label(data == class_id, structure=EIGHT)
            if n == 0:
                continue
            stats.add(pieces, n, int(class_id), rows.start, cols.start)
            inside = pieces > 0
            ids[inside] = pieces[inside] + (next_id - 1)
            next_id += n
        cls = data.astype(np.int64)
        if above_ids is not None:  # the row above, from one column left to one column right
            _join(
                unions,
                ids[0],
                cls[0],
                above_ids[cols.start : cols.stop + 2],
                above_cls[cols.start : cols.stop + 2],
            )
        if left_ids is not None:
            _join(
                unions,
                ids[:, 0],
                cls[:, 0],
                np.concatenate([pad, left_ids, pad]),
                np.concatenate([pad, left_cls, pad]),
            )
        left_ids, left_cls = ids[:, -1].copy(), cls[:, -1].copy()
        below_ids[cols.start + 1 : cols.stop + 1] = ids[-1]
        below_cls[cols.start + 1 : cols.stop + 1] = cls[-1]
        out[rows, cols] = ids.astype(np.int32)
        if progress is not None:
            progress(k + 1, total)

    lut, table = _final_ids(unions, stats.arrays(), next_id, min_size, class_names or {})
    for k, (rows, cols) in enumerate(blocks):
        out[rows, cols] = lut[np.asarray(out[rows, cols])]
        if progress is not None:
            progress(len(blocks) + k + 1, total)
    return table


def _final_ids(
    unions: _UnionFind, s: dict[str, np.ndarray], count: int, min_size: int, names: Mapping[int, str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """The lookup from provisional to final ids, and the merged objects' table."""
    n = count - 1
    roots = np.array([unions.find(i) for i in range(1, count)], np.int64) if n else np.zeros(0, np.int64)
    group_of = np.unique(roots, return_inverse=True)[1].ravel() if n else roots
    groups = int(group_of.max()) + 1 if n else 0

    def summed(key):
        return np.bincount(group_of, s[key], minlength=groups) if n else np.zeros(0)

    area = summed("area").astype(np.int64)
    cls = np.zeros(groups, np.int64)
    cls[group_of] = s["cls"].astype(np.int64) if n else cls
    first = np.full(groups, np.iinfo(np.int64).max)
    np.minimum.at(first, group_of, np.arange(n))
    big = np.iinfo(np.int64).max
    boxes = {}
    for key, fill, reduce in (
        ("r0", big, np.minimum),
        ("c0", big, np.minimum),
        ("r1", -1, np.maximum),
        ("c1", -1, np.maximum),
    ):
        boxes[key] = np.full(groups, fill, np.int64)
        reduce.at(boxes[key], group_of, s[key].astype(np.int64))
    kept = np.flatnonzero(area >= max(min_size, 1))
    kept = kept[np.lexsort((first[kept], cls[kept]))]  # class by class, in the order first met
    final = np.zeros(groups, np.int32)
    final[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    lut = np.zeros(count, np.int32)
    lut[1:] = final[group_of] if n else lut[1:]
    safe = np.maximum(area[kept], 1)
    class_ids = cls[kept]
    table = pd.DataFrame(
        {
            "label": np.arange(1, len(kept) + 1, dtype=np.int64),
            "class": class_ids,
            "class_name": pd.Series([str(names.get(int(c), "")) for c in class_ids], dtype=object),
            "area": area[kept],
            "centroid_row": summed("sr")[kept] / safe if n else np.zeros(0),
            "centroid_col": summed("sc")[kept] / safe if n else np.zeros(0),
            "bbox_row0": boxes["r0"][kept],
            "bbox_col0": boxes["c0"][kept],
            "bbox_row1": boxes["r1"][kept],
            "bbox_col1": boxes["c1"][kept],
        }
    )
    table["score"] = np.nan
    return lut, table[list(BASE_COLUMNS) + ["score"]]
