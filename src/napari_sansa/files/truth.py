"""Ground-truth label files for targets: where each one is, and what it says.

A target ``plate/a01.tif`` has its truth in the truth folder as ``a01.<ext>`` or
``a01_labels|_mask|_masks.<ext>`` (any image suffix). The values are read with the same
rules as reference masks (``--mask-classes``): one class per value, or objects of one class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.evaluation.scores import true_objects
from napari_sansa.engine.inputs.masks import MaskMode, classes_from_mask
from napari_sansa.files.images import IMAGE_SUFFIXES, read_image
from napari_sansa.files.outputs import existing

TRUTH_ENDINGS = ("", "_labels", "_mask", "_masks")


class Truth(NamedTuple):
    """A truth file read: class labels, object labels (each object its own id), and one line
    saying how its values were read."""

    classes: np.ndarray
    objects: np.ndarray
    message: str
    mode: str  # "each" (a class per value), "one" (objects of one class) or "empty"


class TruthFolder:
    """The truth files of a folder, listed once (a stat per target is slow on network disks)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SansaError(f"The truth folder {self.folder} does not exist.")
        self._names = existing(self.folder)

    def find(self, target: str | os.PathLike) -> Path | None:
        """The truth file of ``target``, or None; never the target itself."""
        target = Path(target)
        for ending in TRUTH_ENDINGS:
            for suffix in IMAGE_SUFFIXES:
                for name in (f"{target.stem}{ending}{suffix}", f"{target.stem}{ending}{suffix.upper()}"):
                    path = self.folder / name
                    if name in self._names and path.resolve() != target.resolve():
                        return path
        return None


def read_truth(path: str | os.PathLike, mode: MaskMode = "auto") -> Truth:
    """A truth label file as classes and objects; an empty file is a truth without objects.

    Read as reference masks are (:func:`classes_from_mask`): with one class per value, each
    connected region of a class is an object; with objects of one class (an instance mask),
    each value is an object. A stack (Z, Y, X) is read as one label image.
    """
    raw = read_image(path)
    rgb = raw.ndim == 3 and raw.shape[-1] in (3, 4)  # a grey label image saved as RGB(A)
    values = raw[..., 0] if rgb else raw
    flat = values.reshape(-1, values.shape[-1]) if values.ndim == 3 else values
    if not np.any(flat):
        empty = np.zeros(values.shape, np.int32)
        return Truth(empty, empty, f"Truth {path}: no objects", "empty")
    decided = classes_from_mask(raw if rgb else flat, mode, source=f"Truth {path}")
    classes = np.zeros(flat.shape, np.int32)
    for class_id, mask in sorted(decided.classes.items()):
        classes[mask] = class_id
    classes = classes.reshape(values.shape)
    if decided.mode == "one":
        return Truth(classes, values, decided.message, "one")
    return Truth(classes, true_objects(classes), decided.message, "each")
