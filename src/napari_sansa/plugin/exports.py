"""Exporting a run (label files, its reference set, class names) and loading references back.

Export writes one label file per image or stack, the run's references as a reference set in
``references/`` and ``classes.csv`` when classes are named; it checks every file first and
writes nothing if one would be replaced without leave, then writes in a worker (napari's thread
only takes the layers' data), with a progress bar and Cancel. Loading takes a reference set (or an
older ``sansa_run.json``) and recreates its references as prompt layers: on the open images of
the same names, or else on the set's own images, added as new layers.
:class:`RunFileButtons` is the widget's Export… / Load references… row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_sansa.engine.errors import OutputExists, SansaError
from napari_sansa.engine.inputs.images import image_hw
from napari_sansa.files.class_table import CLASSES_FILE, planned_class_table, write_class_table
from napari_sansa.files.coco import COCO_FILE
from napari_sansa.files.images import write_labels
from napari_sansa.files.label_stores import write_labels_store
from napari_sansa.files.outputs import EXPORT_FORMATS, RunExports, safe_name
from napari_sansa.files.reference_sets import (
    RUN_RECORD_FORMAT,
    SET_FILE,
    ReferenceSet,
    check_set_folder,
    file_format,
    read_reference_set,
    save_references,
)
from napari_sansa.plugin import notifications
from napari_sansa.plugin.background import BackgroundJob
from napari_sansa.plugin.core.export_job import ExportPlan, ExportStep, write_export
from napari_sansa.plugin.core.record import (
    RECORD_NAME,
    RecordedReference,
    planned_labels,
    read_record,
)
from napari_sansa.plugin.core.runs import ExportParts, recreate_reference
from napari_sansa.plugin.core.work_queue import ModelOwner
from napari_sansa.plugin.panels.model import ModelPanel
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import is_lazy, snapshot
from napari_sansa.plugin.viewer.layer_data import reference_image_data
from napari_sansa.plugin.viewer.objects_layers import ObjectLayers

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


REFERENCES_FOLDER = "references"
EXPORT_CHOICES = {
    "geojson": "Also QuPath GeoJSON (<image>_objects.geojson)",
    "coco": "Also COCO (coco.json)",
}


def plan_export(
    viewer,
    folder: str | os.PathLike,
    parts: Callable[[], ExportParts],
    overwrite: bool = False,
    objects: Callable[[], list[Path]] | None = None,
    formats: Sequence[str] = (),
    object_layers: ObjectLayers | None = None,
) -> ExportPlan:
    """Check every file an export would write (refusing, before any is written, one that would
    be replaced without ``overwrite``) and take the layers' data now, on napari's thread; the
    plan's steps then write (:func:`~.core.export_job.write_export`, in a worker): every result
    layer, ``objects()``'s files (the objects layers and their tables), files for other tools
    (``formats``, :data:`EXPORT_FORMATS`: QuPath GeoJSON per image and/or one COCO file, of the
    objects in ``object_layers`` where an image has them, else of its class regions), and the
    run's reference set and class names ``parts()`` gives."""
    folder = Path(folder)
    results, large = {}, {}
    for layer in L.image_layers(viewer):
        result = L.result_layer(viewer, L.layer_id(layer))
        if result is not None and is_lazy(result.data):  # zarr-backed: streamed to OME-Zarr
            large[layer.name] = result
        elif result is not None:
            results[layer.name] = snapshot(result.data)  # a copy: painting goes on meanwhile
    if not results and not large:
        raise SansaError("There is nothing to export yet: run SANSA first.")
    run = parts()
    set_folder = folder / REFERENCES_FOLDER
    if run.references:
        check_set_folder(set_folder, overwrite)
    class_ids = [c for ref in run.references for c in ref.prompts]
    planned_class_table(folder, run.class_names, class_ids, overwrite)  # refuses before writing
    for_tools = _tool_exports(viewer, folder, run, formats, overwrite, object_layers)
    files = planned_labels(results, folder, overwrite)
    stores = planned_labels({n: r.data for n, r in large.items()}, folder, overwrite)
    steps = [
        ExportStep(name, partial(_write_labels, files[name], labels)) for name, labels in results.items()
    ]
    for name, result in large.items():
        write = partial(write_labels_store, result.data, stores[name], scale=result.scale, overwrite=True)
        steps.append(ExportStep(name, lambda write=write: [write()]))
    steps += [ExportStep("objects", objects)] if objects is not None else []
    steps += [ExportStep(", ".join(formats), for_tools)] if formats else []
    if run.references:
        steps.append(ExportStep("references", lambda: [_save_set(set_folder, run, overwrite)]))
    table = partial(write_class_table, folder, run.class_names, class_ids, overwrite)
    steps.append(ExportStep("class names", lambda: [p for p in [table()] if p is not None]))
    folder.mkdir(parents=True, exist_ok=True)
    return ExportPlan(folder, steps)


def _write_labels(path: Path, labels: np.ndarray) -> list[Path]:
    return [write_labels(path, labels, overwrite=True)]  # checked when planned


