"""A run of the widget: its worker, what the worker reports, and the status while it goes.

:meth:`Runner.start` runs :func:`.jobs.run_job` in a napari ``thread_worker``. Main-thread
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

from napari_sansa.engine.errors import SansaError
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
from napari_sansa.plugin.model_loading import model_loader
from napari_sansa.plugin.panels.model import LOCAL, ModelPanel
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

    model: ModelPanel
    large: LargeImagesPanel
    controls: RunControls
    review: ReviewPanel
    objects: ObjectsPanel


class Runner(QObject):
    """Starts and cancels runs, and shows their events; one run at a time."""

    tile_done = Signal(object)  # a tile of a large target, emitted by the worker thread

    def __init__(
        self,
        viewer,
        panels: RunPanels,
        describe: Callable[[TargetKey], str],
        gone: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        """``describe`` names a target in messages; ``gone`` says the widget was destroyed."""
        super().__init__(parent)
        self.viewer, self.panels, self._describe, self._gone = viewer, panels, describe, gone
        self.model = None
        self._model_key: tuple | None = None
        self.worker = None
        self.cancelled = threading.Event()
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
        """Whether a run's worker is going."""
        return self.worker is not None

    def model_for(self, settings: WidgetSettings) -> tuple[tuple, Callable]:
        """The settings' model key and a function (for a worker) that loads it, or gives the loaded one."""
        return model_loader(settings, self.model, self._model_key)

    def loaded(self, key: tuple) -> bool:
        """Whether the model of these settings (their key) is loaded."""
        return self.model is not None and self._model_key == key

    def adopt(self, model, key: tuple) -> None:
        """Keep a model another worker (the live preview) loaded, for the next runs."""
        if self.model is not model:
            self.model, self._model_key = model, key
            self.panels.model.show_running(model)

    def model_getter(self, settings: WidgetSettings) -> Callable:
        """The settings' model for other background work (Check references), loaded in that
        work's thread (the loaded one if it fits) and kept for the next run."""
        key, get_model = self.model_for(settings)

        def get():
            model = get_model()
            self.model, self._model_key = model, key
            return model

        return get

    def start(self, job: Job, settings: WidgetSettings):
        """Segment the job's targets like its references; returns the worker (``None``: told why)."""
        from napari.qt.threading import create_worker

        if not job.references:
            notifications.error(
                "No references: draw on an image with a prompt layer, or open a mask or points layer "
                "that fits an image (see the layer → image list)."
            )
            return None
        if not job.targets:
            notifications.error(
                "Nothing to segment: check some target images (an annotated image too, to segment it as well), or unlock results to re-run them."
            )
            return None
        try:
            plan_tiling(job, self.panels.large, settings.image_size)
        except SansaError as exc:  # e.g. an overlap as large as the tiles
            notifications.error(str(exc))
            return None
        save_settings(settings)
        key, get_model = self.model_for(settings)
        self._through = {stack.source.image_id for stack in job.stacks}  # their objects link up
        self.failures = []
        self._done, self._total = 0, len(job.targets)
        self.cancelled.clear()
        self.ready.clear()
        layers = self.results.start(job, label_dtype(job.classes))
        self.tiles.start()
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
            self.cancelled,
            self.ready,
            objects=self.panels.objects.splitter(job.class_names),
            threshold=self.panels.controls.threshold_logit,
            output=partial(layers.writer, locked=self.results.locked_now),
            notify=self._emit_tile,
            _start_thread=False,
            _connect=handlers,
        )
        controls = self.panels.controls
        controls.running(True)
        if not self.loaded(key):
            first_use = settings.model != LOCAL
            message = "Loading the SANSA model" + (
                " (the first use downloads about 1 GB)" if first_use else ""
            )
        else:
            message = "Starting"
        controls.status.setText("Preparing the result layers…")
        controls.set_progress(0, self._total)
        controls.progress.show()
        self._collections.freeze()  # until _on_finished
        self.worker.start()  # it waits for the result layers
        QTimer.singleShot(1, partial(self._prepare_layers, message + "…"))
        return self.worker

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
        """Stop after the target in progress; finished targets are kept."""
        if self.worker is not None:
            self.cancelled.set()
            self.ready.set()
            self.worker.quit()
            self.panels.controls.status.setText("Cancelling after the current image…")

    def _on_event(self, key, event) -> None:
        if self._gone():
            return
        controls = self.panels.controls
        if isinstance(event, ModelReady):
            self.model, self._model_key = event.model, key
            self.panels.model.show_running(event.model)
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
            self.results.write(event.key, event.prediction, event.objects)
            self._done += 1
            controls.set_progress(self._done, self._total)
            left = (time.monotonic() - self._started) / self._done * (self._total - self._done)
            self._show_status(
                f"{self._done} / {self._total} images, about {left:.0f} s left (estimate: {self.estimate})"
            )

    def _on_error(self, exc: Exception) -> None:
        if self._gone():
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
        self.panels.controls.progress.hide()
        if self.results.layers is not None:
            self.results.layers.remove_empty()
        self.worker = None
        self.panels.controls.running(False)
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
