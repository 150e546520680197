"""Exporting a run (its result layers and its record) and loading a record back.

A record recreates the run's references as prompt layers and shows its model settings, so
the run can be repeated. :class:`RunFileButtons` is the widget's Export… / Load run… row:
it asks for the folder or the file and reports the outcome as a notification.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QMessageBox, QPushButton, QWidget

from ..engine.errors import SansaError
from . import layers as L
from . import notifications
from .model_panel import ModelPanel
from .record import RecordedReference, export_labels, read_record, write_record
from .runs import recreate_reference

RecordParts = tuple[dict, dict, list[RecordedReference], list[dict]]  # what runs.record_parts returns


def export_run(
    viewer,
    folder: str | os.PathLike,
    record: Callable[[], RecordParts],
    overwrite: bool = False,
    objects: Callable[[], list[Path]] | None = None,
) -> list[Path]:
    """Write every result layer (one file per image or stack), then the run record ``record()`` gives
    (and, with ``objects``, what it writes: the objects layers and their tables)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for layer in L.image_layers(viewer):
        result = L.result_layer(viewer, L.layer_id(layer))
        if result is not None:
            results[layer.name] = np.asarray(result.data)
    if not results:
        raise SansaError("There is nothing to export yet: run SANSA first.")
    written = export_labels(results, folder, overwrite=overwrite)
    written += objects() if objects is not None else []
    written.append(write_record(folder, *record()))
    return written


def load_run(viewer, path: str | os.PathLike, model_panel: ModelPanel, add_prompt_layer: Callable) -> int:
    """Recreate the references (and model settings) of an exported run; returns how many."""
    record = read_record(path)
    images = {layer.name: layer for layer in L.image_layers(viewer)}
    missing = sorted({r.image for r in record.references if r.image not in images})
    if missing:
        raise SansaError(f"Open these images first (by the same layer names): {', '.join(missing)}.")
    model_panel.apply_record(record.model, record.settings)
    for ref in record.references:
        recreate_reference(images[ref.image], ref, add_prompt_layer)
    return len(record.references)


class RunFileButtons(QWidget):
    """Export… and Load run…: file dialogs around ``export(folder, overwrite)`` and ``load(path)``."""

    def __init__(self, export: Callable[..., list[Path]], load: Callable[[str], int]) -> None:
        super().__init__()
        self._export, self._load = export, load
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        export_button, load_button = QPushButton("Export…"), QPushButton("Load run…")
        export_button.clicked.connect(self._export_clicked)
        load_button.clicked.connect(self._load_clicked)
        row.addWidget(export_button)
        row.addWidget(load_button)

    def _export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export labels to")
        if not folder:
            return
        try:
            written = self._export(folder)
        except SansaError as exc:
            if (
                "already exist" in str(exc)
                and QMessageBox.question(self, "Overwrite?", f"{exc}\n\nOverwrite them?") == QMessageBox.Yes
            ):
                written = self._export(folder, overwrite=True)
            else:
                notifications.error(str(exc))
                return
        notifications.info(f"Exported {len(written) - 1} label file(s) and the run record to {folder}")

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a run record", "", "Run record (*.json)")
        if path:
            try:
                count = self._load(path)
            except SansaError as exc:
                notifications.error(str(exc))
                return
            notifications.info(f"Loaded {count} reference(s); press Run to repeat the run.")
