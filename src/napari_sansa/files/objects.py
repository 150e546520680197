"""Writing objects: ``<name>_objects.tif`` (instance labels) and ``<name>_objects.csv`` (their table).

Both are written atomically, and neither is written when either exists unless overwriting is
allowed, so a folder never holds labels from one run and a table from another.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from napari_sansa.files.images import atomic_write, write_labels
from napari_sansa.files.outputs import objects_paths
from napari_sansa.files.overwrite import refuse_existing


def write_objects(
    folder: str | os.PathLike, name: str, labels: np.ndarray, table: pd.DataFrame, *, overwrite: bool = False
) -> list[Path]:
    """Write an image's (or a stack's) instance labels as TIFF and their table as CSV."""
    return write_objects_to(objects_paths(folder, name), labels, table, overwrite=overwrite)


def write_objects_to(
    paths: tuple[Path, Path], labels: np.ndarray, table: pd.DataFrame, *, overwrite: bool = False
) -> list[Path]:
    """Instance labels and their table to ``paths`` (``(tif, csv)``), labels first, each atomically."""
    tif, csv = paths
    refuse_existing([tif, csv], "objects files", overwrite=overwrite)
    write_labels(tif, np.asarray(labels, np.int32), overwrite=True)
    write_object_table(csv, table)
    return [tif, csv]


def write_object_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """An object table as CSV, written atomically."""
    atomic_write(Path(path), lambda tmp: table.to_csv(tmp, index=False))
    return Path(path)
