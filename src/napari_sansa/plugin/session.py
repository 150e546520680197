"""What a run works on, decided from snapshots of the viewer's layers (no Qt, no napari).

References are the planes that carry prompts; targets are the other planes of annotated
stacks and every plane of the checked image layers, except the locked ones (edited or
accepted by the user), which runs never touch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..engine.images import Image
from ..engine.prompts import Mask, Prompt, Reference
from .prompt_layers import Plane, PlanePrompts


@dataclass(frozen=True)
class TargetKey:
    """One 2D image: a layer (by its stable id) and a plane of it (``()`` for a 2D layer)."""

    image_id: str
    plane: Plane = ()

    def describe(self, name: str) -> str:
        return name if not self.plane else f"{name} [{', '.join(map(str, self.plane))}]"


@dataclass(frozen=True, eq=False)
class ImageSource:
    """An image layer's data and display settings, taken on the main thread.

    ``data`` may be a NumPy, dask or zarr array: planes are read one at a time.
    """

    image_id: str
    name: str
    data: object
    lead: int  # leading axes that index planes
    rgb: bool = False
    contrast_limits: tuple[float, float] | None = None

    @property
    def plane_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[: self.lead])

    @property
    def hw(self) -> tuple[int, int]:
        shape = self.data.shape[self.lead :]
        return int(shape[0]), int(shape[1])

    def planes(self) -> Iterator[Plane]:
        if not self.lead:
            yield ()
            return
        for plane in np.ndindex(*self.plane_shape):
            yield tuple(int(i) for i in plane)

    def image(self, plane: Plane) -> Image:
        """One plane, read now, with the layer's contrast limits."""
        pixels = np.asarray(self.data[plane] if plane else self.data)
        limits = None if (self.rgb and pixels.dtype == np.uint8) else self.contrast_limits
        return Image(pixels, contrast_limits=limits)


@dataclass(eq=False)
class Job:
    """References and targets of one run."""

    references: list[Reference]
    reference_keys: list[TargetKey]
    targets: list[tuple[TargetKey, ImageSource]]
    classes: list[int] = field(default_factory=list)
    class_names: dict[int, str] = field(default_factory=dict)  # class id -> name, as the user named them

    def target_images(self, on_read: Callable[[TargetKey], None] | None = None) -> Iterator[Image]:
        """Target planes, read lazily (in the worker thread)."""
        for key, source in self.targets:
            if on_read is not None:
                on_read(key)
            yield source.image(key.plane)


def _engine_prompts(classes: dict[int, list[Prompt]]) -> dict[int, list[Prompt]]:
    """Masks win over clicks and boxes for the same class on the same plane."""
    out = {}
    for class_id, prompts in classes.items():
        masks = [p for p in prompts if isinstance(p, Mask)]
        out[class_id] = masks or prompts
    return out


def plan_job(
    images: list[ImageSource],
    prompts: dict[str, PlanePrompts],
    checked: set[str],
    locked: set[TargetKey],
) -> Job:
    """References from prompted planes; targets from the rest, minus locked planes."""
    references, reference_keys, targets = [], [], []
    classes: set[int] = set()
    for source in images:
        annotated = {plane: c for plane, c in prompts.get(source.image_id, {}).items() if c}
        for plane, plane_classes in sorted(annotated.items()):
            references.append(Reference(source.image(plane), _engine_prompts(plane_classes)))
            reference_keys.append(TargetKey(source.image_id, plane))
            classes.update(plane_classes)
        if not annotated and source.image_id not in checked:
            continue
        for plane in source.planes():
            key = TargetKey(source.image_id, plane)
            if plane not in annotated and key not in locked:
                targets.append((key, source))
    return Job(references, reference_keys, targets, sorted(classes))
