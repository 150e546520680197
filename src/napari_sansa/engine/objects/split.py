"""Objects from a class mask: every touching cell, nucleus or organoid its own label.

A pure function (NumPy, SciPy, scikit-image; no torch): connected components, with touching
objects split by a watershed on the distance transform. Every local maximum of the distance
transform seeds a region; two neighbouring regions are then merged unless the neck between
them is clearly narrower than the smaller of the two, relative to its size, so the same
defaults split round-ish objects from 8 px to 200 px across without tuning.

A clump whose middle is its thickest part (three objects pressed together in a triangle) has
no distance maximum in some of its objects, so a second pass looks at each object's outline:
from every notch (where the outline leaves its convex hull) a cut runs inward to the skeleton,
the distance transform away from outline and cuts seeds the pieces, and neighbouring pieces
join again unless the border between them is short next to the smaller piece's own width.
A single object, however irregular, keeps its pieces joined: their borders run across it.
"""

from __future__ import annotations

import heapq

import numpy as np

from napari_sansa.engine.errors import SansaError

DEFAULT_MIN_SIZE = 16  # pixels: a disc 4-5 px across; objects of 8 px across have about 50
NECK_RATIO = 0.75  # two regions stay apart where the neck is < 75% of the smaller one's width
MIN_NECK_DEPTH = 1.0  # pixels: shallower dips in the distance transform are pixel noise
BORDER_RATIO = 0.6  # ... or where their border is < 60% of the smaller one's width
NOTCH_DEPTH = 1.0  # pixels: a notch shallower than this is the outline's pixel steps
PIECE_PEAK = 1.0  # pixels: a piece's distance maximum must stand this far above its saddle
PIECE_BORDER_RATIO = 0.95  # pieces stay apart where their border is < 95% of the smaller's width
CLUMP_AREA = 1.3  # objects smaller than 1.3 discs as wide as their thickest point are not clumps
METHODS = ("watershed", "components")


def foreground(mask: np.ndarray, threshold: float | None = None, what: str = "The mask") -> np.ndarray:
    """A boolean ``(H, W)`` mask from a boolean/integer mask, a probability map or a logit map.

    Floats are cut at ``threshold``; by default 0.5 for a map within [0, 1] (probabilities),
    else 0 (logits).
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise SansaError(f"{what} must be one 2D (H, W) plane, got shape {array.shape}.")
    if array.dtype.kind in "bui":
        return array != 0
    if array.dtype.kind != "f":
        raise SansaError(f"{what} must be boolean, integer or float, not {array.dtype}.")
    if threshold is None:
        finite = array[np.isfinite(array)]
        threshold = 0.5 if finite.size and finite.min() >= 0 and finite.max() <= 1 else 0.0
    return np.nan_to_num(array, nan=-np.inf) > threshold


def split_instances(
    mask: np.ndarray,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    method: str = "watershed",
    threshold: float | None = None,
) -> np.ndarray:
    """``(H, W)`` int32 labels of one class's objects (0 = background, ids 1..n).

    ``mask``: a boolean or integer mask (nonzero = the class), or a probability or logit map
    (see :func:`foreground` for ``threshold``). ``method``: "watershed" splits touching objects,
    "components" only separates those that do not touch. Objects smaller than ``min_size``
    pixels are dropped (a small piece cut off a larger object joins it). Deterministic: the same
    mask always gives the same ids, numbered in the order their seeds appear row by row.
    """
    from scipy import ndimage

    if method not in METHODS:
        hint = " (method 'sam' needs the model: use Prediction.instances)" if method == "sam" else ""
        raise SansaError(f"Unknown method {method!r}{hint}; choose one of {', '.join(METHODS)}.")
    if not isinstance(min_size, (int, np.integer)) or isinstance(min_size, bool) or min_size < 0:
        raise SansaError(f"min_size must be a whole number of pixels, 0 or more; got {min_size!r}.")
    fg = foreground(mask, threshold)
    if method == "components":
        labels, _ = ndimage.label(fg, structure=np.ones((3, 3), bool))
        return _drop_small(labels, min_size)
    from skimage.morphology import local_maxima
    from skimage.segmentation import watershed

    distance = ndimage.distance_transform_edt(fg)
    peaks = local_maxima(distance, connectivity=2, allow_borders=True) & fg
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    regions = watershed(-distance, markers, mask=fg)
    return _split_clumps(_merge_regions(regions, distance, min_size), distance, min_size)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects under ``min_size`` pixels and number the rest 1..n in order."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    lut = np.zeros(len(sizes), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def _borders(regions: np.ndarray, distance: np.ndarray) -> dict[tuple[int, int], tuple[float, tuple]]:
    """For each pair of touching regions: the highest distance value along their border (the
    saddle between them) and the border's bounding box (row0, row1, col0, col1), whose diagonal
    measures the border's length at any angle (pixel counts would depend on it)."""
    h, w = regions.shape
    flat = np.arange(h * w).reshape(h, w)
    keys, saddles, sides = [], [], []
    for a, b, da, db, fa, fb in (
        (regions[:, :-1], regions[:, 1:], distance[:, :-1], distance[:, 1:], flat[:, :-1], flat[:, 1:]),
        (regions[:-1, :], regions[1:, :], distance[:-1, :], distance[1:, :], flat[:-1, :], flat[1:, :]),
    ):
        border = (a != b) & (a > 0) & (b > 0)
        la, lb = a[border].astype(np.int64), b[border].astype(np.int64)
        keys.append(np.stack([np.minimum(la, lb), np.maximum(la, lb)], axis=1))
        saddles.append(np.minimum(da[border], db[border]))
        sides.append(np.where(la < lb, fa[border], fb[border]))  # the lower id's pixel on the border
    pairs, saddle, pixel = np.concatenate(keys), np.concatenate(saddles), np.concatenate(sides)
    if not len(pairs):
        return {}
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    best = np.full(len(unique), -np.inf)
    np.maximum.at(best, inverse, saddle)
    rows, cols = np.divmod(pixel, w)
    box = [
        np.full(len(unique), h + w),
        np.full(len(unique), -1),
        np.full(len(unique), h + w),
        np.full(len(unique), -1),
    ]
    np.minimum.at(box[0], inverse, rows)
    np.maximum.at(box[1], inverse, rows)
    np.minimum.at(box[2], inverse, cols)
    np.maximum.at(box[3], inverse, cols)
    return {
        (int(a), int(b)): (float(s), (int(r0), int(r1), int(c0), int(c1)))
        for (a, b), s, r0, r1, c0, c1 in zip(unique, best, *box)
    }


