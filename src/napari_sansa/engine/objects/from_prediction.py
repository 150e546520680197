"""What :meth:`Prediction.instances` does: a prediction's classes split into objects, measured.

"watershed" splits each class's mask with :func:`~.split.split_instances` (no model
needed); "sam" prompts SAM2's decoder from those seeds on the target's cached features
(:mod:`.sam`). Object ids are unique across classes: class 1's objects come first.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.objects import OBJECT_METHODS
from napari_sansa.engine.objects.sam import sam_instances
from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE, split_instances
from napari_sansa.engine.objects.table import Objects, object_table
from napari_sansa.engine.runtime.runtime import PreparedImage, Runtime

Found = tuple[np.ndarray, dict[int, int], dict[int, float]]  # objects, label -> class, label -> score


def _watershed(
    labels: np.ndarray, logits: Mapping[int, np.ndarray], class_scores: Mapping[int, float], min_size: int
) -> Found:
    """Watershed objects of every class; each scored by its pixels' mean class probability."""
    from scipy import ndimage
    from scipy.special import expit

    out = np.zeros(labels.shape, np.int32)
    classes: dict[int, int] = {}
    scores: dict[int, float] = {}
    for class_id in sorted(int(c) for c in np.unique(labels) if c != 0):
        split = split_instances(labels == class_id, min_size=min_size)
        n = int(split.max())
        if n == 0:
            continue
        offset = len(classes)
        out[split > 0] = split[split > 0] + offset
        ids = np.arange(1, n + 1)
        class_logits = logits.get(class_id)
        if class_logits is not None:
            probability = expit(np.asarray(class_logits, np.float64))
            means = ndimage.mean(probability, split, ids)
        else:
            means = np.full(n, class_scores.get(class_id, np.nan))
        for i, mean in zip(ids, means):
            classes[offset + int(i)] = class_id
            scores[offset + int(i)] = float(mean)
    return out, classes, scores


def _sam(
    labels: np.ndarray, min_size: int, target: PreparedImage | None, runtime: Runtime | None, tiles: int
) -> Found:
    if tiles > 1:
        raise SansaError(
            f"Method 'sam' does not yet work on an image segmented in {tiles} tiles; use method 'watershed'."
        )
    if runtime is None or target is None:
        raise SansaError(
            "Method 'sam' needs the model and the image: use a Prediction from Sansa.propagate or "
            "Sansa.segment while that model exists (or pass it: instances('sam', model=model)), "
            "or method 'watershed'."
        )
    seeds = {int(c): split_instances(labels == c, min_size=min_size) for c in np.unique(labels) if c != 0}
    with runtime.lock:
        feats = runtime.features(target)  # from the cache: no encoder pass while it holds them
        with torch.inference_mode():
            return sam_instances(runtime.sam, feats, labels, seeds, runtime.image_size, min_size)


def prediction_objects(
    labels: np.ndarray,
    logits: Mapping[int, np.ndarray],
    scores: Mapping[int, float],
    method: str = "watershed",
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    class_names: Mapping[int, str] | None = None,
    target: PreparedImage | None = None,
    runtime: Runtime | None = None,
    tiles: int = 1,
) -> Objects:
    """Instance labels and object table of a prediction's ``labels``, ``logits`` and class
    ``scores`` (see :meth:`Prediction.instances`); ``target`` gives the intensities, and with
    ``runtime`` its features for method "sam"."""
    if method not in OBJECT_METHODS:
        raise SansaError(f"Unknown method {method!r}; choose one of {', '.join(OBJECT_METHODS)}.")
    if not isinstance(min_size, (int, np.integer)) or isinstance(min_size, bool) or min_size < 0:
        raise SansaError(f"min_size must be a whole number of pixels, 0 or more; got {min_size!r}.")
    labels = np.asarray(labels)
    if method == "sam":
        instances, classes, object_scores = _sam(labels, int(min_size), target, runtime, tiles)
    else:
        instances, classes, object_scores = _watershed(labels, logits, scores, int(min_size))
    image = target.image if target is not None else None
    table = object_table(instances, classes, image=image, scores=object_scores, class_names=class_names)
    return Objects(instances, table)
