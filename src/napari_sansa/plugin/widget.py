"""The dock widget: model, references, targets, run, review, export.

A thin layer: it snapshots layers on the main thread, runs :func:`jobs.run_job` in a napari
``thread_worker`` and writes each finished target into its Labels layer as it arrives.
Main-thread handlers stay short (napari must not stall): result layers are added before the
worker starts (:mod:`.results`), a finished target only assigns its plane, and the references
summary is recomputed once after a burst of layer events.

The sections live in their own modules: :mod:`.model_panel`, :mod:`.references_panel` (with
the layer → image list), :mod:`.targets_panel`, :mod:`.run_controls`, :mod:`.objects_panel`,
:mod:`.review_panel` (scores and locked targets) and :mod:`.exports` (export, save and load
references).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QVBoxLayout,
    QWidget,
)

from ..engine.errors import SansaError
from ..engine.prompts import label_dtype
from . import exports, notifications
from . import layers as L
from .jobs import Estimated, ModelReady, Notice, Started, TargetDone, TargetFailed, TilesMissing, run_job
from .model_loading import model_loader
from .model_panel import LOCAL, ModelPanel
from .objects_panel import ObjectsPanel
from .qt_lifetime import is_deleted
from .quiet_gc import QuietCollections
from .reference_layers import annotation_layers
from .references_panel import ReferencesPanel
from .results import RunLayers, target_sources
from .review_panel import ReviewPanel
from .run_controls import RunControls
from .runs import record_parts
from .session import ImageSource, Job, TargetKey, plan_job, repropagation_job
from .settings import WidgetSettings, load_settings, save_settings
from .targets_panel import TargetsPanel
from .tile_progress import TileProgress
from .tiling_panel import LargeImagesPanel, plan_tiling

log = logging.getLogger(__name__)
PREPARE_TURN_S = 0.25  # time adding result layers per event-loop turn: napari redraws between turns


class SansaWidget(QWidget):
    """SANSA few-shot segmentation: annotate a few images, label all the others."""

    _tile_done = Signal(object)  # a tile of a large target, emitted by the worker thread

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self._model_key: tuple | None = None
        self.worker = None
        self._cancel = threading.Event()
        self._ready = threading.Event()  # result layers added: the worker may start
        self._results: RunLayers | None = None
        self._collections = QuietCollections()
        self._active_before = None
        self._started = 0.0
        self._done = 0
        self._total = 0
        self.failures: list[str] = []
        self.estimate = ""
        self._names: dict[str, str] = {}
        self._sources: dict[TargetKey, object] = {}
        self._through: set[str] = set()
        self._build()
        self._tiles = TileProgress(self.viewer, self.controls, self._describe_key)
        self._tile_done.connect(self._on_tile)
        self.destroyed.connect(self._cancel.set)  # napari closing: stop the run after this image
        self.destroyed.connect(self._ready.set)
        self._restore(load_settings())
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._refresh_layers()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.model_panel = ModelPanel()
        layout.addWidget(self.model_panel)
        mp = self.model_panel
        self.model_choice, self.sam2_file, self.adapter_file = mp.model_choice, mp.sam2_file, mp.adapter_file
        self.device, self.precision, self.image_size = mp.device, mp.precision, mp.image_size

        self.references_panel = ReferencesPanel(self.viewer)
        layout.addWidget(self.references_panel)
        rp = self.references_panel
        self.prompt_image, self.prompt_kind, self.class_id = rp.prompt_image, rp.prompt_kind, rp.class_id
        self.toggle_sign, self.references_label = rp.toggle_sign, rp.summary

        self.targets_panel = TargetsPanel()
        self.targets, self.stack_mode = self.targets_panel.list, self.targets_panel.stack_mode
        layout.addWidget(self.targets_panel)
        self.large_panel = LargeImagesPanel(self._chosen_pixel_size)
        layout.addWidget(self.large_panel)
        self.controls = RunControls(self.run, self.cancel)
        c = self.controls
        self.run_button, self.cancel_button, self.status, self.progress = (
            c.run_button,
            c.cancel_button,
            c.status,
            c.progress,
        )
        layout.addWidget(self.controls)

        self.objects_panel = ObjectsPanel(self.viewer)
        layout.addWidget(self.objects_panel)
        self.review_panel = ReviewPanel(self.viewer, self._describe_key)
        self.review_panel.reference_added.connect(self.references_panel.describe)
        self.review_panel.propagate_requested.connect(self.propagate_from)
        self.review = self.review_panel.queue
        layout.addWidget(self.review_panel)
        self.run_files = exports.RunFileButtons(self.export, self.load_run, self.save_references)
        layout.addWidget(self.run_files)
        layout.addStretch()

    def _choices(self) -> dict[str, object]:
        """The run choices remembered with the model's (settings field -> its combo box)."""
        return {
            "mask_values": self.references_panel.mask_classes,
            "stacks": self.stack_mode,
            "output": self.objects_panel.output,
            "method": self.objects_panel.method,
        }

    def _restore(self, settings: WidgetSettings) -> None:
        self.model_panel.restore(settings)
        self.large_panel.restore(settings)
        for field, combo in self._choices().items():
            if combo.findText(getattr(settings, field)) >= 0:
                combo.setCurrentText(getattr(settings, field))

    def _settings(self) -> WidgetSettings:
        chosen = {field: combo.currentText() for field, combo in self._choices().items()}
        return replace(self.model_panel.settings(), **chosen, **self.large_panel.settings())

    def _chosen_pixel_size(self) -> float:
        """The pixel size of the image chosen for prompts (1.0 for a layer without a scale)."""
        layer = next((i for i in L.image_layers(self.viewer) if i.name == self.prompt_image.currentText()), None)
        return L.image_source(layer).pixel_size if layer is not None else 1.0

    def _layers_changed(self, event) -> None:
        """Result layers come and go with runs and change neither the images nor the references."""
        if not L.is_result(event.value):
            self._follow(event.value)
            self._refresh_layers()

    def _follow(self, layer) -> None:
        """Keep the references up to date when any annotation layer is drawn on or renamed."""
        if layer not in annotation_layers(self.viewer):
            return
        describe = self.references_panel.describe_later
        for emitter in (layer.events.data, layer.events.name, getattr(layer.events, "paint", None)):
            if emitter is not None:
                emitter.disconnect(describe)
                emitter.connect(describe)

    def _refresh_layers(self, event=None) -> None:
        images = L.image_layers(self.viewer)
        self.references_panel.reset_choices()
        annotated = {
            L.layer_id(a.image) for a in self.references_panel.assignments() if a.image is not None
        }
        self.targets_panel.show_images(images, annotated)
        for layer in images:
            layer.events.name.disconnect(self._refresh_layers)
            layer.events.name.connect(self._refresh_layers)
        for layer in annotation_layers(self.viewer):
            self._follow(layer)
        self.references_panel.describe_later()

    def _describe_key(self, key: TargetKey) -> str:
        return key.describe(self._names.get(key.image_id, "?"))

    # ------------------------------------------------------------------ references
    def add_prompt_layer(self, kind: str | None = None, image_name: str | None = None):
        """Create a prompt layer tied to the chosen image, ready to draw on."""
        return self.references_panel.add_prompt_layer(kind, image_name)

    # ------------------------------------------------------------------ run
    @property
    def through_stacks(self) -> bool:
        """Whether annotated stacks are segmented through the stack (else plane by plane)."""
        return self.targets_panel.through_stacks

    def _plan(self) -> Job:
        sources = [L.image_source(layer) for layer in L.image_layers(self.viewer)]
        self._names = {s.image_id: s.name for s in sources}
        panel = self.references_panel
        assignments = panel.assignments()
        prompts = {s.image_id: panel.prompts(s, assignments) for s in sources}
        job = plan_job(sources, prompts, self.targets_panel.checked(), self.locked, self.through_stacks)
        job.class_names = {c: n for c, n in panel.class_names.items() if c in job.classes}
        return job

    def run(self, job: Job | None = None):
        """Segment every target like the references (what the Run button does); returns the worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            notifications.error("A run is already going; cancel it or wait for it to finish.")
            return None
        job = job or self._plan()
        if not job.references:
            notifications.error(
                "No references: draw on an image with a prompt layer, or open a mask or points layer "
                "that fits an image (see the layer → image list)."
            )
            return None
        if not job.targets:
            notifications.error(
                "Nothing to segment: check some target images, or unlock results to re-run them."
            )
            return None
        settings = self._settings()
        try:
            plan_tiling(job, self.large_panel, settings.image_size)
        except SansaError as exc:  # e.g. an overlap as large as the tiles
            notifications.error(str(exc))
            return None
        save_settings(settings)
        key, get_model = model_loader(settings, self.model, self._model_key)
        self._sources = dict(job.targets)
        self._through = {stack.source.image_id for stack in job.stacks}  # their objects link up
        self.failures = []
        self._done, self._total = 0, len(job.targets)
        self._cancel.clear()
        self._ready.clear()
        self._results = RunLayers(
            self.viewer, label_dtype(job.classes), target_sources(job), self._watch, job.class_names,
            tiled={source.image_id for _, source in job.targets if job.tiled(source.image_id)},
        )
        self._tiles.start()
        self._active_before = self.viewer.layers.selection.active
        handlers = {
            "yielded": partial(self._on_event, key),
            "errored": self._on_error,
            "finished": self._on_finished,
        }
        self.worker = create_worker(
            run_job,
            get_model,
            job,
            self._cancel,
            self._ready,
            objects=self.objects_panel.splitter(job.class_names),
            output=partial(self._results.writer, locked=self._locked_now),
            notify=self._emit_tile,
            _start_thread=False,
            _connect=handlers,
        )
        self.controls.running(True)
        if self.model is None or self._model_key != key:
            first_use = settings.model != LOCAL
            message = "Loading the SANSA model" + (
                " (the first use downloads about 1 GB)" if first_use else ""
            )
        else:
            message = "Starting"
        self.status.setText("Preparing the result layers…")
        self.controls.set_progress(0, self._total)
        self.progress.show()
        self._collections.freeze()  # until _on_finished
        self.worker.start()  # it waits for the result layers
        QTimer.singleShot(1, partial(self._prepare_layers, message + "…"))
        return self.worker

    def _prepare_layers(self, then: str) -> None:
        """Add the run's result layers a few per event-loop turn, then let the worker go."""
        if is_deleted(self):
            return  # `destroyed` has released the worker
        more = False
        try:
            more = not self._cancel.is_set() and self._results.prepare(PREPARE_TURN_S)
        finally:
            if more:
                QTimer.singleShot(1, partial(self._prepare_layers, then))
            else:
                self._ready.set()
                self._restore_selection()
                if not self._cancel.is_set():
                    self.status.setText(then)

    def _restore_selection(self) -> None:
        """Adding a layer selects it; give the user back the layer they had selected."""
        layer = self._active_before
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.selection.active = layer  # a no-op if it still is

    def _watch(self, source: ImageSource, layer) -> None:
        """Lock the targets the user paints on in a new result layer."""
        layer.events.paint.connect(partial(self._on_paint, source.image_id, source.lead))

    def _locked_now(self, key: TargetKey) -> bool:
        return key in self.locked

    def _emit_tile(self, event) -> None:
        """From the worker thread: hand a finished tile to the main thread (queued)."""
        with contextlib.suppress(RuntimeError):  # the widget is gone (napari closing): the run stops
            self._tile_done.emit(event)

    def _on_tile(self, event) -> None:
        if not is_deleted(self) and self.worker is not None:
            self._tiles.on_tile(event, self._results, self.locked)

    def cancel(self) -> None:
        """Stop after the target in progress; finished targets are kept."""
        if self.worker is not None:
            self._cancel.set()
            self._ready.set()
            self.worker.quit()
            self.status.setText("Cancelling after the current image…")

    def _on_event(self, key, event) -> None:
        if is_deleted(self):
            return
        if isinstance(event, ModelReady):
            self.model, self._model_key = event.model, key
            self.model_panel.show_running(event.model)
        elif isinstance(event, Estimated):
            self.estimate = event.text
            self.status.setText(f"Estimate: {event.text}")
        elif isinstance(event, Started):
            self._total, self._done, self._started = event.total, 0, time.monotonic()
            self.controls.set_progress(0, event.total)
            self.status.setText(f"0 / {event.total} images")
        elif isinstance(event, Notice):
            notifications.info(event.text)
        elif isinstance(event, TilesMissing):
            notifications.error(
                f"Some tiles of {self._describe_key(event.key)} could not be read and are left empty; "
                f"the rest is shown. {' '.join(event.messages)}"
            )
        elif isinstance(event, TargetFailed):
            self.failures.append(f"{self._describe_key(event.key)}: {event.message}")
            notifications.error(f"Skipped {self.failures[-1]}")
        elif isinstance(event, TargetDone):
            self._write(event.key, event.prediction, event.objects)
            self._done += 1
            self.controls.set_progress(self._done, self._total)
            left = (time.monotonic() - self._started) / self._done * (self._total - self._done)
            self._show_status(
                f"{self._done} / {self._total} images, about {left:.0f} s left (estimate: {self.estimate})"
            )

    def _write(self, key: TargetKey, prediction, objects=None) -> None:
        source = self._sources.get(key)
        if source is None or key in self.locked:
            return  # locked while the run was going: the user's labels win
        if L.find_image(self.viewer, key.image_id) is None:
            return  # the image was closed during the run
        layer = self._results.get(source, prediction.labels.dtype)  # prepared: only a look-up
        if self._results.streamed.get(key) is not layer.data:  # else written there tile by tile
            layer.data[key.plane if key.plane else ...] = np.asarray(prediction.labels)
        self._tiles.tiles_done(key, getattr(prediction, "tiles", 1))
        if self._results.fill(key.image_id):
            layer.visible = True  # refreshes it
        elif L.shows_plane(self.viewer, layer, key.plane):
            self._tiles.refresh(layer)  # redraws the canvas: only when the plane is on screen
        self.review_panel.add_result(key, prediction.score, running=self.worker is not None)
        if objects is not None:
            self.objects_panel.write(source, key, objects, running=self.worker is not None)

    def _on_paint(self, image_id: str, lead: int, event) -> None:
        if self._results is not None:
            self._results.kept.add(image_id)  # the user's labels: keep the layer
        painted: set[TargetKey] = set()
        for atom in event.value:
            indices = atom[0]
            if lead == 0:
                painted.add(TargetKey(image_id))
            elif len(indices[0]):
                planes = {tuple(int(indices[a][i]) for a in range(lead)) for i in range(len(indices[0]))}
                painted.update(TargetKey(image_id, p) for p in planes)
        self.review_panel.lock(painted)

    def _on_error(self, exc: Exception) -> None:
        if is_deleted(self):
            return
        if isinstance(exc, SansaError):
            notifications.error(str(exc))
        else:
            log.exception("SANSA run failed", exc_info=exc)
            notifications.error(f"The run failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._collections.unfreeze()
        if is_deleted(self):
            return
        self.progress.hide()
        if self._results is not None:
            self._results.remove_empty()
        self.worker = None
        self.controls.running(False)
        self.review_panel.refresh()
        for image_id in self._through:
            self.objects_panel.layers.link(image_id)
        self.objects_panel.refresh()
        self._show_status("")

    def _show_status(self, running: str) -> None:
        # napari may deliver the worker's last results after its `finished` signal
        if self.worker is not None:
            self.status.setText(running)
            return
        done = f"{self._done} of {self._total} images segmented" + self._tiles.summary()
        if self.failures:
            done += f", {len(self.failures)} skipped"
        self.status.setText(done + (" (cancelled; finished images kept)." if self._cancel.is_set() else "."))

    def propagate_from(self, key: TargetKey | None = None):
        """Re-propagate a stack from a corrected plane onwards, through the stack (locked planes stay).

        The plane's labels, as the user corrected them, join the stack's annotations in SAM2's
        memory, and the unlocked planes after it are segmented again. Returns the worker.
        """
        key = key or self.review_panel.selected_key()
        image = L.find_image(self.viewer, key.image_id) if key is not None else None
        result = L.result_layer(self.viewer, key.image_id) if key is not None else None
        if image is None or result is None or not key.plane:
            notifications.error("Select a plane of a stack's result in the review list first.")
            return None
        source = L.image_source(image)
        panel = self.references_panel
        try:
            job = repropagation_job(
                source,
                panel.prompts(source, panel.assignments()),
                self.locked,
                key,
                np.asarray(result.data[key.plane]),
            )
        except SansaError as exc:
            notifications.error(str(exc))
            return None
        job.class_names = {c: n for c, n in panel.class_names.items() if c in job.classes}
        self.review_panel.lock([key])
        return self.run(job)

    # ------------------------------------------------------------------ review
    @property
    def scores(self) -> dict[TargetKey, float]:
        """Each target's confidence score, from the runs so far."""
        return self.review_panel.scores

    @property
    def locked(self) -> set[TargetKey]:
        """Targets whose labels later runs leave as they are."""
        return self.review_panel.locked

    def review_order(self) -> list[TargetKey]:
        """Targets with results, least confident first."""
        return self.review_panel.order()

    def accept(self, key: TargetKey | None = None) -> None:
        """Lock a target's labels: later runs leave them as they are."""
        self.review_panel.accept(key)

    def use_as_reference(self, key: TargetKey | None = None) -> None:
        """Turn a (corrected) result into one more reference for the next run."""
        self.review_panel.use_as_reference(key)

    # ------------------------------------------------------------------ export
    def export(self, folder: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write every result layer (one file per image or stack), objects, the reference set and class names."""
        objects = self.objects_panel.layers.export_later(folder, overwrite)
        return exports.export_run(
            self.viewer, folder, self._record_parts, overwrite=overwrite, objects=objects
        )

    def save_references(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the references as a reference set (a new or empty folder, or over a set)."""
        return exports.save_run_references(folder, self._record_parts, overwrite=overwrite)

    def _record_parts(self) -> exports.ExportParts:
        job = self._plan()  # also names the images
        info = self.model.info if self.model is not None else None
        return record_parts(job, self._names, info, self._settings())

    def load_run(self, path: str | os.PathLike) -> int:
        """Recreate the references (and model settings) of a reference set or run record; returns how many."""
        loaded = exports.load_references(self.viewer, path, self.model_panel, self.add_prompt_layer)
        panel = self.references_panel
        panel.class_names.update(loaded.class_names)
        panel.class_name.setText(panel.class_names.get(panel.class_id.value(), ""))
        panel.describe()
        return loaded.count
