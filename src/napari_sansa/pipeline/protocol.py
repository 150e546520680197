"""What the pipeline calls on a model, as a small typed Protocol.

:class:`~napari_sansa.engine.model.Sansa` satisfies it; so may a model that runs elsewhere (a
remote model on a Dask server) without importing torch: nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from napari_sansa.engine.callbacks import Cancel, OnError, OnTileError

Output = Callable[[int, tuple[int, int], Any], Any]  # (target index, (H, W), dtype) -> array


class RunPrediction(Protocol):
    """What the pipeline reads of a prediction (:class:`~napari_sansa.engine.model.Prediction`)."""

    index: int  # the target's position in the run
    labels: Any  # class labels: an array, or for a target segmented in tiles its ``output``
    scores: dict[int, float]
    tiles: int
    missing: tuple

    def instances(self, method: str = ...) -> Any: ...


class RunModel(Protocol):
    """The model calls of a file run: an estimate first, then one propagation over the targets."""

    def estimate(
        self, references: Sequence[Any], targets: int | Sequence[Any], **tiling: Any
    ) -> Any: ...  # str() of it is the line the front ends show

    def propagate(
        self,
        references: Sequence[Any],
        targets: Iterable[Any],
        *,
        cancel: Cancel = None,
        on_error: OnError = None,
        on_tile_error: OnTileError = None,
        output: Output | None = None,
        **tiling: Any,
    ) -> Iterator[RunPrediction]: ...
