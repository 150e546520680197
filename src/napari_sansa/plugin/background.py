"""A job in a napari worker, shown in the dock: a line saying what it does, a progress bar, Cancel.

A job is a Qt-free generator function (in :mod:`.core`) that yields
:class:`~.core.progress.Progress` and returns its answer, plus a handler for that answer. The
work runs in napari's ``create_worker`` thread; napari's thread only shows progress and hands
the answer to the handler. Cancel stops the generator at its next ``yield``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.progress import Progress
from napari_sansa.plugin.qt_lifetime import is_deleted

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


class BackgroundJob(QWidget):
    """One job at a time in a worker, with its status line, progress bar and Cancel (hidden
    while idle). ``name`` says what the job is in messages ("Export", "Suggest next")."""

    idle = Signal()  # a job has finished (done, failed or cancelled): another may start

    def __init__(self, name: str, cancel_tip: str = "Stop after the step in progress") -> None:
        super().__init__()
        self.name = name
        self.worker = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(cancel_tip)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self._show(False)

    def _show(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)

    def running(self) -> bool:
        """Whether a job's worker is going."""
        return self.worker is not None

    def start(self, work: Callable[..., Generator], *args, done: Callable[[object], None]) -> GeneratorWorker:
        """``work(*args)`` in a worker; ``done(answer)`` on napari's thread; returns the worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            raise SansaError(f"{self.name} is already going: wait for it, or cancel it.")
        handlers = {
            "yielded": self._progressed,
            "returned": lambda answer: self._alive() and done(answer),
            "errored": self._failed,
            "aborted": lambda: self._alive() and self.status.setText(f"{self.name} cancelled."),
            "finished": self._finished,
        }
        self.worker = create_worker(work, *args, _start_thread=False, _connect=handlers)
        self.progress.setRange(0, 0)  # busy until the first step says how many
        self.status.setText(f"{self.name}: starting…")
        self._show(True)
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Stop the job at its next step (a file in progress is finished, never left half written)."""
        if self.worker is not None:
            self.worker.quit()
            self.status.setText(f"Cancelling {self.name.lower()}…")

    def _alive(self) -> bool:
        return not is_deleted(self)

    def _progressed(self, progress: Progress) -> None:
        if self._alive() and self.worker is not None and not self.worker.abort_requested:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            self.status.setText(f"{progress.what}… ({progress.done} / {progress.total})")

    def _failed(self, exc: Exception) -> None:
        message = (
            str(exc) if isinstance(exc, SansaError) else f"{self.name} failed: {type(exc).__name__}: {exc}"
        )
        notifications.error(message)
        if self._alive():
            self.status.setText(message)

    def _finished(self) -> None:
        self.worker = None
        if self._alive():
            self._show(False)
            self.idle.emit()
