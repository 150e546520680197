"""*Suggest next*: which of a run's results to annotate, and the one line that says why (no Qt).

The candidates are the job's targets that are not references (never an annotated plane) and
that the last run gave a confidence score; the engine ranks them
(:mod:`napari_sansa.engine.runs.annotation_ranking`) from those scores and the cached features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey

if TYPE_CHECKING:  # torch loads when a suggestion is asked for, not when napari starts
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
