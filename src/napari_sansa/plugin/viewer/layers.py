"""The napari side of the plugin: which layers are images, prompts and results, tied by ids.

Prompt and result layers remember their image by a stable id in ``layer.metadata``, so that
renaming a layer never breaks the tie.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd

from napari_sansa.plugin.core.session import ImageSource
from napari_sansa.plugin.viewer.prompt_layers import (
    CLASS,
    NEGATIVE,
    POSITIVE,
    SIGN,
    PlanePrompts,
    labels_prompts,
    merge,
    points_prompts,
    shapes_prompts,
)

ID, PROMPTS_FOR, RESULT_OF = "sansa_id", "sansa_prompts_for", "sansa_result_of"
OBJECTS_OF = "sansa_objects_of"  # an objects layer (see objects_layers)
PREVIEW_OF = "sansa_preview_of"  # a live preview layer (see preview_layers)
RESULT_SUFFIX = " [SANSA]"
POINT_COLORS = {POSITIVE: "lime", NEGATIVE: "red"}


def is_result(layer) -> bool:
    """Whether SANSA made this layer as a result (classes, objects or a live preview)."""
    return any(tag in layer.metadata for tag in (RESULT_OF, OBJECTS_OF, PREVIEW_OF))


def layer_id(layer) -> str:
    """A layer's stable id, given to it on first use."""
    if ID not in layer.metadata:
        layer.metadata[ID] = uuid.uuid4().hex
    return layer.metadata[ID]


def _plane_axes(layer) -> int:
    return layer.ndim - 2


def image_layers(viewer) -> list:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def image_source(layer) -> ImageSource:
    """Snapshot of an image layer: its (possibly lazy) data and display settings."""
    levels = tuple(layer.data) if layer.multiscale else ()
    data = levels[0] if levels else layer.data
    limits = tuple(float(v) for v in layer.contrast_limits) if layer.contrast_limits is not None else None
    pixel = float(np.mean(np.abs(layer.scale[-2:])))
    lead = _plane_axes(layer)
    return ImageSource(layer_id(layer), layer.name, data, lead, bool(layer.rgb), limits, levels, pixel)


def to_image_coords(coords: np.ndarray, layer, image) -> np.ndarray:
    """A layer's data coordinates in an image's data coordinates (through their scale and translate)."""
    coords = np.asarray(coords, dtype=np.float64)
    if tuple(layer.scale) == tuple(image.scale) and tuple(layer.translate) == tuple(image.translate):
        return coords
    world = coords * np.asarray(layer.scale) + np.asarray(layer.translate)
    return (world - np.asarray(image.translate)) / np.asarray(image.scale)


def find_image(viewer, image_id: str):
    return next((layer for layer in image_layers(viewer) if layer.metadata.get(ID) == image_id), None)


def prompt_layers(viewer, image_id: str) -> list:
    """Layers made with the widget's button for an image (see :mod:`.reference_layers` for all)."""
    return [layer for layer in viewer.layers if layer.metadata.get(PROMPTS_FOR) == image_id]


def result_layer(viewer, image_id: str):
    return next((layer for layer in viewer.layers if layer.metadata.get(RESULT_OF) == image_id), None)


def prompts_of(
    viewer, source: ImageSource, annotating: list, default_class: int = 1, modes: dict[int, str] | None = None
) -> PlanePrompts:
    """All prompts the ``annotating`` layers hold for an image, read from copies of their data.

    ``modes`` says how each Labels layer (by ``id``) is read: ``"each"`` value a class (the
    default, and always for the widget's own prompt layers) or ``"one"`` class (an instance mask).
    """
    from napari.layers import Labels, Points, Shapes

    image = find_image(viewer, source.image_id)
    parts = []
    for layer in annotating:
        if isinstance(layer, Labels):
            mode = (modes or {}).get(id(layer), "each")
            parts.append(labels_prompts(layer.data, source.lead, mode, default_class))
        elif isinstance(layer, Points) and len(layer.data):
            coords = to_image_coords(np.array(layer.data), layer, image)
            parts.append(points_prompts(coords, layer.features.copy(), source.lead, default_class))
        elif isinstance(layer, Shapes) and layer.nshapes:
            data = [to_image_coords(np.array(d), layer, image) for d in layer.data]
            parts.append(
                shapes_prompts(
                    data, list(layer.shape_type), layer.features.copy(), source.lead, source.hw, default_class
                )
            )
    return merge(*parts)


def placement(image_layer) -> dict:
    """Where a layer over an image goes: the image's scale and translate."""
    return {"scale": image_layer.scale, "translate": image_layer.translate}


