"""The work a run does in its background thread, as a generator of events (no Qt).

The widget wraps :func:`run_job` in napari's ``thread_worker`` and handles each event on the
main thread; tests and scripts can drain it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from napari_sansa.pipeline.results import combined_estimate
from napari_sansa.plugin.core.session import Job, PlaneImages, StackRun, TargetKey

if TYPE_CHECKING:  # torch loads in the worker, not when napari starts
    from napari_sansa.engine.model import Prediction, Sansa


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
    threshold: float | None = None  # the logit its labels (and objects) were made at


@dataclass(frozen=True)
class TargetFailed:
    key: TargetKey
    message: str


@dataclass(frozen=True)
class TileDone:
    """A tile of a large target is written into its labels (sent from the worker thread)."""

    key: TargetKey
    done: int
    total: int


@dataclass(frozen=True)
class TilesMissing:
    """Tiles of a target that could not be read: left 0, the rest of the target was written."""

    key: TargetKey
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Notice:
    """Something the user should know about the run (not an error)."""

    text: str


NO_TILED_OBJECTS = (
    "Objects are not split on images segmented in tiles (their labels may not fit in memory); "
    "their classes are shown."
)

Output = Callable[[TargetKey, tuple, object], object]
Threshold = float | Callable[[], float] | None


def run_job(
    get_model: Callable[[], Sansa],
    job: Job,
    cancel: threading.Event,
    ready: threading.Event | None = None,
    objects: Callable[[Prediction], object] | None = None,
    output: Output | None = None,
    notify: Callable[[object], None] | None = None,
    threshold: Threshold = None,
) -> Iterator[object]:
    """Load the model if needed, then segment the job's targets one at a time.

    With ``objects``, each prediction's objects are found here too (off the main thread);
    not for tiled targets, whose labels may not fit in memory.

    With ``ready``, wait for it first: the widget adds result layers meanwhile, faster with the
    CPU to itself. A run cancelled by then stops before loading anything.

    Tiled targets (``job.tiling``) write their labels into ``output(key, (H, W), dtype)`` tile
    by tile, and ``notify`` receives a :class:`TileDone` after each tile, from this thread
    (the widget forwards it to the main thread at once, while the target is still running).

    With ``threshold`` (a logit, or a function giving the slider's now), each prediction is
    labelled at it as it comes (tiled targets keep the model's own); ``TargetDone.threshold`` says which.
    """
    if ready is not None:
        ready.wait()
    if cancel.is_set():
        return
    model = get_model()
    yield ModelReady(model)
    yield Estimated(str(_estimate(model, job)))
    yield Started(len(job.targets))
    told = False  # about objects of tiled images
    for options, group in _groups(job):
        if cancel.is_set():
            break
        keys = [key for key, _ in group]
        failed: list[TargetFailed] = []
        report = partial(_report, failed, keys)
        images = (source.image(key.plane) for key, source in group)
        tiling = _tile_arguments(options, keys, output, notify)
        run = model.propagate(
            job.references, images, cancel=cancel, on_error=report, on_tile_error=report, **tiling
        )
        for prediction in run:  # a tile's error comes before its target (see _settle)
            key = keys[prediction.index]
            yield from _settle(failed, keys, prediction.index)
            tiled = getattr(prediction, "tiles", 1) > 1
            prediction, at = _at_threshold(prediction, model, threshold)
            found = objects(prediction) if objects is not None and not tiled else None
            if objects is not None and tiled and not told:
                told = True
                yield Notice(NO_TILED_OBJECTS)
            yield TargetDone(key, prediction, found, at)
        yield from _drain(failed)
    failed = []
    for stack in job.stacks:
        yield from _through(model, stack, cancel, failed, objects, threshold)
    yield from _drain(failed)


def _report(failed: list[TargetFailed], keys: list[TargetKey], index: int, error) -> None:
    failed.append(TargetFailed(keys[index], str(error)))


def _groups(job: Job) -> list[tuple[dict, list]]:
    """The independent targets, grouped by their tiling options (one ``propagate`` call each)."""
    groups: dict[tuple, tuple[dict, list]] = {}
    for key, source in job.independent():
        options = job.tiling.get(source.image_id, {})
        groups.setdefault(tuple(sorted(options.items(), key=str)), (options, []))[1].append((key, source))
    return list(groups.values())


def _tile_arguments(options: dict, keys: list[TargetKey], output: Output | None, notify) -> dict:
    """``propagate``'s tiling keywords for one group of targets (none without tiling options)."""
    if not options:
        return {}
    arguments = dict(options)
    if output is not None:
        arguments["output"] = lambda index, hw, dtype: output(keys[index], hw, dtype)
    if notify is not None:
        arguments["on_tile"] = lambda index, done, total: notify(TileDone(keys[index], done, total))
    return arguments


def _estimate(model: Sansa, job: Job):
    """The engine's estimate for the whole job (tiles counted with each group's options)."""
    parts: list[tuple[dict, object]] = [
        (options, [source.image(key.plane) for key, source in group]) for options, group in _groups(job)
    ]
    through = sum(len(stack.keys) for stack in job.stacks)
    if through:
        parts.append(({}, through))
    return combined_estimate(
        [model.estimate(job.references, targets, **options) for options, targets in parts]
    )


def _settle(failed: list[TargetFailed], keys: list[TargetKey], index: int) -> Iterator[object]:
    """Report what failed before target ``index`` came: its unreadable tiles (it came all the
    same), and the earlier targets that were skipped. Later targets' reports wait for them."""
    position = {key: i for i, key in enumerate(keys)}
    mine = [f.message for f in failed if position[f.key] == index]
    earlier = [f for f in failed if position[f.key] < index]
    failed[:] = [f for f in failed if position[f.key] > index]
    yield from earlier
    if mine:
        yield TilesMissing(keys[index], tuple(mine))


def _at_threshold(prediction: Prediction, model: Sansa, threshold: Threshold) -> tuple[Prediction, float]:
    """The prediction labelled at ``threshold`` (a logit, or a function giving it now), and the
    logit its labels are at. At the model's own threshold it is the engine's prediction as it is;
    at another, its logits become float16, as the widget keeps them, and its labels are made from
    those: relabelling from the kept logits at that threshold gives the same labels."""
    wanted = threshold() if callable(threshold) else threshold
    own = model.config.threshold
    if wanted is None or wanted == own or not prediction.logits or getattr(prediction, "tiles", 1) > 1:
        return prediction, own
    import numpy as np

    from napari_sansa.engine.runs.thresholds import labels_from_logits

    logits = {c: np.asarray(v, dtype=np.float16) for c, v in prediction.logits.items()}
    labels = labels_from_logits(logits, wanted, prediction.labels.dtype)
    return replace(prediction, labels=labels, logits=logits), wanted


def _through(
    model: Sansa,
    stack: StackRun,
    cancel: threading.Event,
    failed: list,
    objects=None,
    threshold: Threshold = None,
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
        prediction, at = _at_threshold(prediction, model, threshold)
        found = objects(prediction) if objects is not None else None
        yield TargetDone(TargetKey(image_id, (prediction.index,)), prediction, found, at)


def _drain(failed: list) -> Iterator[object]:
    while failed:
        yield failed.pop(0)
