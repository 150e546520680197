"""What a run gives back: a target's prediction, built in one place; a run's cost."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from napari_sansa.engine.objects.from_prediction import Objects, prediction_objects
from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE
from napari_sansa.engine.runs.estimates import Estimate
from napari_sansa.engine.runs.thresholds import labels_from_logits
from napari_sansa.engine.runtime.runtime import HasRuntime, Outcome, PreparedImage, Runtime

__all__ = ["Estimate", "Prediction", "Source", "labels_from_logits", "prediction"]


@dataclass(frozen=True, eq=False)
class Source:
    """Where a prediction came from, for :meth:`Prediction.instances`: the target image (its
    pixels for the object table's intensities, its key for its cached features) and a *weak*
    reference to the runtime that predicted it, so that a kept result never keeps the model,
    its network and its caches alive."""

    target: PreparedImage
    runtime: weakref.ref[Runtime] | None = None

    def live_runtime(self) -> Runtime | None:
        """The runtime, if the model that made the prediction still exists."""
        return self.runtime() if self.runtime is not None else None


@dataclass(eq=False)
class Prediction:
    """The result for one target image.

    ``labels`` holds class ids (0 = background; where classes overlap, the highest logit wins),
    ``logits`` each class's logits at the target's size, ``scores`` each class's confidence in
    [0, 1] (predicted IoU times mask stability), for ranking targets for review.
    A prediction from a model also has its ``source``: the target image and a weak reference
    to the model, for :meth:`instances` (it does not keep the model alive).
    A large image segmented in tiles has ``tiles`` > 1 (its encoder passes), ``labels`` in the
    array the caller gave (e.g. zarr), ``logits`` only if asked, and ``missing``: the windows
    ``(rows, cols)`` of tiles that could not be read (left 0).
    """

    index: int
    labels: np.ndarray
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    source: Source | None = field(default=None, repr=False)
    tiles: int = 1
    missing: tuple[tuple[slice, slice], ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every pixel was segmented (no tile was left out because it could not be read)."""
        return not self.missing

    def __getstate__(self) -> dict:
        """Pickled (e.g. sent between processes) with its image but without the model's reference."""
        source = self.source and replace(self.source, runtime=None)
        return {**self.__dict__, "source": source}

    def instances(
        self,
        method: str = "watershed",
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        class_names: Mapping[int, str] | None = None,
        model: HasRuntime | None = None,
    ) -> Objects:
        """Each object its own label: ``(labels, table)``, an :class:`~.objects.Objects`.

        "watershed" splits each class's mask where objects touch; "sam" outlines each of those
        seeds with SAM2's decoder on the target's features, from the cache of the model that
        made the prediction (no encoder pass while it holds them). The prediction keeps that
        model only weakly: if it is gone (or the prediction was pickled), pass ``model``.
        Objects under ``min_size`` pixels are dropped. See :mod:`napari_sansa.engine.objects.from_prediction`.
        """
        target = self.source.target if self.source is not None else None
        runtime = model.runtime if model is not None else self.source and self.source.live_runtime()
        return prediction_objects(
            self.labels,
            self.logits,
            self.scores,
            method,
            min_size=min_size,
            class_names=class_names,
            target=target,
            runtime=runtime,
            tiles=self.tiles,
        )

    @property
    def score(self) -> float:
        """The lowest class score: how much the least certain class needs a look."""
        return min(self.scores.values()) if self.scores else 1.0


def prediction(
    index: int,
    outcome: Outcome,
    *,
    runtime: Runtime | None = None,
    target: PreparedImage | None = None,
    tiles: int = 1,
    missing: tuple[tuple[slice, slice], ...] = (),
) -> Prediction:
    """The one place a run turns an outcome into a :class:`Prediction`: the target is kept
    without its model input, the runtime only weakly."""
    source = None
    if target is not None:
        source = Source(target.without_input(), weakref.ref(runtime) if runtime is not None else None)
    return Prediction(
        index=index,
        labels=outcome.labels,
        logits=outcome.logits,
        scores=outcome.scores,
        source=source,
        tiles=tiles,
        missing=missing,
    )
