"""The live preview's layers: which target the user looks at, and its ``[SANSA preview]`` layer.

A preview layer has its image's planes and size (so it lies over the image in every view) and
holds the previewed plane; it is a result, never a reference, and a Run's result replaces it.
"""

from __future__ import annotations

import numpy as np

from napari_sansa.plugin.core.session import ImageSource, TargetKey
from napari_sansa.plugin.viewer import layers as L

PREVIEW_SUFFIX = " [SANSA preview]"


def current_plane(viewer, layer) -> tuple[int, ...]:
    """The plane of a layer the viewer shows (``()`` for a 2D layer)."""
    lead = layer.ndim - 2
    if lead <= 0:
        return ()
    data = np.asarray(layer.world_to_data(viewer.dims.point))[:lead]
    top = np.asarray(layer.data.shape[:lead] if not layer.multiscale else layer.data[0].shape[:lead]) - 1
    return tuple(int(v) for v in np.clip(np.round(data), 0, top))


def looked_at(viewer, targets: set[TargetKey]) -> TargetKey | None:
    """The target the user looks at: the current plane of the top visible image that is a target."""
    for layer in reversed(L.image_layers(viewer)):
        if layer.visible:
            key = TargetKey(L.layer_id(layer), current_plane(viewer, layer))
            if key in targets:
                return key
    return None


def preview_layer(viewer, image_id: str):
    return next((layer for layer in viewer.layers if layer.metadata.get(L.PREVIEW_OF) == image_id), None)


def show_preview(viewer, source: ImageSource, key: TargetKey, labels: np.ndarray, class_names=None):
    """Write a previewed plane into its image's preview layer (added the first time, above the
    image, without taking the selection from the layer being drawn on)."""
    layer = preview_layer(viewer, source.image_id)
    shape = source.plane_shape + source.hw
    if layer is None or layer.data.shape != shape or not np.can_cast(labels.dtype, layer.data.dtype):
        if layer is not None:
            viewer.layers.remove(layer)
        image = L.find_image(viewer, source.image_id)
        active = viewer.layers.selection.active
        layer = viewer.add_labels(
            np.zeros(shape, labels.dtype),
            name=source.name + PREVIEW_SUFFIX,
            metadata={L.PREVIEW_OF: source.image_id},
            opacity=0.5,
            scale=image.scale,
            translate=image.translate,
        )
        if active is not None and active in viewer.layers:
            viewer.layers.selection.active = active
    if class_names:
        L.name_classes(layer, class_names)
    data = layer.data
    if key.plane:
        data[...] = 0  # one plane is previewed at a time
        data[key.plane] = labels
    else:
        data[...] = labels
    layer.refresh()
    return layer


def remove_preview(viewer, image_id: str) -> None:
    """A run's result replaces the image's preview."""
    layer = preview_layer(viewer, image_id)
    if layer is not None:
        viewer.layers.remove(layer)
