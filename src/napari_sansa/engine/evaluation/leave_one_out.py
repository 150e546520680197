"""Leave-one-out: each reference annotated with a mask, predicted from the others and scored.

The honest estimate of quality before a run over many images: a reference the others cannot
predict well is one that disagrees with them (a wrong or sloppy mask, an unusual image), or a
sign that more references are needed. A generator, so that a front end can show progress
after each reference and stop between two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from napari_sansa.engine.callbacks import Cancel, is_cancelled
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.prompts import Mask, Reference
from napari_sansa.engine.metrics.scores import score_classes, score_objects, true_objects

if TYPE_CHECKING:
    from napari_sansa.engine.model import Prediction, Sansa
    from napari_sansa.engine.objects.from_prediction import Objects


@dataclass(frozen=True, eq=False)
class HeldOut:
    """One reference predicted from the others: ``index`` in the references, its own masks as
    class labels (``truth``), the ``prediction``, and the scores: ``classes`` as
    :func:`score_classes` gives them (only the classes its masks annotate), ``objects`` as
    :func:`score_objects` (only when instances were asked for, with ``instances`` the objects
    of the classes scored)."""

    index: int
    truth: np.ndarray
    prediction: Prediction
    classes: pd.DataFrame
    objects: pd.DataFrame | None = None
    instances: Objects | None = None


def masked_classes(reference: Reference) -> dict[int, np.ndarray]:
    """The classes a reference annotates wholly with masks, as boolean masks (a class also
    given by points, boxes or scribbles has no complete truth, so it is left out)."""
    out = {}
    for class_id, prompts in reference.prompts.items():
        items = prompts if isinstance(prompts, (list, tuple)) else [prompts]
        if items and all(isinstance(p, Mask) for p in items):
            out[int(class_id)] = np.logical_or.reduce([np.asarray(p.mask) != 0 for p in items])
    return out


def mask_references(references: Sequence[Reference]) -> list[int]:
    """Indices of the references that leave-one-out can score: those with a mask."""
    return [i for i, reference in enumerate(references) if masked_classes(reference)]


def _truth_labels(classes: dict[int, np.ndarray]) -> np.ndarray:
    shape = next(iter(classes.values())).shape
    truth = np.zeros(shape, np.int32)
    for class_id, mask in sorted(classes.items()):
        truth[mask] = class_id
    return truth


def leave_one_out(
    model: Sansa,
    references: Sequence[Reference],
    *,
    instances: str | None = None,
    thresholds: Sequence[float] = (0.5, 0.75, 0.9),
    cancel: Cancel = None,
) -> Iterator[HeldOut]:
    """Predict each mask reference from all the other references and score it against its mask.

    Yields a :class:`HeldOut` per reference of :func:`mask_references`, in order (their count
    is the progress total). A class that only the held-out reference annotates cannot be
    predicted and scores 0. With ``instances`` ("watershed" or "sam") the prediction's objects
    are matched against the mask's connected components (:func:`score_objects` at
    ``thresholds``). ``cancel`` is checked before each reference and inside the model run.
    """
    references = list(references)
    held = mask_references(references)
    if not held:
        raise SansaError(
            "No reference is annotated with a mask: leave-one-out scores a reference's prediction "
            "against its mask."
        )
    if len(references) < 2:
        raise SansaError("Leave-one-out needs at least two references: one to predict from, one to score.")
    for index in held:
        if is_cancelled(cancel):
            return
        others = references[:index] + references[index + 1 :]
        predictions = list(model.propagate(others, [references[index].image], cancel=cancel))
        if not predictions:  # cancelled inside the run
            return
        prediction = predictions[0]
        classes = masked_classes(references[index])
        truth = _truth_labels(classes)
        labels = np.asarray(prediction.labels)
        scores = score_classes(np.where(np.isin(labels, list(classes)), labels, 0), truth, classes)
        objects = found = None
        if instances is not None:
            found = _of_classes(prediction.instances(instances), classes)
            objects = score_objects(found.labels, true_objects(truth), thresholds)
        yield HeldOut(index, truth, prediction, scores, objects, found)


def _of_classes(objects: Objects, classes) -> Objects:
    """The objects of the given classes only (others have no truth to be scored against)."""
    table = objects.table[objects.table["class"].isin(list(classes))]
    labels = np.where(np.isin(objects.labels, table["label"].to_numpy()), objects.labels, 0)
    return type(objects)(labels, table.reset_index(drop=True))