def prompt_layer_data(
    kind: str, image_id: str, image_name: str, shape: tuple[int, ...], class_id: int = 1, **placement
) -> tuple[object, dict, str]:
    """An empty prompt layer (``"labels"``, ``"points"`` or ``"shapes"``) as napari layer data,
    for an image whose labels have ``shape`` (planes + YX), tied to it by ``image_id``;
    ``placement``: the image's scale and translate."""
    meta = {"name": f"{image_name} prompts", "metadata": {PROMPTS_FOR: image_id}, **placement}
    ndim, side = len(shape), min(shape[-2:])
    if kind == "labels":
        return np.zeros(shape, np.uint8), meta, "labels"
    if kind == "points":
        features = pd.DataFrame(
            {CLASS: pd.Series([], dtype=int), SIGN: pd.Categorical([], categories=[POSITIVE, NEGATIVE])}
        )
        style = {"face_color": SIGN, "face_color_cycle": POINT_COLORS, "size": max(3, side // 40)}
        defaults = {CLASS: class_id, SIGN: POSITIVE}
        meta.update(ndim=ndim, features=features, feature_defaults=defaults, **style)
        return np.empty((0, ndim)), meta, "points"
    if kind == "shapes":
        style = {"edge_width": max(1, side // 150), "edge_color": "yellow", "face_color": "transparent"}
        meta.update(
            ndim=ndim, features={CLASS: np.empty(0, int)}, feature_defaults={CLASS: class_id}, **style
        )
        return None, meta, "shapes"
    raise ValueError(kind)


MODES = {"labels": "paint", "points": "add", "shapes": "add_rectangle"}  # ready to draw


def add_prompt_layer(viewer, image_layer, kind: str, class_id: int = 1):
    """A new Labels, Points or Shapes layer for drawing prompts on an image."""
    source = image_source(image_layer)
    shape = source.plane_shape + source.hw
    data, meta, _ = prompt_layer_data(
        kind, layer_id(image_layer), image_layer.name, shape, class_id, **placement(image_layer)
    )
    layer = getattr(viewer, f"add_{kind}")(data, **meta)
    if kind == "labels":
        layer.selected_label = class_id
    layer.mode = MODES[kind]
    return layer


def toggle_point_sign(layer) -> str:
    """Switch the sign of the next clicks between positive and negative (in select mode: of the selected clicks)."""
    current = str(layer.feature_defaults[SIGN].iloc[0]) if SIGN in layer.feature_defaults else POSITIVE
    new = NEGATIVE if current == POSITIVE else POSITIVE
    layer.feature_defaults = {
        **{k: layer.feature_defaults[k].iloc[0] for k in layer.feature_defaults},
        SIGN: new,
    }
    if str(layer.mode) == "select" and layer.selected_data:
        features = layer.features.copy()
        features.loc[list(layer.selected_data), SIGN] = new
        layer.features = features
        layer.refresh_colors()
    return new


def name_classes(layer, names: dict[int, str]) -> None:
    """Class names on a result layer (napari shows them on hover), kept with earlier names."""
    if not names:
        return
    known = {}
    features = layer.features
    if {"index", "class"} <= set(features.columns):
        known = {int(i): str(n) for i, n in zip(features["index"], features["class"]) if int(i) > 0}
    known.update(names)
    ids = sorted(known)
    layer.features = pd.DataFrame({"index": [0, *ids], "class": ["background", *(known[i] for i in ids)]})


def fits(layer, source: ImageSource, dtype: np.dtype) -> bool:
    """Whether a result layer takes the image's labels as it is: same shape, a wide enough dtype."""
    return (
        layer is not None
        and layer.data.shape == source.plane_shape + source.hw
        and np.can_cast(dtype, layer.data.dtype)
    )


def shows_plane(viewer, layer, plane: tuple[int, ...]) -> bool:
    """Whether the canvas may show this plane of a layer, so that writing it needs a refresh.

    Writing a plane that is not on screen needs none: napari reads the data again when the user
    moves to it, and each refresh costs a full canvas redraw.
    """
    dims = viewer.dims
    if not plane or dims.ndisplay != 2 or tuple(dims.order[-2:]) != (dims.ndim - 2, dims.ndim - 1):
        return True
    current = np.asarray(layer.world_to_data(dims.point))[: len(plane)]
    return bool(np.all(np.abs(current - np.asarray(plane)) < 1))  # napari rounds or floors


def go_to(viewer, layer, plane: tuple[int, ...]) -> None:
    """Select a layer and move the viewer to one of its planes."""
    viewer.layers.selection.active = layer
    offset = viewer.dims.ndim - layer.ndim
    for axis, value in enumerate(plane):
        viewer.dims.set_current_step(offset + axis, value)


def ensure_result_layer(
    viewer, source: ImageSource, dtype: np.dtype, visible: bool = True, tiled: bool = False
):
    """The image's result layer, created empty (all background) the first time.

    ``tiled``: labels of an image segmented in tiles, in a chunked zarr array the engine
    writes tile by tile (napari paints into it like into a NumPy array).
    """
    from napari_sansa.plugin.viewer.large import new_labels, widened

    layer = result_layer(viewer, source.image_id)
    if fits(layer, source, dtype):
        return layer, False
    if layer is not None and layer.data.shape == source.plane_shape + source.hw:
        layer.data = widened(layer.data, dtype)  # more classes: a wider dtype, keeping what was there
        return layer, False
    data = new_labels(source.plane_shape + source.hw, dtype, tiled)
    if layer is not None:  # the image changed shape: start again
        layer.data = data
        return layer, False
    image = find_image(viewer, source.image_id)
    layer = viewer.add_labels(
        data,
        name=source.name + RESULT_SUFFIX,
        metadata={RESULT_OF: source.image_id},
        visible=visible,
        **placement(image),
    )
    return layer, True
