"""Objects in napari: one Labels layer per image, ``<image> [SANSA objects]``, with its table.

Each object has its own id in the layer (planes of a stack continue the numbering), and the
layer's ``features`` hold the object table (an ``index`` column maps label values to rows, so
napari shows an object's row on hover). The tables are kept per plane here and given to the
layer in one go (:meth:`ObjectLayers.sync`): setting ``features`` for every plane of a long
stack would cost O(n²).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from napari_sansa.plugin.core.session import ImageSource, TargetKey
from napari_sansa.plugin.viewer import layers as L

OBJECTS_OF = L.OBJECTS_OF
OBJECTS_SUFFIX = " [SANSA objects]"


def objects_layer(viewer, image_id: str):
    return next((lyr for lyr in viewer.layers if lyr.metadata.get(OBJECTS_OF) == image_id), None)


def plane_columns(lead: int) -> list[str]:
    """The table's columns that say which plane of a stack an object is on."""
    return [] if lead == 0 else ["plane"] if lead == 1 else [f"plane_{a}" for a in range(lead)]


class ObjectLayers:
    """The objects layers of a viewer and their tables, plane by plane."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self._tables: dict[str, dict[tuple[int, ...], pd.DataFrame]] = {}
        self._next_id: dict[str, int] = {}
        self._stale: set[str] = set()

    def write(self, source: ImageSource, key: TargetKey, labels: np.ndarray, table: pd.DataFrame):
        """Put one plane's objects into the image's layer (ids continue after the layer's last)."""
        layer = objects_layer(self.viewer, source.image_id)
        if layer is None:  # new, or removed by the user: start afresh
            layer = self._add(source)
        offset = self._next_id.get(source.image_id, 0)
        plane = np.asarray(labels, np.int32)
        layer.data[key.plane if key.plane else ...] = np.where(plane > 0, plane + offset, 0)
        rows = table.copy()
        rows["label"] = rows["label"] + offset
        for column, value in zip(plane_columns(source.lead), key.plane):
            rows.insert(1, column, value)
        rows.insert(0, "index", rows["label"])
        self._tables[source.image_id][key.plane] = rows
        self._next_id[source.image_id] = offset + int(plane.max(initial=0))
        self._stale.add(source.image_id)
        if L.shows_plane(self.viewer, layer, key.plane):
            layer.refresh()
        return layer

    def to_link(self, image_ids) -> dict[str, tuple[np.ndarray, dict]]:
        """The stacks' objects and tables to link (:mod:`~.core.linking`), taken now (copies),
        by image id; images without a stack of objects are left out."""
        out = {}
        for image_id in image_ids:
            layer = objects_layer(self.viewer, image_id)
            if layer is not None and layer.ndim == 3 and image_id in self._tables:
                out[image_id] = (np.array(layer.data), dict(self._tables[image_id]))
        return out

    def set_linked(self, image_id: str, stack: np.ndarray, tables: dict) -> None:
        """Give a stack's objects layer and tables their linked ids (one per object through the planes)."""
        layer = objects_layer(self.viewer, image_id)
        if layer is None or image_id not in self._tables:
            return  # closed meanwhile
        self._tables[image_id] = tables
        layer.data = stack
        self._next_id[image_id] = int(stack.max(initial=0))
        self._stale.add(image_id)

    def _add(self, source: ImageSource):
        image = L.find_image(self.viewer, source.image_id)
        layer = self.viewer.add_labels(
            np.zeros(source.plane_shape + source.hw, np.int32),
            name=source.name + OBJECTS_SUFFIX,
            metadata={OBJECTS_OF: source.image_id},
            scale=image.scale,
            translate=image.translate,
        )
        self._tables[source.image_id] = {}
        self._next_id[source.image_id] = 0
        return layer

    def sync(self) -> None:
        """Give each changed layer its whole table as ``features``."""
        for image_id in sorted(self._stale):
            layer = objects_layer(self.viewer, image_id)
            if layer is not None:
                layer.features = self.table(image_id)
        self._stale.clear()

    def table(self, image_id: str) -> pd.DataFrame:
        """All objects of an image, planes in order."""
        parts = [self._tables[image_id][plane] for plane in sorted(self._tables.get(image_id, {}))]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"index": [], "label": []})

    def live(self) -> dict[str, object]:
        """Image id -> objects layer, for the layers still in the viewer."""
        found = {i: objects_layer(self.viewer, i) for i in self._tables}
        return {i: layer for i, layer in found.items() if layer is not None}

    def export_later(self, folder: str | os.PathLike, overwrite: bool = False) -> Callable[[], list[Path]]:
        """Check now that no objects file would be overwritten and take the objects (a copy:
        the user may go on editing); the returned call writes them (in a worker)."""
        from napari_sansa.files.objects import write_objects
        from napari_sansa.files.outputs import objects_paths, safe_name
        from napari_sansa.files.overwrite import refuse_existing

        self.sync()
        images = {L.layer_id(lyr): lyr.name for lyr in L.image_layers(self.viewer)}
        planned = {i: safe_name(images[i]) for i in self.live() if i in images}
        paths = [p for name in planned.values() for p in objects_paths(folder, name)]
        refuse_existing(paths, "objects files", overwrite=overwrite)

        taken = {name: self.objects(image_id) for image_id, name in planned.items()}
        taken = {name: (np.array(labels), table) for name, (labels, table) in taken.items()}

        def write() -> list[Path]:
            written = []
            for name, (labels, table) in taken.items():
                written += write_objects(folder, name, labels, table, overwrite=True)
            return written

        return write

    def objects(self, image_id: str) -> tuple[np.ndarray, pd.DataFrame]:
        """An image's instance labels and their table (one row per object)."""
        table = self.table(image_id).drop(columns="index")
        return np.asarray(objects_layer(self.viewer, image_id).data), table