def _length(box: tuple) -> float:
    r0, r1, c0, c1 = box
    return float(np.hypot(r1 - r0, c1 - c0)) + 1.0


def _join(a: tuple, b: tuple) -> tuple:
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def _merge_priority(
    border: tuple[float, tuple], peak_a: float, peak_b: float, size_a: int, size_b: int, min_size: int
):
    """How strongly two neighbours belong together (higher first); None: keep them apart.

    Apart where the neck is narrow for the smaller region: its saddle in the distance
    transform well below the region's peak, or the border between them short next to the
    region's width (the second holds for small objects, where distances are coarse).
    """
    saddle, box = border
    low = min(peak_a, peak_b)
    # distances reach pixel centres: the outline lies half a pixel further out
    ratio = (saddle + 0.5) / (low + 0.5)
    if min(size_a, size_b) < min_size:
        return 2.0 + ratio  # a small piece joins the neighbour it shares the widest border with
    if low - saddle < MIN_NECK_DEPTH:
        return ratio  # a dip within pixel noise: one object
    narrow = ratio < NECK_RATIO or _length(box) < BORDER_RATIO * 2 * (low + 0.5)
    return None if narrow else ratio


def _merge_regions(regions: np.ndarray, distance: np.ndarray, min_size: int) -> np.ndarray:
    """Merge watershed regions that are one object (wide neck) or too small to stand alone."""
    from scipy import ndimage

    n = int(regions.max())
    if n == 0:
        return regions.astype(np.int32)
    index = np.arange(1, n + 1)
    peak = np.concatenate([[0.0], ndimage.maximum(distance, regions, index)])
    size = np.bincount(regions.ravel(), minlength=n + 1)
    neighbours: dict[int, dict[int, tuple[float, tuple]]] = {i: {} for i in range(1, n + 1)}
    for (a, b), border in _borders(regions, distance).items():
        neighbours[a][b] = neighbours[b][a] = border
    parent = np.arange(n + 1)
    version = np.zeros(n + 1, np.int64)
    heap: list = []

    def push(a: int, b: int) -> None:
        a, b = min(a, b), max(a, b)
        priority = _merge_priority(neighbours[a][b], peak[a], peak[b], size[a], size[b], min_size)
        if priority is not None:
            heapq.heappush(heap, (-priority, a, b, version[a], version[b]))

    for a in range(1, n + 1):
        for b in neighbours[a]:
            if a < b:
                push(a, b)
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if version[a] != va or version[b] != vb:
            continue  # stale: one of them has merged since
        keep, gone = a, b  # the lower id (the earlier seed) names the merged object
        parent[gone] = keep
        peak[keep] = max(peak[keep], peak[gone])
        size[keep] += size[gone]
        version[keep] += 1
        version[gone] += 1
        for other, (s, box) in neighbours.pop(gone).items():
            del neighbours[other][gone]
            if other != keep:
                s0, box0 = neighbours[keep].get(other, (-np.inf, box))
                neighbours[keep][other] = neighbours[other][keep] = (max(s, s0), _join(box, box0))
        for other in neighbours[keep]:
            push(keep, other)
    for i in range(1, n + 1):  # point every region at its final object
        root = i
        while parent[root] != root:
            root = parent[root]
        parent[i] = root
    return _drop_small(parent[regions], min_size)


