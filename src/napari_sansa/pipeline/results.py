"""One estimate for a run made of several model calls, the same for every front end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any


def combined_estimate(estimates: Sequence[Any]) -> Any:
    """One :class:`~napari_sansa.engine.runs.results.Estimate` for a run of several model calls
    (groups of targets with their own tiling, stacks): targets, time and encoder passes added."""
    if len(estimates) == 1:
        return estimates[0]
    n = sum(e.n_targets for e in estimates)
    seconds = sum(e.seconds for e in estimates)
    passes = sum(e.passes for e in estimates)
    return replace(estimates[0], n_targets=n, seconds_per_target=seconds / max(n, 1), encoder_passes=passes)
