"""A target's files: which it owes, the one order they are written in, and when it is complete.

A target owes its label file and, when the run finds objects, its objects (``<name>_objects``
labels and ``.csv`` table). They are written objects first and labels last, each atomically
(temporary file, then rename); a target is complete when every file it owes exists and reads
back, whatever the order a crash left them in. Files for other tools (GeoJSON, COCO) are made
from these and are the exports' business (:class:`~napari_sansa.files.outputs.RunExports`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.outputs import is_complete, objects_paths
from napari_sansa.files.overwrite import refuse_existing


@dataclass(frozen=True)
class TargetFiles:
    """The files of one target: ``labels`` and, with objects, ``objects`` (labels, table)."""

    target: Path
    labels: Path
    objects: tuple[Path, Path] | None = None

    @classmethod
    def of(cls, target: str | os.PathLike, labels: str | os.PathLike, instances: bool) -> TargetFiles:
        """A target's files: its ``labels`` and, with ``instances``, ``<stem>_objects.tif`` and
        ``.csv`` beside them (named by :func:`~napari_sansa.files.outputs.objects_paths`)."""
        target, labels = Path(target), Path(labels)
        return cls(target, labels, objects_paths(labels.parent, target.stem) if instances else None)

    def owed(self) -> list[Path]:
        """Every file, in the order they are written: objects (labels, table), then the labels."""
        return [*(self.objects or ()), self.labels]

    def complete(self) -> bool:
        """Whether every file exists and reads back (a file cut short does not)."""
        return all(reads_back(path) for path in self.owed())

    def present(self, names: set[str]) -> bool:
        """Whether every file is among ``names`` (a folder's listing: no file is opened)."""
        return all(path.name in names for path in self.owed())


def reads_back(path: Path) -> bool:
    """Whether an output exists and reads back: a label image or store, or an object table."""
    if path.suffix.lower() != ".csv":
        return is_complete(path)
    import pandas as pd

    try:
        return "label" in pd.read_csv(path, nrows=1).columns
    except (OSError, ValueError, pd.errors.ParserError):
        return False


def refuse_written(files: Iterable[TargetFiles], overwrite: bool = False) -> None:
    """Refuse (``OutputExists``) before any work when a target's files exist, unless ``overwrite``."""
    refuse_existing([path for f in files for path in f.owed()], "output files", overwrite=overwrite)


def write_target(
    files: TargetFiles, labels: Any, objects: Any = None, *, replace: bool = False
) -> list[Path]:
    """Write a target's files in their one order, each atomically: its objects (``(instance
    labels, table)``), then its labels. ``replace``: files that exist are replaced."""
    from napari_sansa.files.images import write_labels
    from napari_sansa.files.objects import write_objects_to

    written = []
    if files.objects is not None:
        if objects is None:
            raise SansaError(f"{files.target.name}: its objects were not found; its labels were not written.")
        written += write_objects_to(files.objects, *objects, overwrite=replace)
    written.append(write_labels(files.labels, labels, overwrite=replace))
    return written


def write_prediction(
    files: TargetFiles, prediction: Any, instances: str | None, replace: bool = False
) -> Any:
    """A prediction's files (its objects by ``instances``, "watershed" or "sam", when the target
    owes them); returns the objects (or None)."""
    objects = prediction.instances(instances) if instances and files.objects is not None else None
    write_target(files, prediction.labels, objects, replace=replace)
    return objects


def unfinished(files: Sequence[TargetFiles]) -> list[int]:
    """Indices of the targets that are not complete (checked here, in this process)."""
    from napari_sansa.files.outputs import existing

    names = {folder: existing(folder) for folder in {p.parent for f in files for p in f.owed()}}
    listed = {p for folder, found in names.items() for p in (folder / n for n in found)}
    return [i for i, f in enumerate(files) if not (set(f.owed()) <= listed and f.complete())]
