"""References as napari layer data tuples (``(data, kwargs, kind)``): their images and prompts.

napari's reader of reference sets and a restored session both hand napari prompt layers
holding a reference's prompts (:func:`reference_prompt_layers`), styled as the widget's *Add
prompt layer* makes them (:func:`~.layers.prompt_layer_data`). Nothing here needs a viewer or
Qt: napari builds the layers from the tuples.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from napari_sansa.engine.inputs.images import Image
from napari_sansa.engine.inputs.prompts import Box, Mask, Points, Prompt, Scribble
from napari_sansa.plugin.viewer.layers import ID, prompt_layer_data
from napari_sansa.plugin.viewer.prompt_layers import CLASS, NEGATIVE, POSITIVE, SIGN, Plane

LayerData = tuple[object, dict, str]


def _items(prompts: Mapping[int, Prompt | Sequence[Prompt]]) -> Iterable[tuple[int, Prompt]]:
    for class_id, items in sorted(prompts.items()):
        for prompt in items if isinstance(items, (list, tuple)) else [items]:
            yield int(class_id), prompt


def _labels_dtype(top: int) -> np.dtype:
    return next(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32) if top <= np.iinfo(t).max)


def _with_plane(plane: Plane, rc) -> np.ndarray:
    rc = np.asarray(rc, float).reshape(-1, 2)
    return np.hstack([np.tile(np.asarray(plane, float), (len(rc), 1)), rc])


def _masks_layer(masks: list, shape: tuple[int, ...], meta: dict) -> LayerData:
    labels = np.zeros(shape, _labels_dtype(max(c for _, c, _ in masks)))
    for plane, class_id, prompt in masks:
        (labels[plane] if plane else labels)[np.asarray(prompt.mask) != 0] = class_id
    return labels, meta, "labels"


def _points_layer(clicks: list, meta: dict) -> LayerData:
    coords, classes, signs = [], [], []
    for plane, class_id, prompt in clicks:
        coords.append(_with_plane(plane, prompt.coords))
        values = prompt.labels if prompt.labels is not None else [1] * len(coords[-1])
        signs += [POSITIVE if v else NEGATIVE for v in values]
        classes += [class_id] * len(coords[-1])
    signs = pd.Categorical(signs, categories=[POSITIVE, NEGATIVE])
    return np.vstack(coords), {**meta, "features": pd.DataFrame({CLASS: classes, SIGN: signs})}, "points"


def _shapes_layer(outlines: list, meta: dict) -> LayerData:
    data, types = [], []
    for plane, _, p in outlines:
        box = isinstance(p, Box)
        corners = [[p.r0, p.c0], [p.r0, p.c1], [p.r1, p.c1], [p.r1, p.c0]] if box else p.path
        data.append(_with_plane(plane, corners))
        types.append("rectangle" if box else "path")
    features = {CLASS: np.asarray([c for _, c, _ in outlines], int)}
    return data, {**meta, "features": features, "shape_type": types}, "shapes"


def reference_prompt_layers(
    image_id: str,
    image_name: str,
    shape: tuple[int, ...],
    planes: Sequence[tuple[Plane, Mapping[int, Prompt | Sequence[Prompt]]]],
    **placement,
) -> list[LayerData]:
    """Prompt layers holding references' prompts, one per kind that occurs (labels, points,
    shapes): ``planes`` pairs planes of the image (labels ``shape``) with their prompts by class.
    Masks are painted with their class id, clicks keep their sign, boxes and scribbles are shapes."""
    items = [(plane, c, p) for plane, prompts in planes for c, p in _items(prompts)]
    out = []
    for kind, types, make in (
        ("labels", Mask, lambda chosen, meta: _masks_layer(chosen, shape, meta)),
        ("points", Points, _points_layer),
        ("shapes", (Box, Scribble), _shapes_layer),
    ):
        chosen = [item for item in items if isinstance(item[2], types)]
        if chosen:
            meta = prompt_layer_data(kind, image_id, image_name, shape, **placement)[1]
            out.append(make(chosen, meta))
    return out


def reference_image_data(image: Image, source: Mapping, index: int) -> LayerData:
    """A reference's own pixels as an image layer, named after where they came from, with a
    fresh stable id so that prompt layers can be tied to it before napari builds it."""
    data = np.asarray(image.data)
    if image.channel_axis is not None:
        data = np.moveaxis(data, image.channel_axis, -1)
    name = source.get("image") or f"reference {index}"
    if source.get("plane"):
        name += f" plane {','.join(map(str, source['plane']))}"
    meta: dict = {"name": name, "metadata": {ID: uuid.uuid4().hex}}
    limits = image.contrast_limits
    if limits is not None and limits[1] > limits[0]:
        meta["contrast_limits"] = list(limits)
    return data, meta, "image"
