"""What a run does with predictions before they are written or shown, the same for every front
end: labels at a chosen threshold, and one estimate for a run made of several model calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any


def at_threshold(prediction: Any, threshold: float | None, own: float) -> Any:
    """``prediction`` labelled at ``threshold`` (a logit) instead of the model's ``own``; as it
    is without a threshold, without logits, or segmented in tiles (their logits are not kept)."""
    if threshold is None or threshold == own or not prediction.logits:
        return prediction
    if getattr(prediction, "tiles", 1) > 1:
        return prediction
    from napari_sansa.engine.runs.results import labels_from_logits

    labels = labels_from_logits(prediction.logits, threshold, prediction.labels.dtype)
    return replace(prediction, labels=labels)


def combined_estimate(estimates: Sequence[Any]) -> Any:
    """One :class:`~napari_sansa.engine.runs.results.Estimate` for a run of several model calls
    (groups of targets with their own tiling, stacks): targets, time and encoder passes added."""
    if len(estimates) == 1:
        return estimates[0]
    n = sum(e.n_targets for e in estimates)
    seconds = sum(e.seconds for e in estimates)
    passes = sum(e.passes for e in estimates)
    return replace(estimates[0], n_targets=n, seconds_per_target=seconds / max(n, 1), encoder_passes=passes)
