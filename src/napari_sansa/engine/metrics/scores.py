"""Scores of a label image against a ground truth: per class (IoU, Dice) and per object.

Numpy in, pandas out. Both functions take 2-D images (Y, X) or stacks (Z, Y, X); a stack
is scored as one volume, or plane by plane with ``per_plane=True`` (then every row has a
``plane`` column, first). Label 0 is background everywhere.

Overlaps are counted once, sparsely: each pair of (truth, predicted) labels that share a
pixel is one entry of a sparse contingency table, so scoring 10,000 objects costs a sort of
the pixels, never a loop over all pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from napari_sansa.engine.errors import SansaError

CLASS_COLUMNS = ("class", "iou", "dice", "true_pixels", "predicted_pixels")
OBJECT_COLUMNS = (
    "threshold",
    "true_positives",
    "false_positives",
    "false_negatives",
    "precision",
    "recall",
    "f1",
    "mean_matched_iou",
)


def _labels(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.array_equal(array, np.round(array)):
            return array.astype(np.int64)
        raise SansaError(f"the {name} labels are {array.dtype}: give an integer label image")
    return array


def _pair(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = _labels(predicted, "predicted"), _labels(truth, "true")
    if predicted.shape != truth.shape:
        raise SansaError(
            f"the prediction is {predicted.shape} and the truth {truth.shape}: "
            "score label images of the same shape"
        )
    if predicted.ndim not in (2, 3):
        raise SansaError(f"labels of {predicted.ndim} dimensions: give an image (Y, X) or a stack (Z, Y, X)")
    return predicted, truth


def _pair_keys(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (truth, predicted) label pair that shares pixels, and its pixel count: one pass
    (``bincount``) while the labels are few, else one sort of the pixels' pair keys."""
    t, p = truth.ravel(), predicted.ravel()
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    if min(int(t.min()), int(p.min())) < 0 or max(int(t.max()), int(p.max())) >= 2**31:
        # pair keys would not fit in 64 bits: rank the ids first
        t_ids, t = np.unique(t, return_inverse=True)
        p_ids, p = np.unique(p, return_inverse=True)
    else:
        t_ids = p_ids = None
    span = int(p.max()) + 1
    keys = t.astype(np.int64) * span + p.astype(np.int64)
    if (int(t.max()) + 1) * span <= 4 * t.size:
        counts = np.bincount(keys, minlength=1)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(keys, return_counts=True)
    rows, cols = keys // span, keys % span
    if t_ids is not None:
        rows, cols = t_ids[rows], p_ids[cols]
    return rows, cols, counts


def _contingency(
    truth: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, sparse.csr_matrix]:
    """Label ids of each image and the sparse count of pixels per (truth, predicted) pair."""
    rows, cols, counts = _pair_keys(truth, predicted)
    true_ids, true_index = np.unique(rows, return_inverse=True)
    predicted_ids, predicted_index = np.unique(cols, return_inverse=True)
    table = sparse.coo_matrix(
        (counts.astype(np.int64), (true_index.ravel(), predicted_index.ravel())),
        shape=(true_ids.size, predicted_ids.size),
    ).tocsr()
    return true_ids, predicted_ids, table


def _per_plane(score, predicted: np.ndarray, truth: np.ndarray, per_plane: bool, **options) -> pd.DataFrame:
    if not per_plane or predicted.ndim == 2:
        return score(predicted, truth, **options)
    frames = [score(predicted[z], truth[z], **options).assign(plane=z) for z in range(len(predicted))]
    table = pd.concat(frames, ignore_index=True)
    return table[["plane", *[c for c in table.columns if c != "plane"]]]


def score_classes(
    predicted: np.ndarray,
    truth: np.ndarray,
    class_ids: Iterable[int] | None = None,
    *,
    per_plane: bool = False,
) -> pd.DataFrame:
    """IoU and Dice of each class between a predicted and a true class-label image.

    One row per class present in either image (0 is background and never scored), or per
    id in ``class_ids`` (a class in neither image then has ``iou`` and ``dice`` NaN).
    Columns: ``class, iou, dice, true_pixels, predicted_pixels``. A class only in the truth
    scores 0 (missed); one only in the prediction scores 0 (a false positive).

    A stack (Z, Y, X) is scored as one volume; ``per_plane=True`` scores each plane apart
    and adds a ``plane`` column (first), one row set per plane.
    """
    predicted, truth = _pair(predicted, truth)
    wanted = None if class_ids is None else sorted({int(c) for c in class_ids} - {0})
    return _per_plane(_class_scores, predicted, truth, per_plane, wanted=wanted)


def _class_scores(predicted: np.ndarray, truth: np.ndarray, wanted: list[int] | None) -> pd.DataFrame:
    true_ids, predicted_ids, counts = _contingency(truth, predicted)
    true_pixels = dict(zip(true_ids.tolist(), np.asarray(counts.sum(axis=1)).ravel().tolist()))
    predicted_pixels = dict(zip(predicted_ids.tolist(), np.asarray(counts.sum(axis=0)).ravel().tolist()))
    true_row = {c: i for i, c in enumerate(true_ids.tolist())}
    predicted_col = {c: i for i, c in enumerate(predicted_ids.tolist())}
    classes = wanted
    if classes is None:
        classes = sorted((set(true_pixels) | set(predicted_pixels)) - {0})
    rows = []
    for c in classes:
        t, p = true_pixels.get(c, 0), predicted_pixels.get(c, 0)
        both = int(counts[true_row[c], predicted_col[c]]) if c in true_row and c in predicted_col else 0
        union = t + p - both
        iou = both / union if union else np.nan
        dice = 2 * both / (t + p) if t + p else np.nan
        rows.append((c, iou, dice, t, p))
    return pd.DataFrame(rows, columns=list(CLASS_COLUMNS)).astype(
        {
            "class": np.int64,
            "iou": float,
            "dice": float,
            "true_pixels": np.int64,
            "predicted_pixels": np.int64,
        }
    )


