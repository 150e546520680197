"""Sample data and the labels writer contributed through the napari manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_sansa.samples import cells, drifting_cells


def sample_cells() -> list[tuple]:
    """Six images of cells, one layer each: annotate one, label the others."""
    return [(image, {"name": f"cells {i}"}, "image") for i, (image, _) in enumerate(cells(6))]


def sample_cells_stack() -> list[tuple]:
    """Eight planes of cells as one ZYX stack (grayscale, 16-bit)."""
    planes = [image[..., 2].astype(np.uint16) * 64 for image, _ in cells(8, seed=5)]
    return [(np.stack(planes), {"name": "cells stack"}, "image")]


def sample_drifting_cells() -> list[tuple]:
    """Twelve planes of the same cells drifting (a time-lapse or volume): try "through the stack"."""
    return [(drifting_cells(), {"name": "drifting cells"}, "image")]


def write_labels_layer(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Save a Labels layer as TIFF (any size and dtype) or PNG (2D, 8/16-bit)."""
    from napari_sansa.files.images import write_labels

    target = Path(path)
    if target.suffix.lower() == ".png" and not (
        np.asarray(data).ndim == 2 and np.asarray(data).dtype in (np.uint8, np.uint16)
    ):
        target = target.with_suffix(".tif")
    return [str(write_labels(target, np.asarray(data), overwrite=True))]
