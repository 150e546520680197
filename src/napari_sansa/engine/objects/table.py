"""The object table: one row per object, with its class, size, place, intensity and score.

Measured with scikit-image's ``regionprops_table``; pixel units, (row, column) as in napari.
Bounding boxes are half-open: ``bbox_row1`` and ``bbox_col1`` are one past the last pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from napari_sansa.engine.inputs.images import Image, as_image, channels_last

BASE_COLUMNS = (
    "label",
    "class",
    "class_name",
    "area",
    "centroid_row",
    "centroid_col",
    "bbox_row0",
    "bbox_col0",
    "bbox_row1",
    "bbox_col1",
)
_RENAME = {
    "centroid-0": "centroid_row",
    "centroid-1": "centroid_col",
    "bbox-0": "bbox_row0",
    "bbox-1": "bbox_col0",
    "bbox-2": "bbox_row1",
    "bbox-3": "bbox_col1",
}


class Objects(NamedTuple):
    """Instance labels ``(H, W)`` int32 (0 = background) and their table, one row per object
    (here, torch-free, so that objects made on a SANSA server reach a client without torch)."""

    labels: np.ndarray
    table: pd.DataFrame


def _intensity(image: Image | np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if image is None:
        return None
    data = channels_last(as_image(image))
    if data.shape[:2] != tuple(shape):
        raise ValueError(f"the image is {data.shape[:2]}, the labels {shape}")
    data = data.astype(np.float64, copy=False)
    return data[..., 0] if data.shape[-1] == 1 else data


def object_table(
    instances: np.ndarray,
    classes: Mapping[int, int],
    *,
    image: Image | np.ndarray | None = None,
    scores: Mapping[int, float] | None = None,
    class_names: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """One row per object of ``instances`` (sorted by label).

    ``classes`` maps each label to its class id, ``scores`` each label to its confidence,
    ``class_names`` class ids to names (empty where unknown). With ``image``, the mean
    intensity of its pixels under each object: ``mean_intensity``, or ``mean_intensity_<c>``
    for each channel of a multichannel image.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(instances)
    intensity = _intensity(image, labels.shape)
    properties = ["label", "area", "centroid", "bbox"] + (["intensity_mean"] if intensity is not None else [])
    measured = pd.DataFrame(regionprops_table(labels, intensity_image=intensity, properties=properties))
    measured = measured.rename(columns=_RENAME)
    measured["area"] = measured["area"].astype(np.int64)  # a pixel count (scikit-image gives floats)
    if intensity is not None:
        if intensity.ndim == 2:
            measured = measured.rename(columns={"intensity_mean": "mean_intensity"})
            if "mean_intensity" not in measured:
                measured["mean_intensity"] = pd.Series(dtype=float)
        else:
            names = {f"intensity_mean-{c}": f"mean_intensity_{c}" for c in range(intensity.shape[-1])}
            measured = measured.rename(columns=names)
            for name in names.values():
                if name not in measured:
                    measured[name] = pd.Series(dtype=float)
    ids = measured["label"].to_numpy(dtype=np.int64) if len(measured) else np.zeros(0, np.int64)
    class_ids = np.array([int(classes[i]) for i in ids], dtype=np.int64)
    names = class_names or {}
    table = pd.DataFrame(
        {
            "label": ids,
            "class": class_ids,
            "class_name": pd.Series([str(names.get(c, "")) for c in class_ids], dtype=object),
        }
    )
    for column in measured.columns:
        if column != "label":
            table[column] = measured[column].to_numpy()
    for column in BASE_COLUMNS:
        if column not in table:
            table[column] = pd.Series(dtype=np.int64 if column.startswith(("bbox", "area")) else float)
    table["score"] = np.array([float(scores.get(i, np.nan)) if scores else np.nan for i in ids], float)
    others = [c for c in table.columns if c not in BASE_COLUMNS and c != "score"]
    return table[list(BASE_COLUMNS) + others + ["score"]].reset_index(drop=True)
