"""What a run gives back: a target's prediction, built in one place; a run's cost."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.engine.objects.from_prediction import Objects, prediction_objects
from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE
from napari_sansa.engine.runtime.runtime import HasRuntime, Outcome, PreparedImage, Runtime


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


def labels_from_logits(logits: Mapping[int, np.ndarray], threshold: float, dtype=None) -> np.ndarray:
    """Class ids from each class's logits, as a prediction's labels are made: where the highest
    logit is above ``threshold``, its class; elsewhere 0. For re-labelling at another threshold
    without running the model again."""
    class_ids = list(logits)
    stacked = np.stack([np.asarray(logits[c], dtype=np.float32) for c in class_ids])
    best = stacked.argmax(axis=0)
    lookup = np.asarray(class_ids, dtype=dtype or label_dtype(class_ids))
    return np.where(stacked.max(axis=0) > threshold, lookup[best], 0).astype(lookup.dtype)


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


@dataclass(frozen=True)
class Estimate:
    """What a run of ``n_targets`` images will cost, from timings measured on this machine."""

    n_targets: int
    seconds_per_target: float
    feature_bytes_per_image: int
    cache_bytes: int
    encoder_passes: int | None = None  # images plus the extra tiles of large ones
    tiled_bytes: int = 0  # the most that one tiled target holds while it is segmented

    @property
    def run_bytes(self) -> int:
        """Memory the run needs beyond the loaded model and one encoder pass's working memory:
        cached features and tiled work (tiles in flight, blending)."""
        return self.memory_bytes + self.tiled_bytes

    @property
    def seconds(self) -> float:
        return self.seconds_per_target * self.n_targets

    @property
    def memory_bytes(self) -> int:
        """Feature memory the run may hold (bounded by the cache budget)."""
        return min(self.feature_bytes_per_image * self.passes, self.cache_bytes)

    @property
    def passes(self) -> int:
        return self.n_targets if self.encoder_passes is None else self.encoder_passes

    def __str__(self) -> str:
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min"
        tiles = f" in {self.passes} tiles" if self.passes > self.n_targets else ""
        return (
            f"about {when} for {self.n_targets} image(s){tiles} ({self.seconds_per_target:.1f} s each), "
            f"up to {self.memory_bytes / 2**30:.1f} GiB of cached features"
            + (f" and {self.tiled_bytes / 2**30:.1f} GiB for tiles" if self.tiled_bytes else "")
        )
