"""The live preview: while the user draws on a reference, the looked-at target is segmented again.

Every change to a reference layer (a stroke, a fill, a point or shape added or moved, data
replaced) and every move to another plane restarts a short timer; when it runs out, the
looked-at target (:func:`.preview_layers.looked_at`) is predicted in one worker
(:func:`.core.preview.predict_preview`). One worker at a time: changes that come while it
works only make its result stale (a generation counter), and when it ends a stale result is
dropped and the newest state predicted instead — never a queue of stale predictions. The
preview pauses while a Run goes; the run's results replace the preview layers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from qtpy.QtCore import QObject, QTimer

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.preview import PreviewResult, predict_preview, preview_request
from napari_sansa.plugin.core.session import Job
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.panels.run_controls import RunControls
from napari_sansa.plugin.runner import Runner
from napari_sansa.plugin.viewer.large import is_lazy
from napari_sansa.plugin.viewer.preview_layers import looked_at, preview_layer, show_preview

log = logging.getLogger(__name__)
DEBOUNCE_MS = 250  # quiet time after the last change before predicting


class LivePreview(QObject):
    """Predicts the looked-at target after each change to the references, while *Live preview* is on."""

    def __init__(
        self,
        viewer,
        runner: Runner,
        controls: RunControls,
        plan: Callable[[], Job],
        settings: Callable[[], WidgetSettings],
        gone: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer, self.runner, self.controls = viewer, runner, controls
        self._plan, self._settings, self._gone = plan, settings, gone
        self.generation = 0  # changes seen so far
        self._asked = -1  # the generation the worker in flight answers
        self.worker = None
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
        """Predict the looked-at target now, unless a prediction is in flight (its end restarts this)."""
        if self.worker is not None or not self.on or self._gone():
            return
        if self.runner.running():
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
        from napari.qt.threading import create_worker

        model_key, get_model = self.runner.model_for(self._settings())
        self._asked = request.generation
        self._say("" if self.runner.loaded(model_key) else "Live preview: loading the model…")
        self.worker = create_worker(
            predict_preview,
            get_model,
            request,
            _connect={
                "returned": partial(self._done, model_key),
                "errored": self._failed,
                "finished": self._finished,
            },
        )

    def _done(self, model_key: tuple, result: PreviewResult) -> None:
        if self._gone():
            return
        self.runner.adopt(result.model, model_key)
        if result.request.generation != self.generation or not self.on or self.runner.running():
            return  # superseded by a newer change: dropped, the newest state is predicted next
        request = result.request
        show_preview(self.viewer, request.source, request.key, result.labels, request.class_names)
        self.last = result
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

    def _finished(self) -> None:
        self.worker = None
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
