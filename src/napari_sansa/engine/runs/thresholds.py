"""Labels from logits at a threshold: numpy only (no torch), so that a client of a remote model
re-labels at the threshold slider without loading the network's libraries."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from napari_sansa.engine.inputs.prompts import label_dtype


def labels_from_logits(logits: Mapping[int, np.ndarray], threshold: float, dtype=None) -> np.ndarray:
    """Class ids from each class's logits, as a prediction's labels are made: where the highest
    logit is above ``threshold``, its class; elsewhere 0. For re-labelling at another threshold
    without running the model again."""
    class_ids = list(logits)
    stacked = np.stack([np.asarray(logits[c], dtype=np.float32) for c in class_ids])
    best = stacked.argmax(axis=0)
    lookup = np.asarray(class_ids, dtype=dtype or label_dtype(class_ids))
    return np.where(stacked.max(axis=0) > threshold, lookup[best], 0).astype(lookup.dtype)
