"""Prompts a user puts on a reference image, in row/column pixel coordinates.

``Mask``, ``Box``, ``Points`` and ``Scribble`` are what users draw. ``resolve_class_prompt``
checks them against their image and merges the prompts of one class on one image into either a
dense mask or one set of points; ``sam_point_inputs`` is the single place where row/column
becomes SAM's x/y in the model's square frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image, image_hw

POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 1, 0, 2, 3
MIN_BOX_SIDE = 0.01  # pixels; thinner boxes are lines
MAX_CLASS_ID = int(np.iinfo(np.uint32).max)  # label files and napari's label layers hold uint32


@dataclass(frozen=True, eq=False)
class Mask:
    """The object's pixels: any boolean or integer array of the image's size (nonzero = object)."""

    mask: np.ndarray


@dataclass(frozen=True)
class Box:
    """A rectangle around the object, by two corners (row, column); any corner order."""

    r0: float
    c0: float
    r1: float
    c1: float


@dataclass(frozen=True, eq=False)
class Points:
    """Clicks at ``(row, column)``; ``labels`` 1 = on the object, 0 = not (default all 1)."""

    coords: np.ndarray | Sequence[Sequence[float]]
    labels: Sequence[int] | np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Scribble:
    """A polyline of ``(row, column)`` vertices drawn over the object (or off it if not positive)."""

    path: np.ndarray | Sequence[Sequence[float]]
    positive: bool = True


Prompt = Union[Mask, Box, Points, Scribble]


@dataclass(frozen=True, eq=False)
class Reference:
    """An annotated image: class id (>= 1) -> prompt, or a list of sparse prompts."""

    image: Image | np.ndarray
    prompts: Mapping[int, Prompt | Sequence[Prompt]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DensePrompt:
    """A class given as a mask on its reference image."""

    mask: np.ndarray  # (H, W) bool


@dataclass(frozen=True, eq=False)
class SparsePrompt:
    """A class given as points (boxes first, as corner pairs) on its reference image."""

    coords: np.ndarray  # (P, 2) float32, row/column
    labels: np.ndarray  # (P,) int32: 1, 0, or 2/3 for box corners


ClassPrompt = Union[DensePrompt, SparsePrompt]


def _as_points_array(values: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SansaError(f"{what} must be numbers, got {values!r}.") from exc
    if array.ndim == 1 and array.size == 2:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise SansaError(f"{what} must be an (N, 2) array of (row, column), got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise SansaError(f"{what} contain NaN or infinite coordinates.")
    return array


def _inside(coords: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    return (
        (coords[:, 0] >= -0.5)
        & (coords[:, 0] <= h - 0.5)
        & (coords[:, 1] >= -0.5)
        & (coords[:, 1] <= w - 0.5)
    )


def _box_points(box: Box, hw: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([box.r0, box.c0, box.r1, box.c1], dtype=np.float64)
    if not np.isfinite(values).all():
        raise SansaError(f"The box {where} has NaN or infinite corners.")
    h, w = hw
    r0, r1 = sorted((values[0], values[2]))
    c0, c1 = sorted((values[1], values[3]))
    r0, r1 = np.clip([r0, r1], 0, h - 1)
    c0, c1 = np.clip([c0, c1], 0, w - 1)
    if r1 - r0 < MIN_BOX_SIDE or c1 - c0 < MIN_BOX_SIDE:
        raise SansaError(
            f"The box {where} has no area inside the {h}x{w} image "
            f"(corners {box.r0:g},{box.c0:g} and {box.r1:g},{box.c1:g}); draw a rectangle over the object."
        )
    return np.array([[r0, c0], [r1, c1]]), np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT])


def _point_set(points: Points, hw: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    coords = _as_points_array(points.coords, f"The points {where}")
    if points.labels is None:
        labels = np.ones(len(coords), dtype=np.int64)
    else:
        labels = np.asarray(points.labels).reshape(-1)
        if labels.shape[0] != coords.shape[0]:
            raise SansaError(
                f"The points {where} have {coords.shape[0]} coordinates but {labels.shape[0]} labels."
            )
        if not np.isin(labels, (POSITIVE, NEGATIVE)).all():
            raise SansaError(f"Point labels {where} must be 1 (object) or 0 (not object).")
    outside = ~_inside(coords, hw)
    if outside.any():
        r, c = coords[outside][0]
        raise SansaError(f"The point ({r:g}, {c:g}) {where} lies outside the {hw[0]}x{hw[1]} image.")
    return coords, labels.astype(np.int64)


def scribble_pixels(path: np.ndarray) -> np.ndarray:
    """Pixels on a polyline, in drawing order and without repeats."""
    from skimage.draw import line

    vertices = np.round(path).astype(np.int64)
    if len(vertices) == 1:
        return vertices
    rows, cols = [], []
    for (ra, ca), (rb, cb) in zip(vertices[:-1], vertices[1:]):
        rr, cc = line(int(ra), int(ca), int(rb), int(cb))
        rows.append(rr)
        cols.append(cc)
    pixels = np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1)
    _, first = np.unique(pixels, axis=0, return_index=True)
    return pixels[np.sort(first)]


def _scribble_set(scribble: Scribble, hw: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    path = _as_points_array(scribble.path, f"The scribble {where}")
    pixels = scribble_pixels(path)
    pixels = pixels[_inside(pixels.astype(np.float64), hw)]
    if len(pixels) == 0:
        raise SansaError(f"The scribble {where} lies entirely outside the {hw[0]}x{hw[1]} image.")
    label = POSITIVE if scribble.positive else NEGATIVE
    return pixels.astype(np.float64), np.full(len(pixels), label, dtype=np.int64)


def resolve_class_prompt(
    prompt: Prompt | Sequence[Prompt], hw: tuple[int, int], where: str = ""
) -> ClassPrompt:
    """Check one class's prompts on one image and merge them into a mask or a point set."""
    items = list(prompt) if isinstance(prompt, (list, tuple)) else [prompt]
    if not items:
        raise SansaError(f"No prompt was given {where}.")
    masks = [p for p in items if isinstance(p, Mask)]
    unknown = [p for p in items if not isinstance(p, (Mask, Box, Points, Scribble))]
    if unknown:
        raise SansaError(f"Unknown prompt {unknown[0]!r} {where}: use Mask, Box, Points or Scribble.")
    if masks:
        if len(masks) != len(items):
            raise SansaError(f"A mask cannot be combined with points, boxes or scribbles {where}.")
        union = np.zeros(hw, dtype=bool)
        for m in masks:
            array = np.asarray(m.mask)
            if array.ndim == 3 and array.shape[-1] == 1:
                array = array[..., 0]
            if array.shape != tuple(hw):
                raise SansaError(
                    f"The mask {where} has shape {array.shape}, but its image is {hw[0]}x{hw[1]}."
                )
            if array.dtype.kind not in "biuf":
                raise SansaError(f"The mask {where} must be boolean or integer, not {array.dtype}.")
            union |= np.nan_to_num(array) != 0
        if not union.any():
            raise SansaError(
                f"The mask {where} is empty: paint the object, or leave the class out of this image."
            )
        return DensePrompt(union)

    boxes = [_box_points(p, hw, where) for p in items if isinstance(p, Box)]
    others = []
    for p in items:
        if isinstance(p, Points):
            others.append(_point_set(p, hw, where))
        elif isinstance(p, Scribble):
            others.append(_scribble_set(p, hw, where))
    parts = boxes + others  # SAM expects box corners before clicks
    coords = np.concatenate([c for c, _ in parts]).astype(np.float32)
    labels = np.concatenate([lab for _, lab in parts]).astype(np.int32)
    if not np.isin(labels, (POSITIVE, BOX_TOP_LEFT)).any():
        raise SansaError(f"The prompt {where} has only negative points; add at least one on the object.")
    return SparsePrompt(coords, labels)


