"""Results scored against a ground truth, for the review list, as a job for a worker (no Qt).

The widget takes each result's plane and its truth's on napari's thread; the IoUs are measured
here, in a worker, and the review list shows them when they are ready.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.progress import Progress


@dataclass(frozen=True)
class TruthPair:
    """A result's labels and its truth's (NumPy, or lazy arrays read here), and how the truth
    is read (the references' mask mode) and named in messages."""

    true: object
    predicted: object
    mask_mode: str
    name: str


def mean_iou(pair: TruthPair) -> float | None:
    """The result's mean IoU over the classes in it or in its truth (None: they do not fit)."""
    from napari_sansa.engine.metrics.scores import score_classes
    from napari_sansa.engine.metrics.truth import truth_from_labels

    true, predicted = np.asarray(pair.true), np.asarray(pair.predicted)
    if true.shape != predicted.shape:
        return None
    try:
        classes = truth_from_labels(true, pair.mask_mode, source=pair.name).classes
    except SansaError:
        return None
    ious = score_classes(predicted, classes)["iou"].dropna()
    return float(ious.mean()) if len(ious) else None


def measure_ious(pairs: dict[Hashable, TruthPair]) -> Generator[Progress, None, dict[Hashable, float | None]]:
    """In a worker: :func:`mean_iou` of each pair (by its key), announcing each."""
    out = {}
    for done, (key, pair) in enumerate(pairs.items()):
        yield Progress(done, len(pairs), "Scoring the results against the ground truth")
        out[key] = mean_iou(pair)
    return out