def _split_clumps(labels: np.ndarray, distance: np.ndarray, min_size: int) -> np.ndarray:
    """Each object split at the notches of its outline where that makes short borders (see
    the module's docstring); ids in the same order, the pieces of a split object in a row.
    Only objects larger than CLUMP_AREA discs of their thickest width are looked at: one
    round object is not a clump, and looking costs a convex hull per object."""
    from scipy import ndimage

    n = int(labels.max())
    if n == 0:
        return labels
    inside = labels > 0
    area = np.bincount(labels[inside], minlength=n + 1)
    radius = np.zeros(n + 1)
    np.maximum.at(radius, labels[inside], distance[inside])
    wide = area > CLUMP_AREA * np.pi * (radius + 0.5) ** 2
    pieces: list[tuple[int, tuple[slice, slice], np.ndarray]] = []
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or not wide[i]:
            continue
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        parts = _split_at_notches(labels[box] == i, min_size)
        if parts is not None:
            pieces.append((i, box, parts))
    if not pieces:
        return labels
    extra = np.zeros(n + 1, np.int64)  # pieces added before each object
    for i, _, parts in pieces:
        extra[i] = int(parts.max()) - 1
    new_id = np.arange(n + 1) + np.concatenate([[0], np.cumsum(extra)[:-1]])
    out = new_id[labels].astype(np.int32)
    for i, box, parts in pieces:
        view = out[box]
        mine = parts > 0
        view[mine] = new_id[i] + parts[mine] - 1
    return out


