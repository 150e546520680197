"""The Qt side of the model's queue: each task of :class:`.core.work_queue.ModelOwner` runs in
a napari worker (``create_worker``), whose yields, return value and errors reach the task's
handlers on napari's thread; the owner's news become Qt signals for the dock.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, Signal

from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.core.work_queue import Loader, Model, ModelOwner, Task
from napari_sansa.plugin.qt_lifetime import ThreadNews


class Workers(QObject):
    """Runs the owner's tasks in napari workers and says what it does (``status``, ``model_changed``)."""

    status = Signal(str)  # the owner's status line ("" when idle)
    model_changed = Signal(object)  # a model was loaded or replaced (delivered on napari's thread)

    def __init__(
        self, settings: Callable[[], WidgetSettings], load: Loader, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.owner = ModelOwner(settings, load, self, notifications.error)
        self.owner.on_status(self.status.emit)
        self._model_news = ThreadNews()  # a model loaded in a worker reaches napari's thread
        self._model_news.news.connect(self.model_changed)
        self.owner.on_model(self._model_news.emit)

    def prepare(self, task: Task, get_model: Callable[[], Model]) -> None:
        from napari.qt.threading import create_worker

        handlers = {**task.handlers, "finished": lambda: self._finished(task)}
        task.worker = create_worker(
            task.work, get_model, *task.args, _start_thread=False, _connect=handlers, **task.kwargs
        )

    def _finished(self, task: Task) -> None:
        """The task's own ``finished`` handler, then the owner's word, in one slot: between the
        two, nothing may see the task's panel idle while the owner still counts it as working."""
        try:
            finished = task.handlers.get("finished")
            if finished is not None:
                finished()
        finally:
            self.owner.finished(task)

    def start(self, task: Task) -> None:
        task.worker.start()

    def stop(self, task: Task) -> None:
        """A generator stops at its next yield; a function, at its task's ``cancel``: quitting
        its worker would lose what it returns (Adapt's best state so far)."""
        from napari.qt.threading import GeneratorWorker

        if isinstance(task.worker, GeneratorWorker):
            task.worker.quit()
