"""The dock widget: model, references, targets, run, review, export.

A thin layer: it snapshots layers on the main thread, runs :func:`jobs.run_job` in a napari
``thread_worker`` and writes each finished target into its Labels layer as it arrives.
Main-thread handlers stay short (napari must not stall): result layers are added before the
worker starts (:mod:`.results`), a finished target only assigns its plane, and the references
summary is recomputed once after a burst of layer events.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.errors import SansaError
from . import layers as L
from .jobs import Estimated, ModelReady, Started, TargetDone, TargetFailed, run_job
from .model_panel import LOCAL, ModelPanel
from .quiet_gc import QuietCollections
from .record import export_labels, read_record, write_record
from .results import RunLayers, label_dtype, target_sources
from .runs import record_parts, recreate_reference
from .session import ImageSource, Job, TargetKey, plan_job
from .settings import WidgetSettings, load_settings, save_settings

log = logging.getLogger(__name__)
PREPARE_TURN_S = 0.25  # time adding result layers per event-loop turn: napari redraws between turns


def _deleted(widget: QWidget) -> bool:
    """Whether Qt has already destroyed the widget (napari was closed during a run)."""
    try:
        from qtpy import sip

        return sip.isdeleted(widget)
    except ImportError:  # PySide
        import shiboken6

        return not shiboken6.isValid(widget)


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _notify(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


class SansaWidget(QWidget):
    """SANSA few-shot segmentation: annotate a few images, label all the others."""

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
        self.locked: set[TargetKey] = set()
        self.scores: dict[TargetKey, float] = {}
        self.failures: list[str] = []
        self.estimate = ""
        self._names: dict[str, str] = {}
        self._sources: dict[TargetKey, object] = {}
        self._review_shown = 0.0
        self._build()
        self.destroyed.connect(self._cancel.set)  # napari closing: stop the run after this image
        self.destroyed.connect(self._ready.set)
        self._describe_soon = QTimer(self, singleShot=True, interval=200)
        self._describe_soon.timeout.connect(self._describe_references)
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

        refs = QGroupBox("References")
        form = QFormLayout(refs)
        self.prompt_image = QComboBox()
        self.prompt_kind = QComboBox()
        self.prompt_kind.addItems(["labels", "points", "shapes"])
        self.class_id = QSpinBox(minimum=1, maximum=65535, value=1)
        self.class_id.valueChanged.connect(self._class_changed)
        add = QPushButton("Add prompt layer")
        add.setToolTip(
            "Draw on it: Labels paint masks; Points click (N toggles negative); Shapes: rectangles = boxes, paths = scribbles, polygons = masks"
        )
        add.clicked.connect(self.add_prompt_layer)
        self.toggle_sign = QPushButton("Positive / negative clicks (N)")
        self.toggle_sign.clicked.connect(self._toggle_sign)
        form.addRow("Image", self.prompt_image)
        row = QHBoxLayout()
        row.addWidget(self.prompt_kind)
        row.addWidget(QLabel("class"))
        row.addWidget(self.class_id)
        form.addRow("Prompt", row)
        form.addRow(add)
        form.addRow(self.toggle_sign)
        self.references_label = QLabel("No references yet.")
        self.references_label.setWordWrap(True)
        form.addRow(self.references_label)
        layout.addWidget(refs)

        targets = QGroupBox("Targets")
        box = QVBoxLayout(targets)
        self.targets = QListWidget()
        self.targets.setMaximumHeight(110)
        box.addWidget(self.targets)
        layout.addWidget(targets)

        run_row = QHBoxLayout()
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        layout.addLayout(run_row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.progress = QProgressBar()  # in the dock: napari's progress bars process events on each update
        self.progress.setFormat("%v / %m images")
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it moves nothing: no relayout, no canvas resize
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        layout.addWidget(self.progress)

        review = QGroupBox("Review (least confident first)")
        box = QVBoxLayout(review)
        self.review = QListWidget()
        self.review.currentItemChanged.connect(lambda item, _: self._show(item))
        box.addWidget(self.review)
        row = QHBoxLayout()
        accept, as_ref = QPushButton("Accept"), QPushButton("Use as reference")
        accept.clicked.connect(lambda: self.accept())
        as_ref.clicked.connect(lambda: self.use_as_reference())
        row.addWidget(accept)
        row.addWidget(as_ref)
        box.addLayout(row)
        layout.addWidget(review)

        row = QHBoxLayout()
        export, load = QPushButton("Export…"), QPushButton("Load run…")
        export.clicked.connect(self._export_clicked)
        load.clicked.connect(self._load_clicked)
        row.addWidget(export)
        row.addWidget(load)
        layout.addLayout(row)
        layout.addStretch()

    def _restore(self, settings: WidgetSettings) -> None:
        self.model_panel.restore(settings)

    def _settings(self) -> WidgetSettings:
        return self.model_panel.settings()

    def _layers_changed(self, event) -> None:
        """Result layers come and go with runs and change neither the images nor the references."""
        if L.RESULT_OF not in event.value.metadata:
            self._refresh_layers()

    def _refresh_layers(self, event=None) -> None:
        images = L.image_layers(self.viewer)
        current = self.prompt_image.currentText()
        self.prompt_image.clear()
        self.prompt_image.addItems([layer.name for layer in images])
        if current:
            self.prompt_image.setCurrentText(current)
        unchecked = {
            self.targets.item(i).data(Qt.UserRole)
            for i in range(self.targets.count())
            if self.targets.item(i).checkState() != Qt.Checked
        }
        self.targets.clear()
        annotated = {
            lyr.metadata[L.PROMPTS_FOR] for lyr in self.viewer.layers if L.PROMPTS_FOR in lyr.metadata
        }
        for layer in images:
            image_id = L.layer_id(layer)
            item = QListWidgetItem(layer.name + ("  (reference)" if image_id in annotated else ""))
            item.setData(Qt.UserRole, image_id)
            item.setCheckState(Qt.Unchecked if image_id in unchecked else Qt.Checked)
            self.targets.addItem(item)
        for layer in images:
            layer.events.name.disconnect(self._refresh_layers)
            layer.events.name.connect(self._refresh_layers)
        self._describe_later()

    def _describe_references(self) -> None:
        """Summarise the prompts per image (it reads every prompt layer, so it runs debounced)."""
        parts = []
        for layer in L.image_layers(self.viewer):
            prompts = L.prompts_of(self.viewer, L.image_source(layer), self.class_id.value())
            for plane, classes in sorted(prompts.items()):
                where = f"{layer.name}" + (f" plane {','.join(map(str, plane))}" if plane else "")
                parts.append(f"{where}: class {', '.join(map(str, sorted(classes)))}")
        self.references_label.setText(
            "\n".join(parts) if parts else "No references yet: add a prompt layer and draw."
        )

    # ------------------------------------------------------------------ references
    def add_prompt_layer(self, kind: str | None = None, image_name: str | None = None):
        """Create a prompt layer tied to the chosen image, ready to draw on."""
        name = image_name or self.prompt_image.currentText()
        image = next((layer for layer in L.image_layers(self.viewer) if layer.name == name), None)
        if image is None:
            _notify_error("Open an image first, then add a prompt layer for it.")
            return None
        layer = L.add_prompt_layer(
            self.viewer, image, kind or self.prompt_kind.currentText(), self.class_id.value()
        )
        if layer.__class__.__name__ == "Points":
            layer.bind_key(
                "n", lambda lyr: _notify(f"Next clicks: {L.toggle_point_sign(lyr)}"), overwrite=True
            )
        layer.events.data.connect(self._describe_later)
        if hasattr(layer.events, "paint"):  # Labels: strokes change no `data` event
            layer.events.paint.connect(self._describe_later)
        return layer

    def _describe_later(self, event=None) -> None:
        if not _deleted(self):
            self._describe_soon.start()

    def _class_changed(self, value: int) -> None:
        layer = self.viewer.layers.selection.active
        if layer is None or L.PROMPTS_FOR not in layer.metadata:
            return
        if hasattr(layer, "selected_label"):
            layer.selected_label = value
        elif hasattr(layer, "feature_defaults"):
            defaults = {k: layer.feature_defaults[k].iloc[0] for k in layer.feature_defaults}
            layer.feature_defaults = {**defaults, "class": value}

    def _toggle_sign(self) -> None:
        layer = self.viewer.layers.selection.active
        if layer is None or layer.__class__.__name__ != "Points" or L.PROMPTS_FOR not in layer.metadata:
            _notify_error("Select a Points prompt layer first.")
            return
        _notify(f"Next clicks: {L.toggle_point_sign(layer)}")

    # ------------------------------------------------------------------ run
    def _checked(self) -> set[str]:
        return {
            self.targets.item(i).data(Qt.UserRole)
            for i in range(self.targets.count())
            if self.targets.item(i).checkState() == Qt.Checked
        }

    def _plan(self) -> Job:
        sources = [L.image_source(layer) for layer in L.image_layers(self.viewer)]
        self._names = {s.image_id: s.name for s in sources}
        prompts = {s.image_id: L.prompts_of(self.viewer, s, self.class_id.value()) for s in sources}
        return plan_job(sources, prompts, self._checked(), self.locked)

    def _model_loader(self, settings: WidgetSettings):
        key = tuple(vars(settings).values())
        cached, cached_key = self.model, self._model_key

        def get_model():
            from ..engine.config import SansaConfig
            from ..engine.model import Sansa

            if cached is not None and cached_key == key:
                return cached
            config = SansaConfig(
                device=settings.device, precision=settings.precision, image_size=settings.image_size
            )
            if settings.model == LOCAL:
                if not (settings.sam2_checkpoint and settings.adapter_checkpoint):
                    raise SansaError(
                        "Choose a SAM2 checkpoint and a SANSA adapter file, or a published model."
                    )
                return Sansa.from_checkpoints(
                    settings.sam2_checkpoint, settings.adapter_checkpoint, config=config
                )
            return Sansa.from_pretrained(settings.model, config=config, progress=False)

        return key, get_model

    def run(self):
        """Segment every target like the references (what the Run button does); returns the worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            _notify_error("A run is already going; cancel it or wait for it to finish.")
            return None
        job = self._plan()
        if not job.references:
            _notify_error(
                "No references: add a prompt layer for an image and draw on it (Labels, Points or Shapes)."
            )
            return None
        if not job.targets:
            _notify_error("Nothing to segment: check some target images, or unlock results to re-run them.")
            return None
        settings = self._settings()
        save_settings(settings)
        key, get_model = self._model_loader(settings)
        self._sources = dict(job.targets)
        self.failures = []
        self._done, self._total = 0, len(job.targets)
        self._cancel.clear()
        self._ready.clear()
        self._results = RunLayers(self.viewer, label_dtype(job.classes), target_sources(job), self._watch)
        self._active_before = self.viewer.layers.selection.active
        handlers = {
            "yielded": partial(self._on_event, key),
            "errored": self._on_error,
            "finished": self._on_finished,
        }
        self.worker = create_worker(
            run_job, get_model, job, self._cancel, self._ready, _start_thread=False, _connect=handlers
        )
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.model is None or self._model_key != key:
            first_use = settings.model != LOCAL
            message = "Loading the SANSA model" + (
                " (the first use downloads about 1 GB)" if first_use else ""
            )
        else:
            message = "Starting"
        self.status.setText("Preparing the result layers…")
        self._set_progress(0, self._total)
        self.progress.show()
        self._collections.freeze()  # until _on_finished
        self.worker.start()  # it waits for the result layers
        QTimer.singleShot(1, partial(self._prepare_layers, message + "…"))
        return self.worker

    def _prepare_layers(self, then: str) -> None:
        """Add the run's result layers a few per event-loop turn, then let the worker go."""
        if _deleted(self):
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

    def cancel(self) -> None:
        """Stop after the target in progress; finished targets are kept."""
        if self.worker is not None:
            self._cancel.set()
            self._ready.set()
            self.worker.quit()
            self.status.setText("Cancelling after the current image…")

    def _on_event(self, key, event) -> None:
        if _deleted(self):
            return
        if isinstance(event, ModelReady):
            self.model, self._model_key = event.model, key
        elif isinstance(event, Estimated):
            self.estimate = event.text
            self.status.setText(f"Estimate: {event.text}")
        elif isinstance(event, Started):
            self._total, self._done, self._started = event.total, 0, time.monotonic()
            self._set_progress(0, event.total)
            self.status.setText(f"0 / {event.total} images")
        elif isinstance(event, TargetFailed):
            self.failures.append(
                f"{event.key.describe(self._names.get(event.key.image_id, '?'))}: {event.message}"
            )
            _notify_error(f"Skipped {self.failures[-1]}")
        elif isinstance(event, TargetDone):
            self._write(event.key, event.prediction)
            self._done += 1
            self._set_progress(self._done, self._total)
            left = (time.monotonic() - self._started) / self._done * (self._total - self._done)
            self._show_status(
                f"{self._done} / {self._total} images, about {left:.0f} s left (estimate: {self.estimate})"
            )

    def _set_progress(self, done: int, total: int) -> None:
        """Move the bar at the next paint: QProgressBar itself repaints the whole window at once."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        bar.setRange(0, total)
        bar.setValue(done)
        bar.setUpdatesEnabled(True)  # schedules an ordinary repaint

    def _write(self, key: TargetKey, prediction) -> None:
        source = self._sources.get(key)
        if source is None or key in self.locked:
            return  # locked while the run was going: the user's labels win
        if L.find_image(self.viewer, key.image_id) is None:
            return  # the image was closed during the run
        layer = self._results.get(source, prediction.labels.dtype)  # prepared: only a look-up
        layer.data[key.plane if key.plane else ...] = prediction.labels
        if self._results.fill(key.image_id):
            layer.visible = True  # refreshes it
        elif L.shows_plane(self.viewer, layer, key.plane):
            layer.refresh()  # redraws the canvas: only when the plane is on screen
        self.scores[key] = prediction.score
        if (
            self.worker is None or time.monotonic() - self._review_shown > 1.0
        ):  # rebuilding the list per image is O(n^2) on stacks
            self._refresh_review()

    def _on_paint(self, image_id: str, lead: int, event) -> None:
        if self._results is not None:
            self._results.kept.add(image_id)  # the user's labels: keep the layer
        for atom in event.value:
            indices = atom[0]
            if lead == 0:
                self.locked.add(TargetKey(image_id))
            elif len(indices[0]):
                planes = {tuple(int(indices[a][i]) for a in range(lead)) for i in range(len(indices[0]))}
                self.locked.update(TargetKey(image_id, p) for p in planes)
        self._refresh_review()

    def _on_error(self, exc: Exception) -> None:
        if _deleted(self):
            return
        if isinstance(exc, SansaError):
            _notify_error(str(exc))
        else:
            log.exception("SANSA run failed", exc_info=exc)
            _notify_error(f"The run failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._collections.unfreeze()
        if _deleted(self):
            return
        self.progress.hide()
        if self._results is not None:
            self._results.remove_empty()
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._refresh_review()
        self._show_status("")

    def _show_status(self, running: str) -> None:
        # napari may deliver the worker's last results after its `finished` signal
        if self.worker is not None:
            self.status.setText(running)
            return
        done = f"{self._done} of {self._total} images segmented"
        if self.failures:
            done += f", {len(self.failures)} skipped"
        self.status.setText(done + (" (cancelled; finished images kept)." if self._cancel.is_set() else "."))

    # ------------------------------------------------------------------ review
    def review_order(self) -> list[TargetKey]:
        """Targets with results, least confident first."""
        return sorted(self.scores, key=lambda k: (self.scores[k], k.image_id, k.plane))

    def _refresh_review(self) -> None:
        self._review_shown = time.monotonic()
        selected = self._selected_key()
        self.review.blockSignals(True)
        self.review.clear()
        for key in self.review_order():
            mark = "  ✓ locked" if key in self.locked else ""
            item = QListWidgetItem(
                f"{self.scores[key]:.2f}  {key.describe(self._names.get(key.image_id, '?'))}{mark}"
            )
            item.setData(Qt.UserRole, key)
            self.review.addItem(item)
            if key == selected:
                self.review.setCurrentItem(item)
        self.review.blockSignals(False)

    def _selected_key(self) -> TargetKey | None:
        item = self.review.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    def _show(self, item) -> None:
        if item is None:
            return
        key = item.data(Qt.UserRole)
        layer = L.result_layer(self.viewer, key.image_id)
        if layer is None:
            return
        self.viewer.layers.selection.active = layer
        offset = self.viewer.dims.ndim - layer.ndim
        for axis, value in enumerate(key.plane):
            self.viewer.dims.set_current_step(offset + axis, value)

    def accept(self, key: TargetKey | None = None) -> None:
        """Lock a target's labels: later runs leave them as they are."""
        key = key or self._selected_key()
        if key is not None:
            self.locked.add(key)
            self._refresh_review()

    def use_as_reference(self, key: TargetKey | None = None) -> None:
        """Turn a (corrected) result into one more reference for the next run."""
        key = key or self._selected_key()
        image = L.find_image(self.viewer, key.image_id) if key else None
        result = L.result_layer(self.viewer, key.image_id) if key else None
        if image is None or result is None:
            _notify_error("Select a result in the review list first.")
            return
        labels = np.asarray(result.data[key.plane] if key.plane else result.data)
        if not labels.any():
            _notify_error("This result is empty; paint the objects in it before using it as a reference.")
            return
        from napari.layers import Labels

        prompt = next(
            (lyr for lyr in L.prompt_layers(self.viewer, key.image_id) if isinstance(lyr, Labels)), None
        )
        if prompt is None:
            prompt = L.add_prompt_layer(self.viewer, image, "labels")
        target = prompt.data[key.plane] if key.plane else prompt.data
        target[...] = (
            labels.astype(prompt.data.dtype) if np.can_cast(labels.dtype, prompt.data.dtype) else labels
        )
        prompt.refresh()
        self.locked.add(key)
        self.scores.pop(key, None)
        self._refresh_review()
        self._describe_references()

    # ------------------------------------------------------------------ export
    def export(self, folder: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write every result layer (one file per image or stack) and the run record."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        results = {}
        for layer in L.image_layers(self.viewer):
            result = L.result_layer(self.viewer, L.layer_id(layer))
            if result is not None:
                results[layer.name] = np.asarray(result.data)
        if not results:
            raise SansaError("There is nothing to export yet: run SANSA first.")
        written = export_labels(results, folder, overwrite=overwrite)
        job = self._plan()
        info = self.model.info if self.model is not None else None
        model, run_settings, refs, targets = record_parts(
            job, self._names, info, self._settings(), self.scores, self.locked
        )
        written.append(write_record(folder, model, run_settings, refs, targets))
        return written

    def load_run(self, path: str | os.PathLike) -> int:
        """Recreate the references (and model settings) of an exported run; returns how many."""
        record = read_record(path)
        images = {layer.name: layer for layer in L.image_layers(self.viewer)}
        missing = sorted({r.image for r in record.references if r.image not in images})
        if missing:
            raise SansaError(f"Open these images first (by the same layer names): {', '.join(missing)}.")
        self.model_panel.apply_record(record.model, record.settings)
        for ref in record.references:
            recreate_reference(images[ref.image], ref, self.add_prompt_layer)
        self._describe_references()
        return len(record.references)

    def _export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export labels to")
        if not folder:
            return
        try:
            written = self.export(folder)
        except SansaError as exc:
            from qtpy.QtWidgets import QMessageBox

            if (
                "already exist" in str(exc)
                and QMessageBox.question(self, "Overwrite?", f"{exc}\n\nOverwrite them?") == QMessageBox.Yes
            ):
                written = self.export(folder, overwrite=True)
            else:
                _notify_error(str(exc))
                return
        _notify(f"Exported {len(written) - 1} label file(s) and the run record to {folder}")

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a run record", "", "Run record (*.json)")
        if path:
            try:
                count = self.load_run(path)
            except SansaError as exc:
                _notify_error(str(exc))
                return
            _notify(f"Loaded {count} reference(s); press Run to repeat the run.")
