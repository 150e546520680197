"""A live preview's work, without Qt: one target predicted from the references as they are now.

The widget snapshots the references and the looked-at target on the main thread
(:func:`preview_request`), and :func:`predict_preview` runs in a worker. The target's features
come from the model's feature cache and unchanged references' memories from its memory cache,
so an update after a stroke costs the changed reference's memory encoding and one propagation,
no encoder pass (``PreviewResult.encoder_passes`` says how many it took).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey

if TYPE_CHECKING:  # torch loads in the worker, not when napari starts
    from napari_sansa.engine.inputs.prompts import Reference
    from napari_sansa.engine.model import Sansa


@dataclass(frozen=True, eq=False)
class PreviewRequest:
    """What to preview: one target plane, from these references, labelled at ``threshold`` (a logit)."""

    generation: int  # the change it answers: a newer one makes its result stale
    key: TargetKey
    source: ImageSource
    references: list[Reference]
    threshold: float = 0.0
    class_names: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PreviewResult:
    request: PreviewRequest
    model: Sansa
    labels: np.ndarray
    logits: dict[int, np.ndarray]
    seconds: float  # the prediction, model loading excluded
    encoder_passes: int  # during this prediction: 0 once the target and references are cached


def preview_request(
    job: Job, key: TargetKey, generation: int, threshold: float = 0.0
) -> PreviewRequest | None:
    """The request for one of the job's targets (``None`` if it is not one, or nothing is annotated)."""
    source = dict(job.targets).get(key)
    if source is None or not job.references:
        return None
    return PreviewRequest(generation, key, source, list(job.references), threshold, dict(job.class_names))


def predict_preview(get_model: Callable[[], Sansa], request: PreviewRequest) -> PreviewResult:
    """Predict the request's target (loading the model first if needed), whole: a large image is
    shrunk to the model's input here, where a Run segments it in tiles."""
    from napari_sansa.engine.runs.thresholds import labels_from_logits

    model = get_model()
    before = model.encoder_passes
    start = time.perf_counter()
    image = request.source.image(request.key.plane)
    prediction = next(iter(model.propagate(request.references, [image], tile_size=None)))
    labels = prediction.labels
    if request.threshold != model.config.threshold:
        labels = labels_from_logits(prediction.logits, request.threshold, labels.dtype)
    seconds = time.perf_counter() - start
    return PreviewResult(request, model, labels, prediction.logits, seconds, model.encoder_passes - before)
