"""Few-shot segmentation metrics as the SANSA paper counts them: mIoU and FB-IoU over episodes.

An episode predicts one class on one query image from a few support images. Its foreground
(the class) and background pixel counts are kept, not its IoU: the paper's mIoU is the mean
over classes of each class's IoU from the intersection and union *summed over its episodes*
(a large object weighs more than a small one of the same class), and its FB-IoU the mean of
the foreground and background IoUs summed over all episodes. Figures are percentages.

Numbers agree with the reference's evaluator (util/metrics.py of github.com/ClaudiaCuttano/SANSA,
from HSNet/Matcher) when every class of the split has at least one episode, as in its full test
runs; with fewer episodes the reference counts a class without episodes as IoU 0, here a class
counts only if it has episodes unless ``classes`` names the whole split.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from napari_sansa.engine.errors import SansaError

AREAS = ("intersection", "union", "background_intersection", "background_union")


def episode_areas(predicted: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Foreground and background intersection and union (pixel counts) of one binary episode.

    ``predicted`` and ``truth``: masks of the same shape, nonzero = the class.
    """
    pred, true = np.asarray(predicted) != 0, np.asarray(truth) != 0
    if pred.shape != true.shape:
        raise SansaError(f"Prediction {pred.shape} and truth {true.shape} must have the same shape.")
    both, either = int((pred & true).sum()), int((pred | true).sum())
    return {
        "intersection": both,
        "union": either,
        "background_intersection": int(pred.size - either),
        "background_union": int(pred.size - both),
    }


def _iou(intersection, union):
    """IoU with an empty union counted as 0, as the reference does (it divides by max(union, 1))."""
    return np.asarray(intersection, float) / np.maximum(np.asarray(union, float), 1.0)


class FewShotMeter:
    """Episodes' areas, one row each; the paper's figures from them.

    ``add`` one episode at a time; :meth:`frame` is the table (one row per episode: its
    class, extra columns such as the file names, the four areas and the episode's own
    foreground ``iou``), which :func:`class_iou`, :func:`mean_iou` and :func:`fb_iou` read.
    """

    def __init__(self) -> None:
        self._rows: list[dict] = []

    def add(self, class_name: str, predicted: np.ndarray, truth: np.ndarray, **extra) -> dict:
        """Count one episode; returns its row."""
        areas = episode_areas(predicted, truth)
        row = {
            "episode": len(self._rows),
            "class": str(class_name),
            **extra,
            **areas,
            "iou": float(_iou(areas["intersection"], areas["union"])),
        }
        self._rows.append(row)
        return row

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=None if self._rows else ["episode", "class", *AREAS, "iou"])

    @property
    def miou(self) -> float:
        return mean_iou(self.frame())

    @property
    def fb_iou(self) -> float:
        return fb_iou(self.frame())


def _check(episodes: pd.DataFrame) -> None:
    missing = [c for c in ("class", *AREAS) if c not in episodes.columns]
    if missing:
        raise SansaError(f"The episode table lacks the column(s) {', '.join(missing)}.")


def class_iou(episodes: pd.DataFrame, classes: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per class: ``class, episodes, intersection, union, iou`` (iou in %, from the sums).

    ``classes``: every class of the split, in order; those without episodes get IoU 0, as in
    the reference. Default: the classes that have episodes, sorted.
    """
    _check(episodes)
    sums = episodes.groupby("class", sort=True).agg(
        episodes=("intersection", "size"), intersection=("intersection", "sum"), union=("union", "sum")
    )
    if classes is not None:
        sums = sums.reindex([str(c) for c in classes], fill_value=0)
    sums["iou"] = 100 * _iou(sums["intersection"], sums["union"])
    return sums.rename_axis("class").reset_index()


def mean_iou(episodes: pd.DataFrame, classes: Iterable[str] | None = None) -> float:
    """The paper's mIoU (%): the mean over classes of :func:`class_iou`."""
    table = class_iou(episodes, classes)
    return float(table["iou"].mean()) if len(table) else float("nan")


def fb_iou(episodes: pd.DataFrame) -> float:
    """The paper's FB-IoU (%): the mean of the foreground and the background IoU, each from the
    intersection and union summed over all episodes."""
    _check(episodes)
    if not len(episodes):
        return float("nan")
    fg = _iou(episodes["intersection"].sum(), episodes["union"].sum())
    bg = _iou(episodes["background_intersection"].sum(), episodes["background_union"].sum())
    return float(100 * (fg + bg) / 2)
