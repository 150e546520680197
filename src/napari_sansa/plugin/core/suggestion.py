"""*Suggest next*: which of a run's results to annotate, and the one line that says why (no Qt).

The candidates are the job's targets that are not references (never an annotated plane) and
that the last run gave a confidence score; the engine ranks them
(:mod:`napari_sansa.engine.runs.annotation_ranking`) from those scores and the cached features.
When every image's features are in memory and the model is free, ranking is a blink
(:func:`rank_at_once`); else it encodes images, in a worker (:func:`ranking`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_sansa.plugin.core.progress import Progress
from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey

if TYPE_CHECKING:  # torch loads when a suggestion is asked for, not when napari starts
    from napari_sansa.engine.inputs.prompts import Reference
    from napari_sansa.engine.model import Sansa
    from napari_sansa.engine.runs.candidates import Candidate

NO_RESULTS = "Run first: Suggest next ranks the images the last run segmented."
NO_CANDIDATES = (
    "Nothing to suggest: every segmented image is annotated or accepted. "
    "Check more target images and Run to rank them."
)


def candidates(job: Job, scores: Mapping[TargetKey, float]) -> list[tuple[TargetKey, ImageSource]]:
    """The job's unannotated targets that have a score from a run, in the job's order."""
    annotated = set(job.reference_keys)
    return [(key, source) for key, source in job.targets if key not in annotated and key in scores]


def _place(value: float, values: Sequence[float]) -> str:
    """ "the lowest", "2nd lowest"...: where a value stands among the candidates' (highest first)."""
    rank = 1 + sum(v > value for v in values)
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(rank % 10 if rank % 100 not in (11, 12, 13) else 0, "th")
    return "the" if rank == 1 else f"{rank}{suffix}"


def reason(name: str, best: Candidate, ranked: Sequence[Candidate]) -> str:
    """One line: which image to annotate and how its confidence and novelty compare."""
    uncertain = _place(best.uncertainty, [c.uncertainty for c in ranked])
    novel = _place(best.novelty, [c.novelty for c in ranked])
    return (
        f"Annotate {name} next: {uncertain} least confident result ({best.confidence:.2f}) and "
        f"{novel} least like the references (feature distance {best.novelty:.2f}) of {len(ranked)}."
    )


def ranking(
    model: Sansa, references: Sequence[Reference], images: Sequence, scores: Sequence[float]
) -> Generator[Progress, None, list[Candidate]]:
    """In a worker: each image's features (an encoder pass where they are not cached), one by one
    so that progress shows and Cancel can stop between them, then the candidates ranked (a
    server's model ranks there, and this process needs no torch)."""
    remote = getattr(model, "rank_candidates", None)
    if remote is not None:
        yield Progress(0, 1, "Ranking on the server")
        return remote(references, images, scores=scores)
    from napari_sansa.engine.runs.annotation_ranking import pooled_features, rank_candidates

    everything = [reference.image for reference in references] + list(images)
    for done, image in enumerate(everything):
        yield Progress(done, len(everything), "Encoding the images to compare")
        pooled_features(model.runtime, image)
    return rank_candidates(model, references, images, scores=scores)


def rank_at_once(
    model: Sansa, references: Sequence[Reference], images: Sequence, scores: Sequence[float]
) -> list[Candidate] | None:
    """The ranking now, when it needs no encoder pass, no disk read and no wait for the model
    (another job, e.g. Adapt, holds it); ``None``: rank in a worker (:func:`ranking`), as a
    server's model always does."""
    if hasattr(model, "rank_candidates"):
        return None
    from napari_sansa.engine.runs.annotation_ranking import rank_candidates

    lock = model.runtime.lock
    if not lock.acquire(blocking=False):
        return None
    try:
        everything = [reference.image for reference in references] + list(images)
        if not all(_at_hand(model, image) for image in everything):
            return None
        return rank_candidates(model, references, images, scores=scores)
    finally:
        lock.release()


def _at_hand(model: Sansa, image) -> bool:
    """Whether ranking needs nothing read or computed for the image: an in-memory NumPy image
    whose features are cached in memory, or one segmented in tiles (never encoded whole)."""
    from napari_sansa.engine.inputs.images import as_image, image_hw
    from napari_sansa.engine.runs.tiling import TileOptions, tile_grid
    from napari_sansa.engine.runtime.feature_cache import image_key

    if not isinstance(getattr(image, "data", image), np.ndarray):
        return False  # lazy or a pyramid: reading it may take long
    image = as_image(image)
    if tile_grid(image_hw(image), TileOptions(), model.image_size) is not None:
        return True
    return model.features.in_memory(image_key(image, model.image_size))
