"""What :meth:`Prediction.instances` does: a prediction's classes split into objects, measured.

"watershed" splits each class's mask with :func:`~.instances.split_instances` (no model
needed); "sam" prompts SAM2's decoder from those seeds on the target's cached features
(:mod:`.sam_objects`). Object ids are unique across classes: class 1's objects come first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE, split_instances

if TYPE_CHECKING:
    import pandas as pd

    from napari_sansa.engine.model import Prediction

METHODS = ("watershed", "sam")


class Objects(NamedTuple):
    """Instance labels ``(H, W)`` int32 (0 = background) and their table, one row per object."""

    labels: np.ndarray
    table: pd.DataFrame


def _watershed(prediction: Prediction, min_size: int) -> tuple[np.ndarray, dict[int, int], dict[int, float]]:
    """Watershed objects of every class; each scored by its pixels' mean class probability."""
    from scipy import ndimage
    from scipy.special import expit

    labels = np.asarray(prediction.labels)
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
        logits = prediction.logits.get(class_id)
        if logits is not None:
            probability = expit(np.asarray(logits, np.float64))
            means = ndimage.mean(probability, split, ids)
        else:
            means = np.full(n, prediction.scores.get(class_id, np.nan))
        for i, mean in zip(ids, means):
            classes[offset + int(i)] = class_id
            scores[offset + int(i)] = float(mean)
    return out, classes, scores


def _sam(prediction: Prediction, min_size: int) -> tuple[np.ndarray, dict[int, int], dict[int, float]]:
    import torch

    from napari_sansa.engine.objects.sam import sam_instances

    model, target = prediction._model, prediction._target
    if prediction.tiles > 1:
        raise SansaError(
            f"Method 'sam' does not yet work on an image segmented in {prediction.tiles} tiles; "
            "use method 'watershed'."
        )
    if model is None or target is None:
        raise SansaError(
            "Method 'sam' needs the model and the image: use a Prediction from Sansa.propagate or "
            "Sansa.segment, or method 'watershed'."
        )
    labels = np.asarray(prediction.labels)
    seeds = {int(c): split_instances(labels == c, min_size=min_size) for c in np.unique(labels) if c != 0}
    with model._lock:
        feats = model._features(target)  # from the cache: no encoder pass while it holds them
        with torch.inference_mode():
            return sam_instances(model.sam, feats, labels, seeds, model.image_size, min_size)


def prediction_objects(
    prediction: Prediction,
    method: str = "watershed",
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    class_names: Mapping[int, str] | None = None,
) -> Objects:
    """Instance labels and object table of a prediction (see :meth:`Prediction.instances`)."""
    from napari_sansa.engine.objects.table import object_table

    if method not in METHODS:
        raise SansaError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if not isinstance(min_size, (int, np.integer)) or isinstance(min_size, bool) or min_size < 0:
        raise SansaError(f"min_size must be a whole number of pixels, 0 or more; got {min_size!r}.")
    find = _sam if method == "sam" else _watershed
    instances, classes, scores = find(prediction, int(min_size))
    target = prediction._target
    image = target.image if target is not None else None
    table = object_table(instances, classes, image=image, scores=scores, class_names=class_names)
    return Objects(instances, table)
