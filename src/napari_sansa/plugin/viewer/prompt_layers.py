"""Read prompts out of the layers users draw with: Labels, Points and Shapes.

Each function takes a layer's data (already copied on the main thread) and how many leading
axes index planes (0 for a 2D image, 1 for a ZYX or TYX stack) and returns
``{plane: {class_id: [prompt, ...]}}`` with planes as tuples of ints (``()`` for 2D).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_sansa.engine.inputs.prompts import Box, Mask, Points, Prompt, Scribble

Plane = tuple[int, ...]
PlanePrompts = dict[Plane, dict[int, list[Prompt]]]
CLASS, SIGN = "class", "sign"
POSITIVE, NEGATIVE = "positive", "negative"


def _add(out: PlanePrompts, plane: Plane, class_id: int, prompt: Prompt) -> None:
    out.setdefault(plane, {}).setdefault(int(class_id), []).append(prompt)


def labels_prompts(data: np.ndarray, lead: int, mode: str = "each", class_id: int = 1) -> PlanePrompts:
    """Masks per plane: each nonzero value a class (``"each"``), or all objects one class
    (``"one"``: an instance mask, every object id is ``class_id``)."""
    from napari_sansa.engine.inputs.masks import classes_from_mask

    out: PlanePrompts = {}
    planes = np.ndindex(*data.shape[:lead]) if lead else [()]
    for plane in planes:
        plane_data = np.asarray(data[plane])
        if not plane_data.any():
            continue
        classes = classes_from_mask(plane_data, mode, source="labels").classes
        if mode == "one":
            classes = {class_id: classes[1]}
        for value, mask in classes.items():
            _add(out, tuple(int(i) for i in plane), int(value), Mask(mask))
    return out


def mask_mode(data: np.ndarray, mode: str) -> tuple[str, int]:
    """How a Labels layer's values are read, decided once for all its planes: ``("each" or "one",
    number of distinct object values)``. ``"auto"`` takes many values for an instance mask."""
    from napari_sansa.engine.inputs.masks import AUTO_MAX_CLASSES

    values = np.unique(np.asarray(data))
    count = int(np.count_nonzero(values))
    if mode == "auto":
        mode = "each" if count <= AUTO_MAX_CLASSES else "one"
    return mode, count


def _classes(features, n: int, default_class: int) -> np.ndarray:
    if features is not None and CLASS in getattr(features, "columns", ()):
        return np.asarray(features[CLASS], dtype=np.int64)
    return np.full(n, default_class, dtype=np.int64)


def points_prompts(coords: np.ndarray, features, lead: int, default_class: int = 1) -> PlanePrompts:
    """Clicks grouped by plane and class; the 'sign' feature marks negative clicks."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, lead + 2)
    classes = _classes(features, len(coords), default_class)
    if features is not None and SIGN in getattr(features, "columns", ()):
        positive = np.asarray(features[SIGN]).astype(str) != NEGATIVE
    else:
        positive = np.ones(len(coords), bool)
    planes = np.round(coords[:, :lead]).astype(np.int64)
    groups: dict[tuple[Plane, int], list[int]] = {}
    for i in range(len(coords)):
        groups.setdefault((tuple(int(v) for v in planes[i]), int(classes[i])), []).append(i)
    out: PlanePrompts = {}
    for (plane, class_id), index in groups.items():
        _add(out, plane, class_id, Points(coords[index, lead:], labels=positive[index].astype(int)))
    return out


def ellipse_polygon(corners: np.ndarray, n: int = 64) -> np.ndarray:
    """The outline of an ellipse given, as napari stores it, by its bounding box's 4 corners."""
    center = corners.mean(axis=0)
    half_a = (corners[1] - corners[0]) / 2
    half_b = (corners[3] - corners[0]) / 2
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return center + np.cos(t) * half_a + np.sin(t) * half_b


def polygon_mask(vertices: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from skimage.draw import polygon

    mask = np.zeros(hw, bool)
    rr, cc = polygon(vertices[:, 0], vertices[:, 1], shape=hw)
    mask[rr, cc] = True
    return mask


def shapes_prompts(
    data: Sequence[np.ndarray],
    shape_types: Sequence[str],
    features,
    lead: int,
    hw: tuple[int, int],
    default_class: int = 1,
) -> PlanePrompts:
    """Rectangles are boxes, paths and lines scribbles, polygons and ellipses masks."""
    classes = _classes(features, len(data), default_class)
    out: PlanePrompts = {}
    for vertices, kind, class_id in zip(data, shape_types, classes):
        vertices = np.asarray(vertices, dtype=np.float64)
        plane = tuple(int(round(v)) for v in vertices[0, :lead])
        rc = vertices[:, lead:]
        if kind == "rectangle":
            (r0, c0), (r1, c1) = rc.min(axis=0), rc.max(axis=0)
            prompt: Prompt = Box(r0, c0, r1, c1)
        elif kind in ("path", "line"):
            prompt = Scribble(rc)
        elif kind == "ellipse":
            prompt = Mask(polygon_mask(ellipse_polygon(rc), hw))
        else:  # polygon
            prompt = Mask(polygon_mask(rc, hw))
        _add(out, plane, int(class_id), prompt)
    return out


def merge(*parts: PlanePrompts) -> PlanePrompts:
    """Prompts of several layers on the same image, plane by plane and class by class."""
    out: PlanePrompts = {}
    for part in parts:
        for plane, classes in part.items():
            for class_id, prompts in classes.items():
                out.setdefault(plane, {}).setdefault(class_id, []).extend(prompts)
    return out
