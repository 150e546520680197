"""Label images as classes: is each value a class, or are the values objects of one class?

A semantic mask gives each class its own value (1 = nucleus, 2 = cytoplasm); an instance mask
gives each *object* its own value (cells 1, 2, ..., 40), all of one class. Taking an instance
mask value by value would make 40 classes out of 40 cells: 40 memory passes per target and
labels that mean nothing. :func:`classes_from_mask` decides (or is told) which it is, and says
what it decided in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from napari_sansa.engine.errors import SansaError

MaskMode = Literal["auto", "each", "one"]
MASK_MODES: tuple[str, ...] = ("auto", "each", "one")

# Semantic label images hold a handful of classes (foreground/background parts, a few tissue
# types), while instance masks of cells or nuclei hold dozens to thousands of ids. Up to 5
# distinct values is read as classes; more as objects of one class. Both readings can be
# forced (mode="each" / "one"), and the message always says which one was taken.
AUTO_MAX_CLASSES = 5


@dataclass(frozen=True, eq=False)
class MaskClasses:
    """The classes a label image gives: class id -> boolean mask, the decision and why."""

    classes: dict[int, np.ndarray]
    mode: str  # "each" or "one": what was decided
    message: str  # one line: what was decided and how to override it


def _label_image(mask: np.ndarray, source: str) -> np.ndarray:
    """A 2D array of whole, non-negative values, or a clear error."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] in (3, 4):
        if not (np.all(mask[..., 0] == mask[..., 1]) and np.all(mask[..., 0] == mask[..., 2])):
            raise SansaError(f"{source} is a colour image; a mask must be a grayscale or label image.")
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise SansaError(f"{source} has shape {mask.shape}; a mask must be a 2D label image.")
    if mask.dtype.kind not in "biuf":
        raise SansaError(f"{source} holds {mask.dtype} values; a mask must hold whole class ids.")
    if mask.dtype.kind == "f":
        if not np.all(np.isfinite(mask)) or not np.all(mask == np.round(mask)):
            raise SansaError(f"{source} holds fractional values; a mask must hold whole class ids.")
        mask = mask.astype(np.int64)
    if mask.dtype.kind == "b":
        mask = mask.astype(np.uint8)
    return mask


def classes_from_mask(mask: np.ndarray, mode: MaskMode = "auto", *, source: str = "mask") -> MaskClasses:
    """Classes from a label image.

    ``mode="each"``: every nonzero value is its own class (a 0/255 binary mask is class 1);
    ``"one"``: every nonzero pixel is class 1 (an instance mask); ``"auto"``: "each" for at
    most :data:`AUTO_MAX_CLASSES` distinct values, else "one". ``source`` names the mask in
    messages (e.g. its file name).
    """
    if mode not in MASK_MODES:
        raise SansaError(f"Mask mode {mode!r} is unknown; use one of {', '.join(MASK_MODES)}.")
    mask = _label_image(mask, source)
    values = [int(v) for v in np.unique(mask) if v != 0]
    if not values:
        raise SansaError(f"{source} is empty: it marks no object.")
    if any(v < 0 for v in values):
        raise SansaError(f"{source} holds negative values; class ids are 1, 2, 3, ...")
    decided = mode if mode != "auto" else ("each" if len(values) <= AUTO_MAX_CLASSES else "one")
    how = "auto" if mode == "auto" else "as asked"
    if decided == "one":
        message = (
            f"{source}: {len(values)} object id(s), taken as ONE class (an instance mask; {how}); "
            "use --mask-classes each (Python: mode='each') for one class per value"
        )
        return MaskClasses({1: mask != 0}, "one", message)
    if values == [255]:
        classes = {1: mask == 255}
    else:
        classes = {v: mask == v for v in values}
    shown = ", ".join(map(str, sorted(classes)[:10])) + (", ..." if len(classes) > 10 else "")
    message = (
        f"{source}: {len(classes)} class(es) ({shown}), one per value ({how}); "
        "use --mask-classes one (Python: mode='one') if the values are objects of one class"
    )
    return MaskClasses(classes, "each", message)
