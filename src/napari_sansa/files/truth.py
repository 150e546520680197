"""Ground-truth label files for targets: where each one is, and what it says.

A target ``plate/a01.tif`` has its truth in the truth folder as ``a01.<ext>`` or
``a01_labels|_mask|_masks.<ext>`` (any image suffix). The values are read with the same
rules as reference masks (``--mask-classes``): one class per value, or objects of one class.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.masks import MaskMode
from napari_sansa.engine.metrics.truth import Truth, truth_from_labels
from napari_sansa.files.images import IMAGE_SUFFIXES, read_image
from napari_sansa.files.outputs import existing

TRUTH_ENDINGS = ("", "_labels", "_mask", "_masks")


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
    """A truth label file as classes and objects (:func:`truth_from_labels`)."""
    return truth_from_labels(read_image(path), mode, source=f"Truth {path}")
