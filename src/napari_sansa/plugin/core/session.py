"""What a run works on, decided from snapshots of the viewer's layers (no Qt, no napari).

References are the planes that carry prompts; targets are the other planes of annotated
stacks and every plane of the checked image layers, except the locked ones (edited or
accepted by the user), which runs never touch. An annotated image that is checked is segmented
as well, its annotated planes included (the rest of a mosaic annotated in one corner). A stack run "through the stack" has its
annotated planes seed SAM2's memory, and its masks travel plane by plane both ways
(:class:`StackRun`); every other target is segmented on its own from the references.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sansa.engine.inputs.images import Image
from napari_sansa.engine.inputs.prompts import Mask, Prompt, Reference
from napari_sansa.plugin.viewer.prompt_layers import Plane, PlanePrompts


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

    ``data`` may be a NumPy, dask or zarr array (level 0 of a multiscale layer, whose levels
    are ``levels``): nothing is read here; the engine reads planes, or a large plane's tiles,
    in the worker thread.
    """

    image_id: str
    name: str
    data: object
    lead: int  # leading axes that index planes
    rgb: bool = False
    contrast_limits: tuple[float, float] | None = None
    levels: tuple = ()  # a multiscale layer's arrays, level 0 (= data) first
    pixel_size: float = 1.0  # the layer's scale along Y and X (world units per pixel)

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
        """One plane with the layer's contrast limits; lazy (read by the engine, by windows)
        unless the layer holds a NumPy array. A multiscale layer's plane is a pyramid."""
        from napari_sansa.plugin.viewer.large import plane_of

        limits = None if (self.rgb and np.dtype(self.data.dtype) == np.uint8) else self.contrast_limits
        if len(self.levels) > 1:
            from napari_sansa.engine.inputs.images import Multiscale

            return Multiscale([plane_of(level, plane) for level in self.levels], contrast_limits=limits)
        return Image(plane_of(self.data, plane), contrast_limits=limits)


class PlaneImages(Sequence):
    """A stack's planes as a lazy sequence of :class:`Image` (read when the engine asks)."""

    def __init__(self, source: ImageSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return self.source.plane_shape[0]

    def __getitem__(self, index: int) -> Image:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.source.image((int(index),))


@dataclass(eq=False)
class StackRun:
    """A stack segmented through its planes, from its own annotated planes.

    ``start``: re-propagate from this (corrected) plane onwards only.
    """

    source: ImageSource
    annotations: dict[int, dict[int, list[Prompt]]]
    keys: list[TargetKey]
    start: int | None = None

    @property
    def skip(self) -> set[int]:
        """Planes the engine passes through without a result for us (locked ones)."""
        wanted = {key.plane[0] for key in self.keys}
        return {z for z in range(self.source.plane_shape[0]) if z not in wanted}


@dataclass(eq=False)
class Job:
    """References and targets of one run."""

    references: list[Reference]
    reference_keys: list[TargetKey]
    targets: list[tuple[TargetKey, ImageSource]]
    classes: list[int] = field(default_factory=list)
    stacks: list[StackRun] = field(default_factory=list)
    class_names: dict[int, str] = field(default_factory=dict)  # class id -> name, as the user named them
    tiling: dict[str, dict] = field(default_factory=dict)  # image id -> tile_size, overlap, scale
    tiles: dict[str, int] = field(default_factory=dict)  # image id -> tiles per plane (1: read whole)

    def tiled(self, image_id: str) -> bool:
        """Whether an image's planes are segmented in tiles (their labels written tile by tile)."""
        return self.tiles.get(image_id, 1) > 1

    def independent(self) -> list[tuple[TargetKey, ImageSource]]:
        """Targets segmented each on its own (not through a stack)."""
        through = {key for stack in self.stacks for key in stack.keys}
        return [(key, source) for key, source in self.targets if key not in through]


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
    through_stacks: bool = False,
) -> Job:
    """References from prompted planes; targets from the rest, minus locked planes.

    An annotated image's other planes are always targets; its annotated planes are targets too
    when the image is ``checked`` (segmented independently, from all the references). With
    ``through_stacks``, annotated stacks of one plane axis (Z or T) are segmented through
    the stack from their own annotations.
    """
    references, reference_keys, targets, stacks = [], [], [], []
    classes: set[int] = set()
    for source in images:
        annotated = {plane: c for plane, c in prompts.get(source.image_id, {}).items() if c}
        for plane, plane_classes in sorted(annotated.items()):
            references.append(Reference(source.image(plane), _engine_prompts(plane_classes)))
            reference_keys.append(TargetKey(source.image_id, plane))
            classes.update(plane_classes)
        if not annotated and source.image_id not in checked:
            continue
        own = []
        for plane in source.planes():
            key = TargetKey(source.image_id, plane)
            if plane not in annotated and key not in locked:
                own.append((key, source))
        targets.extend(own)
        if source.image_id in checked:
            targets.extend(
                (key, source)
                for key in (TargetKey(source.image_id, plane) for plane in sorted(annotated))
                if key not in locked
            )
        if through_stacks and annotated and source.lead == 1 and own:
            seeds = {plane[0]: _engine_prompts(c) for plane, c in annotated.items()}
            stacks.append(StackRun(source, seeds, [key for key, _ in own]))
    return Job(references, reference_keys, targets, sorted(classes), stacks)


def repropagation_job(
    source: ImageSource, prompts: PlanePrompts, locked: set[TargetKey], key: TargetKey, labels: np.ndarray
) -> Job:
    """Segment a stack again after plane ``key`` was corrected to ``labels``: from that plane
    onwards, through the stack, with the stack's annotations and the correction as memory."""
    from napari_sansa.engine.errors import SansaError

    if source.lead != 1:
        raise SansaError("Propagating from a plane needs a stack with one plane axis (Z or T).")
    if not labels.any():
        raise SansaError("This plane is empty: paint the objects on it, then propagate from it.")
    plane = key.plane[0]
    job = plan_job([source], {source.image_id: prompts}, set(), locked | {key}, through_stacks=True)
    correction = {int(c): [Mask(labels == c)] for c in np.unique(labels) if c}
    seeds = {**(job.stacks[0].annotations if job.stacks else {}), plane: correction}
    later = [(k, s) for k, s in job.targets if k.plane[0] > plane]
    if not later:
        raise SansaError("There are no unlocked planes after this one to propagate to.")
    references = job.references or [Reference(source.image(key.plane), correction)]
    classes = sorted(set(job.classes) | set(correction))
    stack = StackRun(source, seeds, [k for k, _ in later], start=plane)
    return Job(references, job.reference_keys, later, classes, [stack])
