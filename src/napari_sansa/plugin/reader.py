"""napari's reader for reference sets: *File › Open*, *Open Folder*, drag and drop, ``viewer.open``.

Opening a set's folder (or its ``references.json``) brings back each reference's image and its
prompts as layers named and linked as the widget names them (``<image> prompts``), so the SANSA
widget sees them as references: press Run. The layers are built exactly as the widget's *Load
references…* builds them (:func:`.exports.recreate_set`), on a stand-in viewer, then handed to
napari as layer data.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from napari_sansa.files.reference_sets import FORMAT, file_format, read_reference_set
from napari_sansa.plugin.exports import recreate_set
from napari_sansa.plugin.viewer import layers as L


class _Layers:
    """A viewer stand-in: ``add_image``/``add_labels``/... make layers and keep them in order."""

    def __init__(self) -> None:
        self.layers: list = []

    def _add(self, kind: str, data=None, **kwargs):
        import napari.layers

        layer = getattr(napari.layers, kind)(data, **kwargs)
        self.layers.append(layer)
        return layer

    def add_image(self, data, **kwargs):
        return self._add("Image", data, **kwargs)

    def add_labels(self, data, **kwargs):
        return self._add("Labels", data, **kwargs)

    def add_points(self, data=None, **kwargs):
        return self._add("Points", data, **kwargs)

    def add_shapes(self, data=None, **kwargs):
        return self._add("Shapes", data, **kwargs)


def read_reference_set_layers(path: str | os.PathLike) -> list[tuple]:
    """A reference set's images and prompt layers as napari layer data."""
    from napari_sansa.engine.errors import SansaError

    try:
        loaded = read_reference_set(path)
    except SansaError as exc:  # napari shows a reader's error as a notification: one line
        raise ValueError(str(exc)) from None
    stand_in = _Layers()

    def add_prompt_layer(kind: str, image_name: str):
        image = next(layer for layer in L.image_layers(stand_in) if layer.name == image_name)
        return L.add_prompt_layer(stand_in, image, kind)

    recreate_set(stand_in, loaded, add_prompt_layer)
    return [layer.as_layer_data_tuple() for layer in stand_in.layers]


def get_reader(path: str | list[str]) -> Callable[[str], list[tuple]] | None:
    """The reader for a reference set's folder or ``references.json``; None for anything else."""
    paths = path if isinstance(path, list) else [path]
    if len(paths) != 1 or file_format(paths[0]) != FORMAT:
        return None
    return lambda p: read_reference_set_layers(p[0] if isinstance(p, list) else p)
