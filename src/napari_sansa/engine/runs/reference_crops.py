"""References on large images, seen at the resolution their targets' tiles are seen at.

A reference image that would be tiled is not shrunk to a thumbnail: each class's annotation
becomes tile-sized crops around its prompts, at the working scale. A prompt that fits in one
tile gives one crop centred on it; a larger one (a mask over a whole mosaic, clicks far apart)
gives one crop per tile-sized cell it touches, the fullest first, up to SAM2's memory of
``max_crops`` frames per class. Each crop is an ordinary :class:`Reference`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_sansa.engine.inputs.images import Image, image_hw
from napari_sansa.engine.inputs.large_images import LargeImage, large_image
from napari_sansa.engine.inputs.prompts import (
    BOX_TOP_LEFT,
    POSITIVE,
    Box,
    DensePrompt,
    Mask,
    Points,
    Reference,
    SparsePrompt,
    resolve_prompts,
)
from napari_sansa.engine.runs.tiling import TileOptions, _starts, tile_grid

Window = tuple[slice, slice]


def _centred(center: float, side: int, length: int) -> slice:
    start = int(round(center - side / 2))
    start = min(max(start, 0), length - side)
    return slice(start, start + side)


def _cells(lo: np.ndarray, hi: np.ndarray, tile: tuple[int, int]) -> list[Window]:
    """Tile-sized cells, without overlap, that cover the box from ``lo`` to ``hi`` (inclusive)."""
    spans = []
    for axis in (0, 1):
        length = int(hi[axis] - lo[axis] + 1)
        side = min(tile[axis], length)
        spans.append([slice(int(lo[axis]) + s, int(lo[axis]) + s + side) for s in _starts(length, side, 0)])
    return [(r, c) for r in spans[0] for c in spans[1]]


def _fits(lo: np.ndarray, hi: np.ndarray, tile: tuple[int, int]) -> bool:
    return bool(hi[0] - lo[0] < tile[0] and hi[1] - lo[1] < tile[1])


def _around(lo: np.ndarray, hi: np.ndarray, tile: tuple[int, int], hw: tuple[int, int]) -> Window:
    return (
        _centred((lo[0] + hi[0] + 1) / 2, tile[0], hw[0]),
        _centred((lo[1] + hi[1] + 1) / 2, tile[1], hw[1]),
    )


def mask_windows(mask: np.ndarray, tile: tuple[int, int], max_crops: int) -> list[Window]:
    """Windows that show a mask: one around it if it fits, else its fullest tile-sized cells."""
    hw = mask.shape
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    lo, hi = np.array([rows[0], cols[0]]), np.array([rows[-1], cols[-1]])
    if _fits(lo, hi, tile):
        return [_around(lo, hi, tile, hw)]
    cells = _cells(lo, hi, tile)
    counts = [int(np.count_nonzero(mask[window])) for window in cells]
    fullest = sorted((k for k in range(len(cells)) if counts[k] > 0), key=lambda k: -counts[k])
    chosen = [cells[k] for k in sorted(fullest[:max_crops])]  # in raster order
    return [
        _around(np.array([r.start, c.start]), np.array([r.stop - 1, c.stop - 1]), tile, hw) for r, c in chosen
    ]


def _items(prompt: SparsePrompt) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes (corner pairs) and single clicks, each kept whole."""
    items, k = [], 0
    while k < len(prompt.labels):
        width = 2 if prompt.labels[k] == BOX_TOP_LEFT else 1
        items.append((prompt.coords[k : k + width], prompt.labels[k : k + width]))
        k += width
    return items


def _is_positive(labels: np.ndarray) -> bool:
    return bool(labels[0] in (POSITIVE, BOX_TOP_LEFT))