def _split_at_notches(obj: np.ndarray, min_size: int) -> np.ndarray | None:
    """Pieces 1..k of one object's mask (k >= 2), or None where it stays whole."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image, h_maxima
    from skimage.segmentation import watershed

    cuts = _notch_cuts(obj, convex_hull_image(obj))
    if cuts is None:
        return None
    shaped = ndimage.distance_transform_edt(obj & ~cuts)
    peaks = h_maxima(shaped, PIECE_PEAK).astype(bool) & obj & ~cuts
    markers, n = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    pieces = watershed(-shaped, markers, mask=obj)
    parts = _join_pieces(pieces, _across(pieces, obj, cuts), min_size)
    return parts if parts.max() > 1 else None


def _notch_cuts(obj: np.ndarray, hull: np.ndarray) -> np.ndarray | None:
    """Cuts from each notch of the outline (deeper than NOTCH_DEPTH) inward to the skeleton,
    along the line from the notch's mouth to its deepest point; None with fewer than two."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    notches = hull & ~obj
    labels, n = ndimage.label(notches, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    depth = ndimage.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1]
    mouth = notches & ndimage.binary_dilation(~hull, np.ones((3, 3), bool))
    skeleton = None
    cuts = np.zeros_like(obj)
    made = 0
    h, w = obj.shape
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        notch = labels[box] == k
        ends = mouth[box] & notch
        deep = np.where(notch, depth[box], 0.0)
        deepest = int(np.argmax(deep))
        if not ends.any() or deep.flat[deepest] < NOTCH_DEPTH:
            continue  # a hole, or the outline's pixel steps
        if skeleton is None:
            skeleton = skeletonize(obj)
        row, col = np.unravel_index(deepest, notch.shape)
        mouth_rows, mouth_cols = np.nonzero(ends)
        step = np.array([row - mouth_rows.mean(), col - mouth_cols.mean()])
        if not np.hypot(*step):
            continue
        step = 0.5 * step / np.hypot(*step)
        point = np.array([row + box[0].start, col + box[1].start], float)
        inside = False
        for _ in range(2 * (h + w)):
            point += step
            r, c = int(round(point[0])), int(round(point[1]))
            if not (0 <= r < h and 0 <= c < w) or (inside and not obj[r, c]):
                break
            if obj[r, c]:
                inside = True
                cuts[r, c] = True
                if skeleton[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any():
                    break
        made += 1
    return cuts if made >= 2 else None


def _own_width(mask: np.ndarray) -> float:
    """A piece's own width in pixels across (its largest inscribed disc), not the object's."""
    from scipy import ndimage

    return 2 * float(ndimage.distance_transform_edt(np.pad(mask, 1)).max()) - 1


def _across(pieces: np.ndarray, obj: np.ndarray, cuts: np.ndarray) -> set[tuple[int, int]]:
    """Neighbouring pieces whose border meets the outline away from the notches' cuts: a cut
    across a convex stretch of the object (a rod's end), never a wall between touching objects."""
    from scipy import ndimage

    square = np.ones((3, 3), bool)
    near_notch = ndimage.binary_dilation(cuts, square, iterations=2)
    rim = obj & ndimage.binary_dilation(~obj, square, border_value=1) & ~near_notch
    pairs = set()
    for a, b, ra, rb in (
        (pieces[:, :-1], pieces[:, 1:], rim[:, :-1], rim[:, 1:]),
        (pieces[:-1, :], pieces[1:, :], rim[:-1, :], rim[1:, :]),
    ):
        border = (a != b) & (a > 0) & (b > 0) & (ra | rb)
        pairs.update(zip(np.minimum(a, b)[border].tolist(), np.maximum(a, b)[border].tolist()))
    return pairs


def _join_pieces(pieces: np.ndarray, across: set[tuple[int, int]], min_size: int) -> np.ndarray:
    """Join neighbouring pieces, the longest border next to the smaller's own width first, while
    that border is at least PIECE_BORDER_RATIO of the width; pieces under min_size, and pieces
    whose border cuts ``across`` the object, always join."""
    n = int(pieces.max())
    members = {i: pieces == i for i in range(1, n + 1)}
    width = {i: _own_width(m) for i, m in members.items()}
    size = {i: int(m.sum()) for i, m in members.items()}
    neighbours: dict[int, dict[int, tuple]] = {i: {} for i in members}
    for (a, b), (_, box) in _borders(pieces, np.zeros(pieces.shape)).items():
        neighbours[a][b] = neighbours[b][a] = box

    def strength(a: int, b: int) -> float:
        if min(size[a], size[b]) < min_size or (min(a, b), max(a, b)) in across:
            return np.inf
        return _length(neighbours[a][b]) / min(width[a], width[b])

    while True:
        pairs = [(strength(a, b), a, b) for a in neighbours for b in neighbours[a] if a < b]
        if not pairs:
            break
        best, a, b = max(pairs)
        if best < PIECE_BORDER_RATIO:
            break
        members[a] |= members.pop(b)
        size[a] += size.pop(b)
        width[a] = _own_width(members[a])
        for other, box in neighbours.pop(b).items():
            del neighbours[other][b]
            if other != a:
                neighbours[a][other] = neighbours[other][a] = _join(box, neighbours[a].get(other, box))
                if (min(b, other), max(b, other)) in across:
                    across.add((min(a, other), max(a, other)))
    out = np.zeros(pieces.shape, np.int32)
    for k, i in enumerate(sorted(members), start=1):
        out[members[i]] = k
    return out


def link_planes(instances: np.ndarray, *, min_overlap: float = 0.5) -> np.ndarray:
    """Link a stack's per-plane objects into 3D objects: ``(Z, H, W)`` int32, one id per object.

    An object continues into the next plane where it covers at least ``min_overlap`` of the
    smaller of the two; each object links to at most one object per neighbouring plane (the
    largest overlap wins), so touching objects stay apart through the stack.
    """
    from scipy.optimize import linear_sum_assignment

    stack = np.asarray(instances)
    if stack.ndim != 3 or stack.dtype.kind not in "bui":
        raise SansaError(
            f"link_planes needs a (Z, H, W) integer label stack, got {stack.dtype} {stack.shape}."
        )
    out = np.zeros(stack.shape, np.int32)
    next_id = 1
    for z in range(stack.shape[0]):
        plane = stack[z].astype(np.int64)
        ids = np.unique(plane[plane > 0])
        lut = np.zeros(int(plane.max(initial=0)) + 1, np.int32)
        if z > 0 and len(ids) and out[z - 1].any():
            prev = out[z - 1].astype(np.int64)
            both = (prev > 0) & (plane > 0)
            pairs, counts = np.unique(np.stack([prev[both], plane[both]]), axis=1, return_counts=True)
            if pairs.size:
                prev_ids, prev_inv = np.unique(pairs[0], return_inverse=True)
                cur_ids, cur_inv = np.unique(pairs[1], return_inverse=True)
                overlap = np.zeros((len(prev_ids), len(cur_ids)))
                overlap[prev_inv, cur_inv] = counts
                area_prev = np.bincount(prev.ravel())[prev_ids]
                area_cur = np.bincount(plane.ravel())[cur_ids]
                share = overlap / np.minimum.outer(area_prev, area_cur)
                rows, cols = linear_sum_assignment(np.where(share >= min_overlap, -overlap, 0.0))
                for r, c in zip(rows, cols):
                    if share[r, c] >= min_overlap:
                        lut[cur_ids[c]] = prev_ids[r]
        for i in ids:
            if lut[i] == 0:
                lut[i] = next_id
                next_id += 1
        out[z] = lut[plane]
    return out
