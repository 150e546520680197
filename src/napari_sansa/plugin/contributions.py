"""Sample data and the PNG labels writer contributed through the napari manifest."""

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
    """Save a 2D Labels layer as a PNG (8 or 16-bit), which napari's own labels writer cannot.

    Only ``.png`` comes here (napari writes ``.tif`` itself); labels a PNG cannot hold (a
    stack, ids above 65535) are refused with the reason, never written as another format.
    """
    from napari_sansa.engine.errors import SansaError
    from napari_sansa.files.images import write_labels

    labels = np.asarray(data)
    top = int(labels.max(initial=0))
    if labels.ndim != 2 or labels.dtype.kind not in "iub" or int(labels.min(initial=0)) < 0 or top > 65535:
        raise SansaError(
            f"A PNG holds 2D labels with ids 0 to 65535; these are {labels.ndim}D "
            f"({labels.dtype}, up to {top}): save them as .tif."
        )
    png = labels.astype(np.uint8 if top <= 255 else np.uint16)
    return [str(write_labels(Path(path), png, overwrite=True))]
