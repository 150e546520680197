"""A run of the widget: its task, what its worker reports, and the status while it goes.

:meth:`Runner.start` hands :func:`.jobs.run_job` to the model's owner
(:class:`.core.work_queue.ModelOwner`) as a task: it starts at once, or after the job in
progress (Adapt, Check references...), with the model the owner holds then. Main-thread
handlers stay short (napari must not stall): the result layers are added a few per event-loop
turn before the worker may start, and each finished target only assigns its plane
(:mod:`.result_writer`). Tiles of large targets come back through a queued Qt signal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from qtpy.QtCore import QObject, QTimer, Signal

from napari_sansa.engine.errors import DownloadCancelled, SansaError
from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.jobs import (
    Estimated,
    ModelReady,
    Notice,
    Started,
    TargetDone,
    TargetFailed,
    TilesMissing,
    run_job,
)
from napari_sansa.plugin.core.session import Job, TargetKey
from napari_sansa.plugin.core.settings import WidgetSettings, save_settings
from napari_sansa.plugin.core.work_queue import ModelOwner, Task
from napari_sansa.plugin.panels.model import LOCAL
from napari_sansa.plugin.panels.objects import ObjectsPanel
from napari_sansa.plugin.panels.review import ReviewPanel
from napari_sansa.plugin.panels.run_controls import RunControls
from napari_sansa.plugin.panels.tiling import LargeImagesPanel, plan_tiling
from napari_sansa.plugin.quiet_gc import QuietCollections
from napari_sansa.plugin.viewer.result_writer import ResultWriter
from napari_sansa.plugin.viewer.tile_progress import TileProgress

log = logging.getLogger(__name__)
PREPARE_TURN_S = 0.25  # time adding result layers per event-loop turn: napari redraws between turns


@dataclass(frozen=True, eq=False)
class RunPanels:
    """The widget's sections a run reads and updates."""

    large: LargeImagesPanel
    controls: RunControls
    review: ReviewPanel
    objects: ObjectsPanel


