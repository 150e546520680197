"""The work a run does in its background thread, as a generator of events (no Qt).

The widget wraps :func:`run_job` in napari's ``thread_worker`` and handles each event on the
main thread; tests and scripts can drain it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .session import Job, PlaneImages, StackRun, TargetKey

if TYPE_CHECKING:  # torch loads in the worker, not when napari starts
    from ..engine.model import Prediction, Sansa


@dataclass(frozen=True)
class ModelReady:
    model: Sansa


@dataclass(frozen=True)
class Started:
    total: int


@dataclass(frozen=True)
class Estimated:
    text: str


@dataclass(frozen=True)
class TargetDone:
    key: TargetKey
    prediction: Prediction
    objects: object = None  # the prediction's objects, when the run asks for them


@dataclass(frozen=True)
class TargetFailed:
    key: TargetKey
    message: str


def run_job(
    get_model: Callable[[], Sansa],
    job: Job,
    cancel: threading.Event,
    ready: threading.Event | None = None,
    objects: Callable[[Prediction], object] | None = None,
) -> Iterator[object]:
    """Load the model if needed, then segment the job's targets one at a time.

    With ``objects``, each prediction's objects are found here too (off the main thread).

    With ``ready``, wait for it first: the widget adds result layers meanwhile, faster with the
    CPU to itself. A run cancelled by then stops before loading anything.
    """
    if ready is not None:
        ready.wait()
    if cancel.is_set():
        return
    model = get_model()
    yield ModelReady(model)
    yield Estimated(str(model.estimate(job.references, len(job.targets))))
    yield Started(len(job.targets))
    failed: list[TargetFailed] = []
    keys = [key for key, _ in job.independent()]
    report = lambda index, error: failed.append(TargetFailed(keys[index], str(error)))  # noqa: E731
    if keys:
        for prediction in model.propagate(
            job.references, job.target_images(), cancel=cancel, on_error=report
        ):
            yield from _drain(failed)
            found = objects(prediction) if objects is not None else None
            yield TargetDone(keys[prediction.index], prediction, found)
    for stack in job.stacks:
        yield from _through(model, stack, cancel, failed, objects)
    yield from _drain(failed)


def _through(
    model: Sansa, stack: StackRun, cancel: threading.Event, failed: list, objects=None
) -> Iterator[object]:
    """A stack's planes through SAM2's memory, from its annotated planes (or a corrected one)."""
    if cancel.is_set():
        return
    image_id = stack.source.image_id

    def report(index: int, error) -> None:
        failed.append(TargetFailed(TargetKey(image_id, (index,)), str(error)))

    both_ways = stack.start is None
    for prediction in model.propagate_stack(
        PlaneImages(stack.source),
        stack.annotations,
        both_ways=both_ways,
        start=stack.start,
        skip=stack.skip,
        cancel=cancel,
        on_error=report,
    ):
        yield from _drain(failed)
        found = objects(prediction) if objects is not None else None
        yield TargetDone(TargetKey(image_id, (prediction.index,)), prediction, found)


def _drain(failed: list) -> Iterator[object]:
    while failed:
        yield failed.pop(0)
