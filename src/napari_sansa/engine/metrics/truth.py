"""A ground-truth label image read as classes and objects, with the rules of reference masks."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from napari_sansa.engine.inputs.masks import MaskMode, classes_from_mask
from napari_sansa.engine.metrics.scores import true_objects


class Truth(NamedTuple):
    """A truth as read: class labels, object labels (each object its own id), one line saying
    how its values were read, and that reading ("each", "one", or "empty")."""

    classes: np.ndarray
    objects: np.ndarray
    message: str
    mode: str


def truth_from_labels(values: np.ndarray, mode: MaskMode = "auto", *, source: str = "Truth") -> Truth:
    """Classes and objects of a truth label image; one without objects is a truth too.

    Read as reference masks are (:func:`classes_from_mask`): with one class per value, each
    connected region of a class is an object; with objects of one class (an instance mask),
    each value is an object. A stack (Z, Y, X) is read as one label image; a grey label image
    saved as RGB(A) by its first channel.
    """
    raw = np.asarray(values)
    rgb = raw.ndim == 3 and raw.shape[-1] in (3, 4)
    values = raw[..., 0] if rgb else raw
    flat = values.reshape(-1, values.shape[-1]) if values.ndim == 3 else values
    if not np.any(flat):
        empty = np.zeros(values.shape, np.int32)
        return Truth(empty, empty, f"{source}: no objects", "empty")
    decided = classes_from_mask(raw if rgb else flat, mode, source=source)  # refuses colour images
    classes = np.zeros(flat.shape, np.int32)
    for class_id, mask in sorted(decided.classes.items()):
        classes[mask] = class_id
    classes = classes.reshape(values.shape)
    if decided.mode == "one":
        return Truth(classes, values, decided.message, "one")
    return Truth(classes, true_objects(classes), decided.message, "each")