def _tool_exports(
    viewer, folder: Path, run: ExportParts, formats: Sequence[str], overwrite: bool, object_layers
) -> Callable[[], list[Path]]:
    """Check now that no GeoJSON or COCO file would be replaced, and take the labels and objects
    they are made of; the returned call writes them."""
    if not formats:
        return list
    pairs = [(layer, L.result_layer(viewer, L.layer_id(layer))) for layer in L.image_layers(viewer)]
    pairs = [(layer, result) for layer, result in pairs if result is not None]
    targets: list[Path] = []
    for layer, _ in pairs:  # COCO's file names: the image files where the layers came from
        source = Path(layer.source.path) if layer.source.path else None
        targets.append(source if source is not None and source not in targets else Path(layer.name))
    names = [safe_name(layer.name) for layer, _ in pairs]
    class_ids = [c for ref in run.references for c in ref.prompts]
    options = {"overwrite": overwrite, "names": names}
    planned = RunExports(formats, targets, folder, run.class_names, class_ids, **options)
    live = object_layers.live() if object_layers is not None else {}
    taken = []
    for (layer, result), target in zip(pairs, targets):
        image_id = L.layer_id(layer)
        objects = object_layers.objects(image_id) if image_id in live else None
        data = result.data[0] if result.multiscale else result.data  # level 0, read by tile
        taken.append((target, snapshot(data), objects and (np.array(objects[0]), objects[1])))

    def write() -> list[Path]:
        for target, data, objects in taken:
            planned.add(target, data, objects)
        return planned.finish()

    return write


@dataclass(frozen=True)
class LoadedReferences:
    """What loading references did."""

    count: int
    class_names: dict[int, str] = field(default_factory=dict)
    added_images: list[str] = field(default_factory=list)  # names of image layers the set brought


def _open_image_for(viewer, name: str, plane: tuple[int, ...], hw: tuple[int, int]):
    """The open image layer of that name whose planes and size fit the reference, if any."""
    for layer in L.image_layers(viewer):
        if layer.name != name:
            continue
        source = L.image_source(layer)
        shape = source.plane_shape
        if source.hw == hw and len(shape) == len(plane) and all(0 <= p < n for p, n in zip(plane, shape)):
            return layer
    return None


def _add_reference_image(viewer, reference, source: dict, index: int):
    """The reference's own pixels as a new image layer, named after where they came from."""
    data, meta, _ = reference_image_data(reference.image, source, index)
    return viewer.add_image(data, **meta)


def open_references_in_viewer(
    viewer, path: str | os.PathLike, model_panel: ModelPanel, add_prompt_layer: Callable
) -> LoadedReferences:
    """Recreate the references (and model settings) of a reference set or an older run record."""
    if file_format(path) == RUN_RECORD_FORMAT:
        record = read_record(path if Path(path).is_file() else Path(path) / RECORD_NAME)
        images = {layer.name: layer for layer in L.image_layers(viewer)}
        missing = sorted({r.image for r in record.references if r.image not in images})
        if missing:
            raise SansaError(f"Open these images first (by the same layer names): {', '.join(missing)}.")
        model_panel.apply_record(record.model, record.settings)
        for ref in record.references:
            recreate_reference(images[ref.image], ref, add_prompt_layer)
        return LoadedReferences(len(record.references))
    loaded = read_reference_set(path)
    model_panel.apply_record(loaded.model, loaded.settings)
    added = recreate_set(viewer, loaded, add_prompt_layer)
    return LoadedReferences(len(loaded.references), loaded.class_names, added)


def recreate_set(viewer, loaded: ReferenceSet, add_prompt_layer: Callable) -> list[str]:
    """A reference set's prompts as prompt layers: on the open images of the same names and
    sizes, or else on the set's own images, added as layers; returns the names of those added."""
    added = []
    for i, (reference, source) in enumerate(zip(loaded.references, loaded.sources)):
        plane = tuple(source.get("plane", ()))
        hw = image_hw(reference.image)
        layer = _open_image_for(viewer, source["image"], plane, hw) if source else None
        if layer is None:
            layer, plane = _add_reference_image(viewer, reference, source, i), ()
            added.append(layer.name)
        recreate_reference(
            layer, RecordedReference(layer.name, plane, dict(reference.prompts)), add_prompt_layer
        )
    return added


def export_summary(written: list[Path]) -> str:
    """What an export wrote, in words: label files, objects files, files for other tools, references."""
    tools = [p for p in written if p.suffix == ".geojson" or p.name == COCO_FILE]
    objects = [p for p in written if p.stem.endswith("_objects") and p not in tools]
    other = (SET_FILE, CLASSES_FILE)
    labels = [p for p in written if p not in objects and p not in tools and p.name not in other]
    parts = [f"{len(labels)} label file(s)"] + (
        [f"the objects of {len(objects) // 2} image(s)"] if objects else []
    )
    geojson = sum(p.suffix == ".geojson" for p in written)
    parts += [f"{geojson} QuPath GeoJSON file(s)"] if geojson else []
    parts += [COCO_FILE] if any(p.name == COCO_FILE for p in written) else []
    return ", ".join(parts) + (" and the references" if any(p.name == SET_FILE for p in written) else "")