def point_windows(
    prompt: SparsePrompt, tile: tuple[int, int], hw: tuple[int, int], max_crops: int
) -> list[Window]:
    """Windows that show a class's clicks and boxes: one if they fit, else one per cell of them."""
    positives = [coords for coords, labels in _items(prompt) if _is_positive(labels)]
    every = np.concatenate(positives)
    lo, hi = np.floor(every.min(0)), np.floor(every.max(0))
    if _fits(lo, hi, tile):
        return [_around(lo, hi, tile, hw)]
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for coords in positives:
        centre = coords.mean(0)
        key = (int((centre[0] - lo[0]) // tile[0]), int((centre[1] - lo[1]) // tile[1]))
        groups.setdefault(key, []).append(coords)
    biggest = sorted(groups.items(), key=lambda item: -len(item[1]))[:max_crops]
    windows = []
    for _, members in sorted(biggest):
        points = np.concatenate(members)
        windows.append(_around(np.floor(points.min(0)), np.floor(points.max(0)), tile, hw))
    return windows


def _crop_points(prompt: SparsePrompt, window: Window, factor: tuple[float, float]) -> list:
    """The clicks and boxes that fall in a window, in the crop's pixels (boxes clipped to it)."""
    rows, cols = window
    offset = np.array([rows.start, cols.start], np.float64)
    size = np.array([rows.stop - rows.start, cols.stop - cols.start], np.float64)
    scale = np.array(factor, np.float64)
    out: list = []
    for coords, labels in _items(prompt):
        local = coords - offset
        if labels[0] == BOX_TOP_LEFT:
            if (local.max(0) < -0.5).any() or (local.min(0) > size - 0.5).any():
                continue
            (r0, c0), (r1, c1) = (np.clip(local, 0, size - 1) + 0.5) * scale - 0.5
            out.append(Box(r0, c0, r1, c1))
        elif ((local >= -0.5) & (local <= size - 0.5)).all():
            out.append(Points((local + 0.5) * scale - 0.5, labels))
    boxes = [p for p in out if isinstance(p, Box)]
    return boxes + [p for p in out if not isinstance(p, Box)]


def _resized_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A mask at another size, any touched pixel kept (thin objects survive shrinking)."""
    if mask.shape == tuple(hw):
        return mask
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]
    return (F.interpolate(m, size=hw, mode="bilinear", align_corners=False, antialias=True) > 0)[0, 0].numpy()


def _crop(large: LargeImage, window: Window, scale: float) -> tuple[Image, tuple[float, float]]:
    pixels = large.read(*window, scale)
    rows, cols = window
    factor = (pixels.shape[0] / (rows.stop - rows.start), pixels.shape[1] / (cols.stop - cols.start))
    return Image(pixels, contrast_limits=(0.0, 1.0)), factor


def crop_reference(
    reference: Reference, index: int, options: TileOptions, image_size: int, max_crops: int
) -> list[Reference] | None:
    """The crops that stand for a reference on a large image, or None when it is seen whole."""
    hw = image_hw(reference.image)
    grid = tile_grid(hw, options, image_size)
    if grid is None or not reference.prompts:
        return None
    resolved = resolve_prompts(reference.prompts, hw, f"reference {index}")
    large = large_image(reference.image)
    crops = []
    for class_id, prompt in resolved.items():
        if isinstance(prompt, DensePrompt):
            for window in mask_windows(prompt.mask, grid.tile, max_crops):
                image, _ = _crop(large, window, options.scale)
                mask = _resized_mask(prompt.mask[window], image_hw(image))
                crops.append(Reference(image, {class_id: Mask(mask)}))
        else:
            for window in point_windows(prompt, grid.tile, hw, max_crops):
                image, factor = _crop(large, window, options.scale)
                crops.append(Reference(image, {class_id: _crop_points(prompt, window, factor)}))
    return crops


def crop_references(
    references: Sequence[Reference], options: TileOptions, image_size: int, max_crops: int
) -> list[Reference]:
    """References with each large one replaced by its crops (small ones as they are)."""
    out: list[Reference] = []
    for index, reference in enumerate(references):
        if not isinstance(reference, Reference):
            out.append(reference)  # reported by resolve_reference, with its index
            continue
        crops = crop_reference(reference, index, options, image_size, max_crops)
        out.extend([reference] if crops is None else crops)
    return out