def score_objects(
    predicted: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float] = (0.5, 0.75, 0.9),
    *,
    per_plane: bool = False,
) -> pd.DataFrame:
    """How many true objects were found, at each IoU threshold: the way the field counts.

    ``predicted`` and ``truth`` are instance label images (each object its own label, 0 is
    background). Objects are matched one to one; a pair can match when its IoU is at least
    the threshold. Among those pairs the matching has the most matches and, among such
    matchings, the largest total IoU (scipy's ``linear_sum_assignment``, solved only on
    groups of objects that overlap; at thresholds >= 0.5 each object has at most one
    candidate, so the matching is unique). One row per threshold: ``threshold,
    true_positives, false_positives, false_negatives, precision, recall, f1,
    mean_matched_iou`` (NaN where a ratio has nothing to count, e.g. precision without any
    predicted object).

    A stack (Z, Y, X) is matched as 3-D objects; ``per_plane=True`` matches each plane's
    2-D objects apart and adds a ``plane`` column (first), one row set per plane.
    """
    predicted, truth = _pair(predicted, truth)
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0 < t <= 1 for t in thresholds):
        raise SansaError(f"IoU thresholds {thresholds}: give values in (0, 1]")
    return _per_plane(_object_scores, predicted, truth, per_plane, thresholds=thresholds)


def _overlap_ious(
    predicted: np.ndarray, truth: np.ndarray
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of true and predicted objects, and the IoU of every overlapping pair."""
    true_ids, predicted_ids, counts = _contingency(truth, predicted)
    true_area = np.asarray(counts.sum(axis=1)).ravel()
    predicted_area = np.asarray(counts.sum(axis=0)).ravel()
    keep_true, keep_predicted = true_ids != 0, predicted_ids != 0
    counts = counts[keep_true][:, keep_predicted].tocoo()
    true_area, predicted_area = true_area[keep_true], predicted_area[keep_predicted]
    rows, cols, both = counts.row, counts.col, counts.data.astype(np.float64)
    iou = both / (true_area[rows] + predicted_area[cols] - both)
    return int(keep_true.sum()), int(keep_predicted.sum()), rows, cols, iou


def _match(n_true: int, n_predicted: int, rows: np.ndarray, cols: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """IoUs of the matched pairs: most matches, then largest total IoU, one to one."""
    if iou.size == 0:
        return iou
    graph = sparse.coo_matrix((np.ones(iou.size), (rows, n_true + cols)), shape=(n_true + n_predicted,) * 2)
    _, component = connected_components(graph, directed=False)
    group = component[rows]
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    sizes = np.diff(np.r_[starts, order.size])
    matched = [iou[order[starts[sizes == 1]]]]  # one candidate pair: it matches
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        pairs = order[start : start + size]
        r, r_index = np.unique(rows[pairs], return_inverse=True)
        c, c_index = np.unique(cols[pairs], return_inverse=True)
        weight = np.zeros((r.size, c.size))
        # a count term worth more than any total IoU: the most matches first, then the IoU
        weight[r_index, c_index] = min(r.size, c.size) + 1 + iou[pairs]
        chosen_r, chosen_c = linear_sum_assignment(weight, maximize=True)
        chosen = weight[chosen_r, chosen_c] > 0
        values = np.zeros_like(weight)
        values[r_index, c_index] = iou[pairs]
        matched.append(values[chosen_r[chosen], chosen_c[chosen]])
    return np.concatenate(matched)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else np.nan


def _object_scores(predicted: np.ndarray, truth: np.ndarray, thresholds: list[float]) -> pd.DataFrame:
    n_true, n_predicted, rows, cols, iou = _overlap_ious(predicted, truth)
    table = []
    for threshold in thresholds:
        candidate = iou >= threshold - 1e-12  # 0.5 computed as 0.4999...: still a match
        matched = _match(n_true, n_predicted, rows[candidate], cols[candidate], iou[candidate])
        tp = int(matched.size)
        fp, fn = n_predicted - tp, n_true - tp
        table.append(
            (
                threshold,
                tp,
                fp,
                fn,
                _ratio(tp, tp + fp),
                _ratio(tp, tp + fn),
                _ratio(2 * tp, 2 * tp + fp + fn),
                float(matched.mean()) if tp else np.nan,
            )
        )
    return pd.DataFrame(table, columns=list(OBJECT_COLUMNS))


def true_objects(classes: np.ndarray) -> np.ndarray:
    """Objects of a class-label image (a semantic truth): each connected region of each class
    its own label (8-connected in 2-D, 26 in 3-D), for :func:`score_objects`."""
    from skimage.measure import label

    classes = _labels(classes, "true")
    objects = np.zeros(classes.shape, np.int32)
    for class_id in np.unique(classes):
        if class_id == 0:
            continue
        regions = label(classes == class_id, connectivity=classes.ndim)
        objects[regions > 0] = regions[regions > 0] + objects.max()
    return objects