def save_run_references(
    folder: str | os.PathLike, parts: Callable[[], ExportParts], overwrite: bool = False
) -> Path:
    """Write the current references as a reference set, e.g. for the command line or a cluster."""
    run = parts()
    if not run.references:
        raise SansaError("There are no references to save: annotate an image, or open a mask that fits one.")
    return _save_set(folder, run, overwrite)


def _save_set(folder: str | os.PathLike, run: ExportParts, overwrite: bool) -> Path:
    options = {"model": run.model, "settings": run.settings, "sources": run.sources}
    return save_references(folder, run.references, run.class_names, overwrite=overwrite, **options)


class RunFileButtons(QWidget):
    """Export…, Save references… and Load references…: file dialogs around ``export(folder,
    overwrite)``, ``save(folder, overwrite)`` and ``load(path)``; below them, the export in
    progress (:meth:`write`: its progress bar and Cancel)."""

    def __init__(
        self,
        export: Callable[..., object],
        load: Callable[[str], int],
        save: Callable[..., Path],
        owner: ModelOwner | None = None,
    ) -> None:
        """``owner``: the model's owner, whose queue an export goes through (never beside a run)."""
        super().__init__()
        self._export, self._load, self._save = export, load, save
        self.written: list[Path] | None = None  # the last export's files, once it has finished
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        layout.addLayout(row)
        self.job = BackgroundJob("Export", "Stop after the file in progress (files are written whole)", owner)
        layout.addWidget(self.job)
        export_button = QPushButton("Export…")
        formats_button = QPushButton("▾")  # its menu: the formats for other tools Export… adds
        formats_button.setFixedWidth(formats_button.fontMetrics().horizontalAdvance("▾") + 16)
        formats_button.setStyleSheet("QPushButton::menu-indicator { width: 0px; }")
        save_button, load_button = QPushButton("Save references…"), QPushButton("Load references…")
        export_button.setToolTip("Label files, the references (references/) and classes.csv (▾: and more)")
        formats_button.setToolTip("Export… also writes: QuPath GeoJSON, COCO")
        menu = QMenu(formats_button)
        self.format_actions = {}
        for fmt, text in EXPORT_CHOICES.items():
            action = menu.addAction(text)
            action.setCheckable(True)
            self.format_actions[fmt] = action
        formats_button.setMenu(menu)
        save_button.setToolTip(
            "The references as a reference set, for another napari, the command line or a cluster"
        )
        load_button.setToolTip(f"A reference set ({SET_FILE} in its folder) or an older {RECORD_NAME}")
        export_button.clicked.connect(self._export_clicked)
        save_button.clicked.connect(self._save_clicked)
        load_button.clicked.connect(self._load_clicked)
        row.addWidget(export_button)
        row.addWidget(formats_button)
        row.addSpacing(4)
        for button in (save_button, load_button):
            row.addWidget(button)

    def write(self, plan: ExportPlan) -> GeneratorWorker:
        """Write the plan's files in a worker (progress and Cancel below the buttons); returns
        the worker. When it is done, :attr:`written` holds the files and the user is told."""
        self.written = None

        def done(written: list[Path]) -> None:
            self.written = written
            self.job.status.setText(f"Exported {export_summary(written)} to {plan.folder}")
            notifications.info(self.job.status.text())

        return self.job.start(write_export, plan, done=done)

    def export_formats(self) -> tuple[str, ...]:
        """The formats for other tools ticked in Export…'s menu (:data:`EXPORT_FORMATS`)."""
        return tuple(fmt for fmt in EXPORT_FORMATS if self.format_actions[fmt].isChecked())

    def _with_leave(self, write: Callable[..., object], folder: str):
        """``write(folder)``, asking before replacing files; ``None`` if it did not happen."""
        try:
            return write(folder)
        except OutputExists as exc:
            if QMessageBox.question(self, "Overwrite?", f"{exc}\n\nOverwrite them?") == QMessageBox.Yes:
                return write(folder, overwrite=True)
            return None
        except SansaError as exc:
            notifications.error(str(exc))
            return None

    def _export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export labels to")
        export = partial(self._export, formats=self.export_formats())
        if folder:
            self._with_leave(export, folder)  # the export's worker tells when it is done

    def _save_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the references into (a new or empty folder)")
        if folder and self._with_leave(self._save, folder) is not None:
            notifications.info(
                f"Saved the references to {folder}: napari-sansa segment --references {folder} ..."
            )

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load references", "", f"Reference set or run record ({SET_FILE} {RECORD_NAME} *.json)"
        )
        if path:
            try:
                count = self._load(path)
            except SansaError as exc:
                notifications.error(str(exc))
                return
            notifications.info(f"Loaded {count} reference(s); press Run to segment with them.")