class Runner(QObject):
    """Asks for runs and shows their events; the model's owner decides when each starts."""

    tile_done = Signal(object)  # a tile of a large target, emitted by the worker thread

    def __init__(
        self,
        viewer,
        owner: ModelOwner,
        panels: RunPanels,
        describe: Callable[[TargetKey], str],
        gone: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        """``describe`` names a target in messages; ``gone`` says the widget was destroyed."""
        super().__init__(parent)
        self.viewer, self.owner, self.panels = viewer, owner, panels
        self._describe, self._gone = describe, gone
        self.worker = None  # the asked run's worker, from when it is asked (it may wait) to its end
        self.task: Task | None = None
        self._begun: Task | None = None  # the run whose turn came (a dropped one never begins)
        self.ready = threading.Event()  # result layers added: the worker may start
        self._collections = QuietCollections()
        self._active_before = None
        self._started = 0.0
        self._done = 0
        self._total = 0
        self.failures: list[str] = []
        self.estimate = ""
        self._through: set[str] = set()
        self.tiles = TileProgress(viewer, panels.controls, describe)
        self.results = ResultWriter(viewer, panels.review, panels.objects, self.tiles, self.running)
        self.tile_done.connect(self._on_tile)

    def running(self) -> bool:
        """Whether a run is asked for and not finished (working or waiting its turn)."""
        return self.worker is not None

    @property
    def cancelled(self) -> threading.Event:
        """The current (or last) run's cancel event."""
        return self.task.cancel if self.task is not None else threading.Event()

    def start(self, job: Job, settings: WidgetSettings):
        """Ask for a run of the job; returns its worker, started now or when the job in
        progress ends (``None``: refused, told why)."""
        if not self._runnable(job, settings):
            return None
        save_settings(settings)
        task = Task("Run", run_job, handlers=self._handlers())
        task.begin = partial(self._begin, job, task)
        task.args = (job, task.cancel, self.ready)
        task.kwargs = {
            "objects": self.panels.objects.splitter(job.class_names),
            "threshold": lambda: self.results.threshold,  # the slider's value as each target is labelled
            "output": self._output,
            "notify": self._emit_tile,
        }
        if self.owner.submit(task) is None:
            return None
        self.task, self.worker = task, task.worker
        if task is not self.owner.running:
            self.panels.controls.status.setText("")  # the busy line says what the run waits for
        return self.worker

    def _runnable(self, job: Job, settings: WidgetSettings) -> bool:
        """Whether the job can run (else the user is told why in one line); plans its tiling."""
        if not job.references:
            notifications.error(
                "No references: draw on an image with a prompt layer, or open a mask or points layer "
                "that fits an image (see the layer → image list)."
            )
            return False
        if not job.targets:
            notifications.error(
                "Nothing to segment: check some target images (an annotated image too, to segment it as well), or unlock results to re-run them."
            )
            return False
        try:
            plan_tiling(job, self.panels.large, settings.image_size)
        except SansaError as exc:  # e.g. an overlap as large as the tiles
            notifications.error(str(exc))
            return False
        return True

    def _handlers(self) -> dict:
        return {"yielded": self._on_event, "errored": self._on_error, "finished": self._on_finished}

    def _output(self, key: TargetKey, hw: tuple, dtype):
        """Where a tiled target's labels go (from the worker: the run's layers exist by then)."""
        return self.results.layers.writer(key, hw, dtype, locked=self.results.locked_now)

    def _begin(self, job: Job, task: Task) -> None:
        """The run's turn has come: add its result layers (a few per event-loop turn), then let
        its worker go."""
        self.task = self._begun = task
        self._through = {stack.source.image_id for stack in job.stacks}  # their objects link up
        self.failures = []
        self._done, self._total = 0, len(job.targets)
        self.ready.clear()
        self.results.start(job, label_dtype(job.classes))
        self.tiles.start()
        self._active_before = self.viewer.layers.selection.active
        loading = not self.owner.loaded(task.settings)
        first_use = loading and task.settings.model != LOCAL
        message = "Loading the SANSA model" if loading else "Starting"
        message += " (the first use downloads about 1 GB)" if first_use else ""
        controls = self.panels.controls
        controls.status.setText("Preparing the result layers…")
        controls.set_progress(0, self._total)
        controls.progress.show()
        self._collections.freeze()  # until _on_finished
        QTimer.singleShot(1, partial(self._prepare_layers, message + "…"))

    def _prepare_layers(self, then: str) -> None:
        """Add the run's result layers a few per event-loop turn, then let the worker go."""
        if self._gone():
            return  # `destroyed` has released the worker
        more = False
        try:
            more = not self.cancelled.is_set() and self.results.layers.prepare(PREPARE_TURN_S)
        finally:
            if more:
                QTimer.singleShot(1, partial(self._prepare_layers, then))
            else:
                self.ready.set()
                self._restore_selection()
                if not self.cancelled.is_set():
                    self.panels.controls.status.setText(then)

    def _restore_selection(self) -> None:
        """Adding a layer selects it; give the user back the layer they had selected."""
        layer = self._active_before
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.selection.active = layer  # a no-op if it still is

    def _emit_tile(self, event) -> None:
        """From the worker thread: hand a finished tile to the main thread (queued)."""
        with contextlib.suppress(RuntimeError):  # the widget is gone (napari closing): the run stops
            self.tile_done.emit(event)

    def _on_tile(self, event) -> None:
        if not self._gone() and self.worker is not None:
            self.tiles.on_tile(event, self.results.layers, self.panels.review.locked)

    def cancel(self) -> None:
        """Stop the run after the target in progress (finished targets are kept), or drop it if
        it waits."""
        if self.task is not None and self.task is self.owner.running:
            loading = not self.owner.loaded()  # a model still loading (downloading) stops at once
            self.panels.controls.status.setText(
                "Cancelling…" if loading else "Cancelling after the current image…"
            )
        if self.task is not None:
            self.owner.cancel("Run")

    def _on_event(self, event) -> None:
        if self._gone():
            return
        controls = self.panels.controls
        if isinstance(event, ModelReady):
            pass  # the model's owner keeps it, and says so
        elif isinstance(event, Estimated):
            self.estimate = event.text
            controls.status.setText(f"Estimate: {event.text}")
        elif isinstance(event, Started):
            self._total, self._done, self._started = event.total, 0, time.monotonic()
            controls.set_progress(0, event.total)
            controls.status.setText(f"0 / {event.total} images")
        elif isinstance(event, Notice):
            notifications.info(event.text)
        elif isinstance(event, TilesMissing):
            notifications.error(
                f"Some tiles of {self._describe(event.key)} could not be read and are left empty; "
                f"the rest is shown. {' '.join(event.messages)}"
            )
        elif isinstance(event, TargetFailed):
            self.failures.append(f"{self._describe(event.key)}: {event.message}")
            notifications.error(f"Skipped {self.failures[-1]}")
        elif isinstance(event, TargetDone):
            self.results.write(event.key, event.prediction, event.objects, event.threshold)
            self._done += 1
            controls.set_progress(self._done, self._total)
            left = (time.monotonic() - self._started) / self._done * (self._total - self._done)
            self._show_status(
                f"{self._done} / {self._total} images, about {left:.0f} s left (estimate: {self.estimate})"
            )

    def _on_error(self, exc: Exception) -> None:
        if self._gone() or isinstance(exc, DownloadCancelled):  # the user's cancel: the status says so
            return
        if isinstance(exc, SansaError):
            notifications.error(str(exc))
        else:
            log.exception("SANSA run failed", exc_info=exc)
            notifications.error(f"The run failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._collections.unfreeze()
        if self._gone():
            return
        if self._begun is not self.task:
            self.worker = None  # dropped while it waited: it never began
            self.panels.controls.status.setText("The run was cancelled before it began.")
            return
        self.panels.controls.progress.hide()
        if self.results.layers is not None:
            self.results.layers.remove_empty()
        self.worker = None
        self.panels.review.refresh()
        self.panels.objects.refresh()
        self.panels.objects.link(self._through)  # in a worker; the list follows when done
        self._show_status("")

    def _show_status(self, running: str) -> None:
        # napari may deliver the worker's last results after its `finished` signal
        status = self.panels.controls.status
        if self.worker is not None:
            status.setText(running)
            return
        done = f"{self._done} of {self._total} images segmented" + self.tiles.summary()
        if self.failures:
            done += f", {len(self.failures)} skipped"
        status.setText(done + (" (cancelled; finished images kept)." if self.cancelled.is_set() else "."))
