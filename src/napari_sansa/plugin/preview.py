"""The live preview: while the user draws on a reference, the looked-at target is segmented again.

Every change to a reference layer (a stroke, a fill, a point or shape added or moved, data
replaced) and every move to another plane restarts a short timer; when it runs out, the
looked-at target (:func:`.preview_layers.looked_at`) is predicted
(:func:`.core.preview.predict_preview`), a task of the model's owner
(:class:`.core.work_queue.ModelOwner`): it waits while another job uses the model, and a newer
change supersedes a preview still waiting — never a queue of stale predictions. Changes that
come while one works make its result stale (a generation counter): it is dropped, and the
newest state is predicted next. The preview pauses while a Run is asked for; the run's results
replace the preview layers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from qtpy.QtCore import QObject, QTimer

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.preview import PreviewResult, predict_preview, preview_request
from napari_sansa.plugin.core.session import Job
from napari_sansa.plugin.core.work_queue import ModelOwner, Task
from napari_sansa.plugin.panels.run_controls import RunControls
from napari_sansa.plugin.viewer.large import is_lazy
from napari_sansa.plugin.viewer.preview_layers import looked_at, preview_layer, show_preview

log = logging.getLogger(__name__)
DEBOUNCE_MS = 250  # quiet time after the last change before predicting


class LivePreview(QObject):
    """Predicts the looked-at target after each change to the references, while *Live preview* is on."""

    def __init__(
        self,
        viewer,
        owner: ModelOwner,
        controls: RunControls,
        plan: Callable[[], Job],
        gone: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer, self.owner, self.controls = viewer, owner, controls
        self._plan, self._gone = plan, gone
        self.generation = 0  # changes seen so far
        self._asked = -1  # the generation the latest asked prediction answers
        self.task: Task | None = None  # the latest asked prediction (working or waiting)
        self.worker = None  # its worker
        self.last: PreviewResult | None = None  # the preview on screen
        self.written = 0  # previews shown (stale ones are never shown)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        controls.live_preview.toggled.connect(self._toggled)
        viewer.dims.events.current_step.connect(self.changed)
        self.destroyed.connect(lambda: viewer.dims.events.current_step.disconnect(self.changed))

    @property
    def on(self) -> bool:
        return self.controls.live_preview.isChecked()

    def changed(self, event=None) -> None:
        """A reference (or the looked-at plane) changed: predict again once changes pause."""
        if not self._gone() and self.on:
            self.generation += 1
            self._timer.start()

    def _toggled(self, yes: bool) -> None:
        self.generation += 1  # a result in flight is stale either way
        if yes:
            self._timer.start()
        else:
            self._timer.stop()
            self._say("")

    def _say(self, text: str) -> None:
        self.controls.preview_status.setText(text)
        self.controls.preview_status.setVisible(bool(text))  # no empty line in the dock

    def _start(self) -> None:
        """Ask for a prediction of the looked-at target (superseding one that still waits)."""
        if not self.on or self._gone():
            return
        if self.owner.has("Run"):
            self._say("Live preview: paused while the run goes.")
            return
        job = self._plan()
        key = looked_at(self.viewer, {key for key, _ in job.targets})
        request = preview_request(job, key, self.generation, self.controls.threshold_logit) if key else None
        if request is None:
            self._say(
                "Live preview: draw a reference, and show a target image (checked under Targets)."
                if job.references
                else "Live preview: draw a reference to see a preview."
            )
            return
        if is_lazy(request.source.data) or request.source.levels:
            self._say(
                f"Live preview: {request.source.name} is a large image; press Run to segment it in tiles."
            )
            return
        self._asked = request.generation
        task = Task("Live preview", predict_preview, (request,), supersede=True)
        task.handlers = {
            "returned": self._done,
            "errored": self._failed,
            "finished": partial(self._finished, task),
        }
        self.task = self.owner.submit(task)
        self.worker = task.worker
        waits = self.owner.running is not task
        loading = "" if self.owner.loaded() else "Live preview: loading the model…"
        self._say(f"Live preview: waits for {self.owner.running.name}." if waits else loading)

    def _done(self, result: PreviewResult) -> None:
        if self._gone() or (self.task is not None and self.task.cancel.is_set()):
            return  # cancelled: its result is not shown
        if result.request.generation != self.generation or not self.on or self.owner.has("Run"):
            return  # superseded by a newer change: dropped, the newest state is predicted next
        request = result.request
        show_preview(self.viewer, request.source, request.key, result.labels, request.class_names)
        self.last = result
        if request.threshold != self.controls.threshold_logit:
            self.relabel(self.controls.threshold_logit)  # the slider moved while it was predicted
        self.written += 1
        where = request.key.describe(request.source.name)
        first = " (its first look: encoded once)" if result.encoder_passes else ""
        self._say(f"Preview of {where}: {result.seconds:.2f} s{first}")

    def _failed(self, exc: Exception) -> None:
        """Said in the dock, not in a pop-up: a preview fails again at each stroke until fixed."""
        if self._gone():
            return
        if not isinstance(exc, SansaError):
            log.error("The live preview failed", exc_info=exc)
        self._say(f"Live preview: {exc}" if isinstance(exc, SansaError) else f"Live preview failed: {exc!r}")

    def _finished(self, task: Task) -> None:
        if task is not self.task:
            return  # superseded while it waited, or a newer one was asked
        self.task = self.worker = None
        if self._gone():
            return
        if self.on and self._asked != self.generation and not self._timer.isActive():
            self._start()  # changes came while it worked: predict their state now

    def relabel(self, threshold: float) -> None:
        """Show the preview at another threshold (a logit), from its logits: no model call."""
        from napari_sansa.engine.runs.thresholds import labels_from_logits

        result = self.last
        if result is None or preview_layer(self.viewer, result.request.source.image_id) is None:
            return
        labels = labels_from_logits(result.logits, threshold, result.labels.dtype)
        request = result.request
        show_preview(self.viewer, request.source, request.key, labels)
