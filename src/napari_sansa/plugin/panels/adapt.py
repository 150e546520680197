"""Adapt to these images: fine-tune the adapters on the annotated images, in a worker thread.

The run's references (masks, clicks, boxes, scribbles) are the training images; a share of the
mask-annotated ones is held out and scored. The panel shows a progress bar and a small live
plot of the loss and the held-out IoU, and Cancel keeps the best state so far. When done, the
widget's runs use the adapted model (until the model settings change), and *Save adapter…*
writes it as an adapter file that loads wherever an adapter does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

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

    news = Signal(object)  # the loaded model, then (step, steps, loss, held-out IoU, best), from the worker

    def __init__(self, references: Callable[[], list], settings: Callable[[], object], runner) -> None:
        """``references()``: the run's references; ``settings()``: the widget's settings;
        ``runner``: the widget's runner, whose model is adapted and then used."""
        super().__init__()
        self._references, self._settings, self.runner = references, settings, runner
        self.worker = None
        self.report = None
        self.cancelled = threading.Event()
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
        """Adapt the model to the references in a worker thread; returns the worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None or self.runner.running():
            notifications.error("Wait for the current run to finish, or cancel it.")
            return None
        references = self._references()
        if not references:
            notifications.error("No references: annotate a few images first (masks on at least three).")
            return None
        steps = steps or self.steps.value()
        settings = self._settings()
        key, get_model = self.runner.model_for(settings, self.cancelled)  # Cancel stops a download at once
        self.cancelled.clear()
        self.worker = create_worker(
            _adapt, get_model, references, steps, self.cancelled, self._emit, _start_thread=False,
            _connect={"returned": self._on_done, "errored": self._on_error, "finished": self._on_finished},
        )  # fmt: skip
        self._key = key
        self.adapt_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.runner.panels.controls.run_button.setEnabled(False)
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.progress.show()
        self.plot.clear(steps)
        self.plot.show()
        self.status.setText("Loading the model and scoring the held-out images…")
        self.worker.start()
        return self.worker

    def _emit(self, item) -> None:
        """From the worker thread: hand the news to the main thread (a queued signal)."""
        with contextlib.suppress(RuntimeError):  # the widget is gone (napari closing)
            self.news.emit(item)

    def cancel(self) -> None:
        """Stop after the current step; the best state so far is kept."""
        if self.worker is not None:
            self.cancelled.set()
            self.status.setText("Cancelling: keeping the best state so far…")

    def _on_news(self, news) -> None:
        if not isinstance(news, tuple):  # the model, once loaded
            self.runner.adopt(news, self._key)
            return
        step, steps, loss, iou, best = news
        self.progress.setValue(step)
        self.plot.add(step, loss, iou)
        shown = f"step {step} / {steps}, loss {loss:.3f}"
        self.status.setText(shown + (f", held-out IoU {best:.3f} (best)" if best is not None else ""))

    def _on_done(self, report) -> None:
        self.report = report
        self.runner.panels.model.show_running(self.runner.model)
        self.save_button.setEnabled(True)
        self.status.setText(
            f"Adapted: {report.summary()}. Runs now use the adapted model; save it to keep it."
        )

    def _on_error(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, SansaError) else f"Adapting failed: {type(exc).__name__}: {exc}"
        notifications.error(message)
        self.status.setText(message)

    def _on_finished(self) -> None:
        self.worker = None
        self.adapt_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.runner.panels.controls.run_button.setEnabled(True)
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
            written = self.runner.model.save_adapter(path)
        except SansaError as exc:
            notifications.error(str(exc))
            return
        self.status.setText(f"Adapter saved to {written}.")


def _adapt(get_model, references, steps: int, cancel: threading.Event, news) -> object:
    """In the worker thread: load the model, adapt it (``news`` hears of each step); the report."""
    model = get_model()
    news(model)
    return model.adapt(
        references,
        steps=steps,
        progress=lambda n: news((n.step, n.steps, n.loss, n.held_out_iou, n.best_iou)),
        cancel=cancel,
    )