def resolve_reference(reference: Reference, index: int) -> dict[int, ClassPrompt]:
    """Validate a reference's class ids and prompts against its image."""
    if not isinstance(reference, Reference):
        raise SansaError(
            f"Reference {index} must be a napari_sansa.Reference, not {type(reference).__name__}."
        )
    hw = image_hw(reference.image)
    if not reference.prompts:
        raise SansaError(f"Reference {index} has no prompts: annotate at least one class on it.")
    return resolve_prompts(reference.prompts, hw, f"reference {index}")


def resolve_prompts(
    prompts: Mapping[int, Prompt | Sequence[Prompt]], hw: tuple[int, int], where: str
) -> dict[int, ClassPrompt]:
    """Validate class ids and prompts against an image of size ``hw``; ``where`` names the image
    in error messages (e.g. "reference 2", "plane 7")."""
    resolved: dict[int, ClassPrompt] = {}
    for class_id, prompt in prompts.items():
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)):
            raise SansaError(f"Class ids must be integers >= 1, got {class_id!r} on {where}.")
        if class_id < 1:
            raise SansaError(
                f"Class id {class_id} on {where} is not allowed: 0 is the background; use ids 1, 2, 3, ..."
            )
        if class_id > MAX_CLASS_ID:
            raise SansaError(
                f"Class id {class_id} on {where} is too large: label files hold ids up to {MAX_CLASS_ID}."
            )
        resolved[int(class_id)] = resolve_class_prompt(prompt, hw, f"for class {int(class_id)} on {where}")
    return resolved


def sam_point_inputs(prompt: SparsePrompt, hw: tuple[int, int], image_size: int) -> dict:
    """Points in SAM's x/y order, scaled from the image to the model's square frame."""
    import torch

    h, w = hw
    scale = np.array([image_size / w, image_size / h], dtype=np.float32)
    xy = prompt.coords[:, ::-1] * scale
    return {
        "point_coords": torch.from_numpy(np.ascontiguousarray(xy, dtype=np.float32))[None],
        "point_labels": torch.from_numpy(prompt.labels.astype(np.int32))[None],
    }


def mask_in_model_frame(mask: np.ndarray, image_size: int):
    """``(1, 1, S, S)`` bool tensor: the mask resized with antialiasing, any touched pixel kept."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    resized = F.interpolate(
        m, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized > 0


def prompt_digest(prompt: ClassPrompt) -> bytes:
    """A content hash of a resolved prompt, to key cached reference memories."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(prompt, DensePrompt):
        digest.update(b"mask")
        digest.update(np.packbits(prompt.mask).tobytes())
        digest.update(np.asarray(prompt.mask.shape).tobytes())
    else:
        digest.update(b"points")
        digest.update(prompt.coords.tobytes())
        digest.update(prompt.labels.tobytes())
    return digest.digest()


def label_dtype(class_ids: Iterable[int]) -> np.dtype:
    """The smallest unsigned dtype that holds every class id: label layers and files stay small."""
    return np.min_scalar_type(max(class_ids, default=1))
