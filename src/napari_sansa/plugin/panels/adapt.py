"""Adapt to these images: fine-tune the adapters on the annotated images, in a worker thread.

The run's references (masks, clicks, boxes, scribbles) are the training images; a share of the
mask-annotated ones is held out and scored. The panel shows a progress bar and a small live
plot of the loss and the held-out IoU, and Cancel keeps the best state so far. Adapting is a
task of the model's owner (:class:`~napari_sansa.plugin.core.work_queue.ModelOwner`): it waits
for the job in progress, and the jobs asked meanwhile (a Run...) wait for it. When done, the
owner holds the adapted model and the widget's runs use it (until the model settings change);
*Save adapter…* writes it as an adapter file that loads wherever an adapter does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from functools import partial

from qtpy.QtCore import QPointF, Signal
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.work_queue import ModelOwner, Task

LOSS_COLOUR, IOU_COLOUR = QColor(230, 140, 60), QColor(90, 170, 250)


class LivePlot(QWidget):
    """Two polylines: the loss (a moving average, scaled to its range) and the held-out IoU (0 to 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(70)
        self.losses: list[float] = []
        self.ious: list[tuple[int, float]] = []
        self.steps = 1
        self.setToolTip("orange: training loss; blue: held-out IoU (0 to 1)")

    def clear(self, steps: int) -> None:
        self.losses, self.ious, self.steps = [], [], max(steps, 1)
        self.update()

    def add(self, step: int, loss: float, iou: float | None) -> None:
        self.losses.append(loss)
        if iou is not None:
            self.ious.append((step, iou))
        self.update()

    def _line(self, points: list[tuple[float, float]], low: float, high: float) -> QPolygonF:
        w, h, span = self.width() - 4, self.height() - 4, (high - low) or 1.0
        return QPolygonF([QPointF(2 + w * x / self.steps, 2 + h * (1 - (y - low) / span)) for x, y in points])

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(QPen(QColor(120, 120, 120), 1))
        painter.drawRect(0, 0, self.width() - 1, self.height() - 1)
        if self.losses:
            smooth, mean = [], self.losses[0]
            for loss in self.losses:  # a moving average: one episode's loss is noisy
                mean = 0.9 * mean + 0.1 * loss
                smooth.append(mean)
            painter.setPen(QPen(LOSS_COLOUR, 1.5))
            painter.drawPolyline(self._line(list(enumerate(smooth, 1)), min(smooth), max(smooth)))
        if self.ious:
            painter.setPen(QPen(IOU_COLOUR, 2))
            painter.drawPolyline(self._line([(float(s), v) for s, v in self.ious], 0.0, 1.0))
        painter.end()


class AdaptPanel(QWidget):
    """Steps, Adapt and Cancel, a progress bar, the live plot and Save adapter…"""

    news = Signal(object)  # (step, steps, loss, held-out IoU, best), from the worker

    def __init__(self, references: Callable[[], list], owner: ModelOwner) -> None:
        """``references()``: the run's references; ``owner``: the model's owner, whose model is
        adapted and then used."""
        super().__init__()
        self._references, self.owner = references, owner
        self.worker = None
        self.task: Task | None = None
        self._began: Task | None = None
        self.report = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.steps = QSpinBox(minimum=1, maximum=100_000, value=300, suffix=" steps")
        self.steps.setMinimumWidth(110)  # "300 steps" whole on a laptop screen
        self.steps.setToolTip("Each step learns from one annotated image, segmented from a few others")
        self.adapt_button = QPushButton("Adapt to these images…")
        self.adapt_button.setToolTip(
            "Fine-tune the adapters on the annotated images (SAM2 frozen); a quarter of the images "
            "with masks is held out to score the result"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop after the current step, keeping the best state so far")
        row.addWidget(self.steps)
        row.addWidget(self.adapt_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        self.progress.hide()
        layout.addWidget(self.progress)
        self.plot = LivePlot()
        self.plot.hide()
        layout.addWidget(self.plot)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.save_button = QPushButton("Save adapter…")
        self.save_button.setEnabled(False)
        self.save_button.setToolTip(
            "Write the adapted adapters as an adapter file: it loads wherever an adapter does"
        )
        layout.addWidget(self.save_button)
        self.adapt_button.clicked.connect(lambda: self.start())
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self._choose_file)
        self.news.connect(self._on_news)

    def start(self, steps: int | None = None):
        """Adapt the model to the references in a worker thread, now or after the job in
        progress; returns the worker (``None``: refused, told why)."""
        references = self._references()
        if not references:
            notifications.error("No references: annotate a few images first (masks on at least three).")
            return None
        steps = steps or self.steps.value()
        task = Task("Adapt", _adapt)
        task.begin = partial(self._begin, task, steps)
        task.args = (references, steps, task.cancel, self._emit)
        task.handlers = {"returned": self._on_done, "errored": self._on_error, "finished": self._on_finished}
        if self.owner.submit(task) is None:
            return None
        self.task, self.worker = task, task.worker
        self.adapt_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.owner.running is not task:
            self.status.setText(f"Waits for {self.owner.running.name} to finish…")
        return self.worker

    def _begin(self, task: Task, steps: int) -> None:
        """Its turn has come (main thread): show the bar and the plot."""
        self._began = task
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.progress.show()
        self.plot.clear(steps)
        self.plot.show()
        self.status.setText("Loading the model and scoring the held-out images…")

    def _emit(self, item) -> None:
        """From the worker thread: hand the news to the main thread (a queued signal)."""
        with contextlib.suppress(RuntimeError):  # the widget is gone (napari closing)
            self.news.emit(item)

    def cancel(self) -> None:
        """Stop after the current step (the best state so far is kept), or drop it if it waits."""
        if self.task is not None and self.task is self.owner.running:
            self.status.setText("Cancelling: keeping the best state so far…")
        self.owner.cancel("Adapt")

    def _on_news(self, news) -> None:
        step, steps, loss, iou, best = news
        self.progress.setValue(step)
        self.plot.add(step, loss, iou)
        shown = f"step {step} / {steps}, loss {loss:.3f}"
        self.status.setText(shown + (f", held-out IoU {best:.3f} (best)" if best is not None else ""))

    def _on_done(self, adapted) -> None:
        model, self.report = adapted
        self.owner.replace(model)
        report = self.report
        self.save_button.setEnabled(True)
        self.status.setText(
            f"Adapted: {report.summary()}. Runs now use the adapted model; save it to keep it."
        )

    def _on_error(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, SansaError) else f"Adapting failed: {type(exc).__name__}: {exc}"
        notifications.error(message)
        self.status.setText(message)

    def _on_finished(self) -> None:
        if self._began is not self.task:
            self.status.setText("Adapting was cancelled before it began.")
        self.worker = None
        self.adapt_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.hide()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the adapter", "adapter_adapted.pth", "Adapter (*.pth)"
        )
        if path:
            self.save(path)

    def save(self, path) -> None:
        """Write the adapted model's adapters (the published adapter format)."""
        try:
            if self.report is None:
                raise SansaError("Adapt the model first: there is no adapted model to save.")
            written = self.owner.model.save_adapter(path)
        except SansaError as exc:
            notifications.error(str(exc))
            return
        self.status.setText(f"Adapter saved to {written}.")


def _adapt(get_model, references, steps: int, cancel: threading.Event, news) -> tuple[object, object]:
    """In the worker thread: load the model, adapt it (``news`` hears of each step); the adapted
    model and the report."""
    model = get_model()
    report = model.adapt(
        references,
        steps=steps,
        progress=lambda n: news((n.step, n.steps, n.loss, n.held_out_iou, n.best_iou)),
        cancel=cancel,
    )
    return model, report
