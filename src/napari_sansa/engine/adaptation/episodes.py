"""Training episodes from the user's annotated images: k supports and one query.

As SANSA was trained: the supports (masks, or clicks, boxes and scribbles) become memory, the
query is segmented from that memory alone, and the query's own mask is the target. A share of
the mask-annotated images is held out before anything is drawn: those are only ever scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.adaptation.augment import Augmentation, draw_augmentations
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import to_rgb01
from napari_sansa.engine.inputs.prompts import (
    ClassPrompt,
    DensePrompt,
    Reference,
    SparsePrompt,
    resolve_reference,
)

MIN_TRAINING_MASKS = 2  # a query and at least one other image to learn from


@dataclass(eq=False)
class Annotated:
    """One annotated image: its place among the references, its RGB pixels, its prompts."""

    index: int
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], as the model sees it
    prompts: dict[int, ClassPrompt]

    @property
    def mask_classes(self) -> list[int]:
        return [c for c, p in self.prompts.items() if isinstance(p, DensePrompt)]


@dataclass(frozen=True)
class View:
    """An annotated image under one augmentation."""

    image: Annotated
    augmentation: Augmentation

    @property
    def key(self) -> tuple[int, Augmentation]:
        return (self.image.index, self.augmentation)

    @property
    def hw(self) -> tuple[int, int]:
        """The augmented image's height and width (a quarter turn swaps them)."""
        h, w = prompt_hw(self.image)
        return (w, h) if self.augmentation.quarter_turns % 2 else (h, w)

    def rgb(self) -> np.ndarray:
        return self.augmentation.image(self.image.rgb)

    def prompt(self, class_id: int) -> ClassPrompt:
        prompt = self.image.prompts[class_id]
        if isinstance(prompt, DensePrompt):
            return DensePrompt(self.augmentation.geometry(prompt.mask))
        coords = self.augmentation.points(prompt.coords, prompt_hw(self.image))
        return SparsePrompt(coords, prompt.labels)


def prompt_hw(image: Annotated) -> tuple[int, int]:
    return image.rgb.shape[0], image.rgb.shape[1]


@dataclass(frozen=True)
class Episode:
    """Supports (their prompts become memory) and a query with a mask, for one class."""

    class_id: int
    supports: tuple[View, ...]
    query: View


def annotated_images(references: Sequence[Reference]) -> list[Annotated]:
    """Each reference checked (as a run would) and shown as the model sees it."""
    return [Annotated(i, to_rgb01(ref.image), resolve_reference(ref, i)) for i, ref in enumerate(references)]


def hold_out(
    images: Sequence[Annotated], validation: float, rng: np.random.Generator
) -> tuple[list[Annotated], list[Annotated]]:
    """(training images, held-out images): the held-out share drawn among the mask-annotated
    images, which are the only ones that can be scored; one clear error when too few have masks."""
    if not 0 <= validation < 1:
        raise SansaError(f"The held-out share must be at least 0 and below 1, got {validation}.")
    with_masks = [image for image in images if image.mask_classes]
    n_held = int(round(validation * len(with_masks)))
    n_held = max(n_held, 1) if validation > 0 else 0
    needed = MIN_TRAINING_MASKS + n_held
    if len(with_masks) < needed:
        share = f" (a share of {validation:g} of them held out to score the result)" if n_held else ""
        raise SansaError(
            f"Adapting needs at least {needed} images annotated with masks{share}: {MIN_TRAINING_MASKS} "
            f"to train on, one as the query and the others as its supports. These references have "
            f"{len(with_masks)}. Paint masks on more images; images annotated with points, boxes or "
            "scribbles serve as supports only."
        )
    order = rng.permutation(len(with_masks))
    held = sorted((with_masks[i] for i in order[:n_held]), key=lambda image: image.index)
    held_ids = {image.index for image in held}
    return [image for image in images if image.index not in held_ids], held


class EpisodeSampler:
    """Draws episodes from the training images: a query with a mask for a class, 1 to ``shots``
    other images annotated with that class as its supports, each under a random augmentation."""

    def __init__(
        self, images: Sequence[Annotated], shots: int, augmentations: int, rng: np.random.Generator
    ) -> None:
        self.images = list(images)
        self.shots = shots
        self.rng = rng
        self.recipes = {image.index: draw_augmentations(rng, augmentations) for image in self.images}
        self.queries = [
            (image, c)
            for image in self.images
            for c in image.mask_classes
            if any(c in other.prompts for other in self.images if other is not image)
        ]
        if not self.queries:
            raise SansaError(
                "No class is annotated with a mask on one training image and annotated on another: "
                "annotate each class on at least two images."
            )

    def _view(self, image: Annotated) -> View:
        recipes = self.recipes[image.index]
        return View(image, recipes[int(self.rng.integers(len(recipes)))])

    def draw(self) -> Episode:
        query, class_id = self.queries[int(self.rng.integers(len(self.queries)))]
        others = [image for image in self.images if image is not query and class_id in image.prompts]
        k = int(self.rng.integers(1, min(self.shots, len(others)) + 1))
        chosen = self.rng.choice(len(others), size=k, replace=False)
        return Episode(class_id, tuple(self._view(others[i]) for i in chosen), self._view(query))
