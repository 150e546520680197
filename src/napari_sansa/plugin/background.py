"""A job in a napari worker, shown in the dock: a line saying what it does, a progress bar, Cancel.

A job is a Qt-free generator function (in :mod:`.core`) that yields
:class:`~.core.progress.Progress` and returns its answer, plus a handler for that answer. The
work runs in napari's ``create_worker`` thread; napari's thread only shows progress and hands
the answer to the handler. Cancel stops the generator at its next ``yield``.

A job that uses the model (Suggest next) or that the user must not start beside a run (Export)
goes through the model's owner (:class:`~.core.work_queue.ModelOwner`): it waits its turn, the
owner's status line says what it waits for, and its ``work`` gets the owner's model first.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.progress import Progress
from napari_sansa.plugin.core.work_queue import ModelOwner, Task
from napari_sansa.plugin.qt_lifetime import is_deleted

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


class BackgroundJob(QWidget):
    """One job at a time in a worker, with its status line, progress bar and Cancel (hidden
    while idle). ``name`` says what the job is in messages ("Export", "Suggest next")."""

    idle = Signal()  # a job has finished (done, failed or cancelled): another may start

    def __init__(
        self,
        name: str,
        cancel_tip: str = "Stop after the step in progress",
        owner: ModelOwner | None = None,
        first: bool = False,
    ) -> None:
        """``owner``: the model's owner, whose queue the job goes through (else it runs at once);
        ``first``: before the jobs that wait (it finishes the job in progress)."""
        super().__init__()
        self.name, self.owner, self.first = name, owner, first
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

    def start(
        self, work: Callable[..., Generator], *args, done: Callable[[object], None], model: bool = False
    ) -> GeneratorWorker | None:
        """``work(*args)`` (``work(the model, *args)`` with ``model``) in a worker, now or when the
        owner's queue gets to it; ``done(answer)`` on napari's thread; returns the worker
        (``None``: the owner refused it, and said why)."""
        if self.worker is not None:
            raise SansaError(f"{self.name} is already going: wait for it, or cancel it.")
        handlers = {
            "yielded": self._progressed,
            "returned": lambda answer: self._alive() and done(answer),
            "errored": self._failed,
            "aborted": lambda: self._alive() and self.status.setText(f"{self.name} cancelled."),
            "finished": self._finished,
        }
        if self.owner is None:
            from napari.qt.threading import create_worker

            self.worker = create_worker(work, *args, _start_thread=False, _connect=handlers)
            self._begin()
            self.worker.start()
            return self.worker
        task = Task(
            self.name, _owned, (work, model, *args), handlers=handlers, begin=self._begin, first=self.first
        )
        if self.owner.submit(task) is None:
            return None
        self.worker = task.worker
        return self.worker

    def _begin(self) -> None:
        """Its turn has come (napari's thread): show the bar, busy until the first step."""
        self.progress.setRange(0, 0)
        self.status.setText(f"{self.name}: starting…")
        self._show(True)

    def cancel(self) -> None:
        """Stop the job at its next step (a file in progress is finished, never left half
        written), or drop it while it waits its turn."""
        if self.worker is None:
            return
        self.status.setText(f"Cancelling {self.name.lower()}…")
        if self.owner is not None:
            self.owner.cancel(self.name)
        else:
            self.worker.quit()

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


def _owned(get_model: Callable[[], object], work: Callable[..., Generator], model: bool, *args):
    """A job's work as a task of the model's owner, whose first argument is ``get_model``."""
    return (yield from (work(get_model(), *args) if model else work(*args)))
