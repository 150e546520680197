"""The dock widget: model, references, targets and output, run, review, export.

A thin layer that assembles the sections (:mod:`.panels.sections`: foldable, in a scroll
area) and keeps the references and targets in step with the viewer's layers; the references
summary is recomputed once after a burst of layer events. A run (its worker, events and
status) is :mod:`.runner`'s, writing results into their layers :mod:`.result_writer`'s, the
threshold slider's relabelling :mod:`.relabelling`'s; the live preview is :mod:`.preview`'s;
the keyboard shortcuts (napari actions) :mod:`.shortcuts`'. The model and the one queue of the
jobs that use it (run, live preview, Check references, Adapt) belong to one owner
(:class:`.core.work_queue.ModelOwner`, run in napari workers by :mod:`.workers`): the panels
ask it for work and listen to its status line, never to each other.

The sections' panels live in their own modules in :mod:`.panels` (model, references with the
layer → image list, targets, tiling, objects, run controls, review, the saved session) and
:mod:`.exports`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import exports, notifications
from napari_sansa.plugin.core.runs import record_parts
from napari_sansa.plugin.core.saved_sessions import Restored
from napari_sansa.plugin.core.session import Job, TargetKey, plan_job, repropagation_job
from napari_sansa.plugin.core.settings import WidgetSettings, load_settings
from napari_sansa.plugin.core.work_queue import ModelOwner
from napari_sansa.plugin.model_loading import load_model
from napari_sansa.plugin.panels.adapt import AdaptPanel
from napari_sansa.plugin.panels.compute import ComputePanel
from napari_sansa.plugin.panels.evaluation import CheckInputs, EvaluationPanel
from napari_sansa.plugin.panels.model import ModelPanel
from napari_sansa.plugin.panels.objects import ObjectsPanel
from napari_sansa.plugin.panels.references import ReferencesPanel
from napari_sansa.plugin.panels.review import ReviewPanel
from napari_sansa.plugin.panels.run_controls import RunControls
from napari_sansa.plugin.panels.sections import Sections, stacked
from napari_sansa.plugin.panels.sessions import SESSION_TIP, SessionsPanel
from napari_sansa.plugin.panels.suggestion import SuggestionPanel
from napari_sansa.plugin.panels.targets import TargetsPanel
from napari_sansa.plugin.panels.tiling import LargeImagesPanel
from napari_sansa.plugin.preview import LivePreview
from napari_sansa.plugin.qt_lifetime import is_deleted
from napari_sansa.plugin.runner import Runner, RunPanels
from napari_sansa.plugin.shortcuts import add_shortcuts
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.reference_layers import annotation_layers
from napari_sansa.plugin.viewer.relabelling import Relabelling
from napari_sansa.plugin.workers import Workers

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


class SansaWidget(QWidget):
    """SANSA few-shot segmentation: annotate a few images, label all the others."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._names: dict[str, str] = {}  # image id -> layer name, as of the last plan
        self.workers = Workers(self._settings, self._load_model, parent=self)
        self._build()
        panels = RunPanels(self.large_panel, self.controls, self.review_panel, self.objects_panel)
        gone = lambda: is_deleted(self)  # noqa: E731
        self.runner = Runner(self.viewer, self.owner, panels, self._describe_key, gone, parent=self)
        self.preview = LivePreview(self.viewer, self.owner, self.controls, self.plan, gone, self)
        self._follow_threshold()
        self.workers.status.connect(self._busy_changed)
        self.workers.model_changed.connect(self.model_panel.show_running)
        self._wire_shortcuts()
        self.compute_panel.connected.connect(self._compute_on)
        self.destroyed.connect(self.owner.shut)  # napari closing: every job stops after its step
        self.destroyed.connect(self.runner.ready.set)
        self._restore(load_settings())
        self.sessions_panel = SessionsPanel(
            self.viewer, self.review_panel, self._record_parts, self._settings, self._restore
        )
        self.controls.threshold_changed.connect(self.sessions_panel.all_results_changed)  # relabelled
        offered = self.sessions_panel.offered is not None
        self.sections.add(
            "Session", self.sessions_panel, expanded=offered, before="Model", tooltip=SESSION_TIP
        )
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._refresh_layers()

    @property
    def owner(self) -> ModelOwner:
        """The one owner of the model and of the queue of jobs that use it."""
        return self.workers.owner

    def _follow_threshold(self) -> None:
        """The slider relabels the preview and every kept result, from their logits (no model)."""
        controls = self.controls
        self.runner.results.threshold = controls.threshold_logit
        note = lambda text: controls.say(controls.threshold_note, text)  # noqa: E731
        self.relabelling = Relabelling(self.viewer, self.runner.results, note, parent=self)
        for follow in (self.preview.relabel, self.relabelling.moved):
            controls.threshold_changed.connect(follow)

    def _busy_changed(self, line: str) -> None:
        if not is_deleted(self):
            self.controls.show_busy(line, self.owner.has("Run"))
            self.relabelling.say()  # a run's end may leave results the slider cannot reach

    def _wire_shortcuts(self) -> None:
        """The dock's napari actions (Preferences › Shortcuts), through the same doors as the buttons."""
        review = self.review_panel
        actions = {
            "run": self.run,
            "accept": review.accept,
            "next": lambda: review.step(1),
            "previous": lambda: review.step(-1),
        }
        self.destroyed.connect(add_shortcuts(self.viewer, actions))

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        """The sections, in the order of the work; a new panel is one ``self.sections.add`` line."""
        self.sections = Sections()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sections)
        add = self.sections.add
        mp = self.model_panel = ModelPanel()
        self.model_choice, self.sam2_file, self.adapter_file = mp.model_choice, mp.sam2_file, mp.adapter_file
        self.device, self.precision, self.image_size = mp.device, mp.precision, mp.image_size
        self.compute_panel = ComputePanel()
        model = stacked(self.compute_panel, mp)
        model.summary_changed = mp.summary_changed  # the folded section still says what runs
        add("Model", model, expanded=False, tooltip="Where it runs, which weights, on which device")
        rp = self.references_panel = ReferencesPanel(self.viewer)
        self.prompt_image, self.prompt_kind, self.class_id = rp.prompt_image, rp.prompt_kind, rp.class_id
        self.toggle_sign, self.references_label = rp.toggle_sign, rp.summary
        add("References", rp, tooltip="The annotated images: draw on prompt layers, or use any mask")
        self.targets_panel = TargetsPanel()
        self.targets, self.stack_mode = self.targets_panel.list, self.targets_panel.stack_mode
        self.large_panel = LargeImagesPanel(self._chosen_pixel_size)
        self.objects_panel = ObjectsPanel(self.viewer, self.owner)
        output = stacked(self.targets_panel, self.large_panel, self.objects_panel.choice)
        add("Targets and output", output, tooltip="The images to segment, and what a run gives")
        c = self.controls = RunControls(self.run, self.cancel)
        self.run_button, self.cancel_button = c.run_button, c.cancel_button
        self.status, self.progress = c.status, c.progress
        self.live_preview = c.live_preview
        add("Run", c, tooltip="Run, live preview and threshold")
        self.review_panel = ReviewPanel(self.viewer, self._describe_key)
        self.review_panel.reference_added.connect(self.references_panel.describe)
        self.review_panel.propagate_requested.connect(self.propagate_from)
        self.review = self.review_panel.queue
        to_review = stacked(self.review_panel, self.objects_panel)
        review = add("Review (least confident first)", to_review, expanded=False)  # until results come
        self.review_panel.filled.connect(lambda: review.expand())
        self.suggestion_panel = SuggestionPanel(self.viewer, self.suggest_next, self.owner)
        add("Annotate next", self.suggestion_panel, tooltip="Which image to annotate next, and why")
        self.evaluation_panel = EvaluationPanel(
            self.viewer,
            self.owner,
            self._check_inputs,
            self.review_panel,
            lambda: self.references_panel.mask_mode,
        )
        self.evaluation_panel.references_changed.connect(self.references_panel.describe_later)
        add(
            "How good is it?", self.evaluation_panel, expanded=False, tooltip="Check references, ground truth"
        )
        self.run_files = exports.RunFileButtons(self.export, self.load_run, self.save_references, self.owner)
        add("Export", self.run_files, tooltip="Write the results and references; load references")
        self.adapt_panel = AdaptPanel(lambda: self.plan().references, self.owner)
        add(
            "Adapt to these images",
            self.adapt_panel,
            expanded=False,
            before="Review (least confident first)",
            tooltip="Fine-tune SANSA's adapters on the annotated images (SAM2 frozen)",
        )

    def connect_server(self, address: str, credentials: str | os.PathLike):
        """Compute on a SANSA server (``napari-sansa serve``) from now on: runs, live preview,
        reference checks and suggestions; ``credentials``: a copy of its ``DIR/client``."""
        return self.compute_panel.connect_server(address, credentials)

    def disconnect_server(self) -> None:
        """Compute on this computer again."""
        self.compute_panel.disconnect_server()

    def _load_model(self, settings: WidgetSettings, cancel):
        """The model the owner's next job uses (in its worker): a server's while connected
        (panels/compute.py), else one loaded here (a download shown in the Model section)."""
        remote = self.compute_panel.remote
        return remote if remote is not None else load_model(settings, cancel, self.model_panel.download)

    def _compute_on(self, model) -> None:
        """Connected (a server's model: the next jobs use it) or disconnected (None: the next job
        loads a model here)."""
        self.owner.use(model)

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
        layer = next(
            (i for i in L.image_layers(self.viewer) if i.name == self.prompt_image.currentText()), None
        )
        return L.image_source(layer).pixel_size if layer is not None else 1.0

    def _layers_changed(self, event) -> None:
        """Result layers come and go with runs and change neither the images nor the references."""
        if not L.is_result(event.value):
            self._follow(event.value)
            self._refresh_layers()
            self.preview.changed()

    def _follow(self, layer) -> None:
        """Keep the references up to date when any annotation layer is drawn on or renamed."""
        if layer not in annotation_layers(self.viewer):
            return
        events = layer.events
        for callback in (self.references_panel.describe_later, self.preview.changed):
            for emitter in (
                events.data,
                events.name,
                getattr(events, "paint", None),
                getattr(events, "features", None),
            ):
                if emitter is not None:
                    emitter.disconnect(callback)
                    emitter.connect(callback)

    def _refresh_layers(self, event=None) -> None:
        images = L.image_layers(self.viewer)
        self.references_panel.reset_choices()
        annotated = {L.layer_id(a.image) for a in self.references_panel.assignments() if a.image is not None}
        self.targets_panel.show_images(images, annotated)
        self.evaluation_panel.reset_choices()
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

    def plan(self) -> Job:
        """What Run would do now: the references, the targets and how each is segmented (the
        widget's layers and choices read into a Qt-free :class:`~.core.jobs.Job`)."""
        sources = [L.image_source(layer) for layer in L.image_layers(self.viewer)]
        self._names = {s.image_id: s.name for s in sources}
        panel = self.references_panel
        assignments = panel.assignments()
        prompts = {s.image_id: panel.prompts(s, assignments) for s in sources}
        job = plan_job(sources, prompts, self.targets_panel.checked(), self.locked, self.through_stacks)
        job.class_names = {c: n for c, n in panel.class_names.items() if c in job.classes}
        return job

    def run(self, job: Job | None = None):
        """Segment every target like the references (what the Run button does): now, or after
        the job in progress (the status line says so); returns the worker (``None``: refused)."""
        worker = self.runner.start(job or self.plan(), self._settings())
        if worker is not None and self.compute_panel.remote is not None:
            worker.errored.connect(self.compute_panel.run_failed)  # the server gone: one line
        return worker

    def _check_inputs(self) -> CheckInputs | None:
        """Check references' references, as a run would take them."""
        job = self.plan()
        names = [self._describe_key(key) for key in job.reference_keys]
        return CheckInputs(job.references, names, list(job.reference_keys))

    def cancel(self) -> None:
        """Cancel what the status line shows: the job going (a run stops after the target in
        progress, its finished targets kept) and every job waiting for it."""
        self.runner.cancel()
        self.owner.cancel()

    @property
    def worker(self):
        """The running run's worker (``None`` between runs)."""
        return self.runner.worker

    @property
    def model(self):
        """The model the widget's jobs use (``None`` before the first loads it)."""
        return self.owner.model

    @property
    def failures(self) -> list[str]:
        """The last run's skipped targets, each with why."""
        return self.runner.failures

    @property
    def estimate(self) -> str:
        """The last run's time estimate, as shown in the status line."""
        return self.runner.estimate

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

    def suggest_next(self) -> str | GeneratorWorker | None:
        """Name the unannotated image (or plane) whose annotation should help most, show it and
        say why (the *Suggest next* button). Returns at once: the name when the images' features
        are at hand, else the worker that encodes and ranks them, whose answer lands in
        :attr:`suggestion`; ``None`` when there is none yet (told why)."""
        panel = self.suggestion_panel
        running = self.owner.has("Run")  # it ranks the results of the last run: refused during one
        found = panel.suggest(self.model, self.plan(), self.scores, running, self._suggested)
        return self._suggested(found) if isinstance(found, TargetKey) else found

    def _suggested(self, key: TargetKey) -> str:
        self.prompt_image.setCurrentText(self._names[key.image_id])  # prompts go on it next
        return self._describe_key(key)

    @property
    def suggestion(self) -> str | None:
        """The last *Suggest next*'s answer (``None`` while it is being worked out)."""
        return self.suggestion_panel.suggestion

    # ------------------------------------------------------------------ export
    def export(
        self, folder: str | os.PathLike, overwrite: bool = False, formats: Sequence[str] = ()
    ) -> GeneratorWorker:
        """Write every result layer (one file per image or stack), objects, the reference set and
        class names; ``formats``: also "geojson" (QuPath) and/or "coco". Files that would be
        replaced without ``overwrite`` are refused at once (:class:`SansaError`); the files are
        written in a worker, which this returns (progress and Cancel in the dock; the files in
        ``run_files.written`` when it is done)."""
        if self.run_files.job.running():
            raise SansaError("An export is going: wait for it to finish, or cancel it.")
        if self.owner.has("Run"):  # the layers are taken now: a run's later results would be missed
            raise SansaError("A run is going: export its results when it has finished, or cancel it.")
        objects = self.objects_panel.layers.export_later(folder, overwrite)
        extra = {"formats": formats, "object_layers": self.objects_panel.layers}
        plan = exports.plan_export(
            self.viewer, folder, self._record_parts, overwrite=overwrite, objects=objects, **extra
        )
        return self.run_files.write(plan)

    def save_references(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the references as a reference set (a new or empty folder, or over a set)."""
        return exports.save_run_references(folder, self._record_parts, overwrite=overwrite)

    def _record_parts(self) -> exports.ExportParts:
        job = self.plan()  # also names the images
        info = self.model.info if self.model is not None else None
        return record_parts(job, self._names, info, self._settings())

    def restore_session(self, folder: str | os.PathLike | None = None) -> Restored:
        """Bring back a saved session (by default the one the dock offers: its images are open)
        with its references, results (corrections included), acceptances and model settings."""
        restored = self.sessions_panel.restore(folder)
        self.references_panel.class_names.update(restored.class_names)
        self.references_panel.describe()
        return restored

    def load_run(self, path: str | os.PathLike) -> int:
        """Recreate the references (and model settings) of a reference set or run record; returns how many."""
        loaded = exports.open_references_in_viewer(self.viewer, path, self.model_panel, self.add_prompt_layer)
        panel = self.references_panel
        panel.class_names.update(loaded.class_names)
        panel.class_name.setText(panel.class_names.get(panel.class_id.value(), ""))
        panel.describe()
        return loaded.count
