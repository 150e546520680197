"""The one owner of the widget's model, and the one queue of the jobs that use it (no Qt).

Every job that touches the model (a run, a live preview, Check references, Suggest next,
Adapt, an export) is a :class:`Task` handed to :meth:`ModelOwner.submit`. One task works at a
time; a task asked while another works waits its turn (a Run asked during Adapt starts after
it, with the adapted model), and the status line (:meth:`ModelOwner.status`) says what waits
for what. A second task of a kind already going or waiting is refused in one line, except a
*superseding* kind (the live preview): its newer task replaces the waiting one. Cancel cancels
what the status line shows.

The model is loaded here, in the task's worker when it first asks for it (``get_model``, the
first argument of every task's work), by one replaceable function (``load``); it is kept while
the settings it was made from stay the same, and replaced only here (:meth:`ModelOwner.replace`,
after Adapt). Its type is loose (:class:`Model`): anything with the engine's ``propagate`` and
``estimate`` serves.

An executor (the widget's Qt adapter, :mod:`napari_sansa.plugin.workers`) runs the tasks in
worker threads and calls :meth:`ModelOwner.finished` on the main thread when one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from napari_sansa.plugin.core.settings import WidgetSettings


class Model(Protocol):
    """What the widget's jobs ask of a model (a ``Sansa``, or a model served elsewhere)."""

    def propagate(self, references, targets, **options) -> Iterator: ...

    def estimate(self, references, targets, **options) -> Any: ...


Loader = Callable[[WidgetSettings, threading.Event], Model]
"""``load(settings, cancel)``: a new model (in a worker); ``cancel`` (the asking task's) stops a download."""


@dataclass(eq=False)
class Task:
    """One job for the model: ``work(get_model, *args, **kwargs)`` (a function or a generator
    function) run in a worker; ``handlers`` hear of it on the main thread (``yielded``,
    ``returned``, ``errored``, ``finished``: a task dropped before it started hears ``finished``
    only)."""

    name: str  # what the status line calls it: "Run", "Adapt", "Live preview"...
    work: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    handlers: dict[str, Callable] = field(default_factory=dict)
    begin: Callable[[], None] | None = None  # main thread, just before its worker starts
    supersede: bool = False  # a newer task of its name replaces a waiting one (else: refused)
    first: bool = False  # goes before the waiting tasks: the end of the job in progress (linking its objects)
    cancel: threading.Event = field(default_factory=threading.Event)
    worker: Any = None  # what the executor made of it
    settings: WidgetSettings | None = None  # the model settings it runs with (taken when it starts)


class Executor(Protocol):
    """Runs tasks in worker threads (the widget's Qt adapter)."""

    def prepare(self, task: Task, get_model: Callable[[], Model]) -> None:
        """Make the task's worker (``task.worker``), not started yet."""

    def start(self, task: Task) -> None:
        """Start the prepared worker; call ``owner.finished(task)`` on the main thread when it ends."""

    def stop(self, task: Task) -> None:
        """Ask the running worker to stop soon (its task's ``cancel`` is set already)."""


class ModelOwner:
    """Holds the model and runs every job that uses it, one at a time, through one queue."""

    def __init__(
        self,
        settings: Callable[[], WidgetSettings],
        load: Loader,
        executor: Executor | None = None,
        tell: Callable[[str], None] = print,
    ) -> None:
        """``settings()``: the model settings now (main thread); ``load(settings)``: a new model
        (worker thread); ``tell``: shows a refusal in one line."""
        self._settings, self.load, self.executor, self._tell = settings, load, executor, tell
        self.model: Model | None = None
        self.model_key: tuple | None = None
        self.running: Task | None = None
        self.waiting: list[Task] = []
        self._lock = threading.Lock()
        self._status: list[Callable[[str], None]] = []
        self._models: list[Callable[[Model], None]] = []

    # ------------------------------------------------------------------ listening
    def on_status(self, listener: Callable[[str], None]) -> None:
        """``listener(status)`` after each change of what works or waits (main thread)."""
        self._status.append(listener)

    def on_model(self, listener: Callable[[Model], None]) -> None:
        """``listener(model)`` when a model is loaded or replaced: from the worker that loaded
        it, so a Qt listener must be a queued signal."""
        self._models.append(listener)

    # ------------------------------------------------------------------ the busy rule
    @property
    def busy(self) -> bool:
        """Whether a task works or waits."""
        return self.running is not None or bool(self.waiting)

    def has(self, name: str) -> bool:
        """Whether a task of this name works or waits."""
        return any(task.name == name for task in self._tasks())

    def _tasks(self) -> list[Task]:
        return ([self.running] if self.running is not None else []) + self.waiting

    def status(self) -> str:
        """One line: what works and what waits for it ("" when idle)."""
        if self.running is None:
            return ""
        line = f"{self.running.name} is going"
        if self.waiting:
            names = [task.name for task in self.waiting]
            waiters = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            line += f"; {waiters} {'waits' if len(names) == 1 else 'wait'} for it (Cancel drops them)"
        return line + "."

    def submit(self, task: Task) -> Task | None:
        """Start the task now if nothing works, else queue it; ``None``: refused (told why)."""
        same = [t for t in self._tasks() if t.name == task.name]
        if task.supersede:
            for old in [t for t in same if t is not self.running]:
                self._drop(old)
        elif same:
            self._tell(f"{task.name} is already {'going' if same[0] is self.running else 'waiting'}.")
            return None
        if self.executor is not None:
            self.executor.prepare(task, lambda: self.model_for(task))
        self.waiting.insert(0 if task.first else len(self.waiting), task)
        if self.running is None:
            self._next()
        else:
            self._changed()
        return task

    def cancel(self, name: str | None = None) -> None:
        """Cancel the task of this name, or (``None``) what the status line shows: the working
        task and every waiting one. A waiting task is dropped; a working one stops soon."""
        for task in [t for t in self.waiting if name in (None, t.name)]:
            self._drop(task)
        task = self.running
        if task is not None and name in (None, task.name) and not task.cancel.is_set():
            task.cancel.set()
            if self.executor is not None:
                self.executor.stop(task)
        self._changed()

    def shut(self) -> None:
        """The widget is closing: every task is cancelled, no one listens any more."""
        self._status.clear()
        self._models.clear()
        for task in self._tasks():
            task.cancel.set()
        self.waiting.clear()

    def finished(self, task: Task) -> None:
        """The executor's word that a task's worker ended (main thread): the next one starts."""
        if task is self.running:
            self.running = None
            self._next()

    def _next(self) -> None:
        if self.waiting:
            task = self.running = self.waiting.pop(0)
            try:
                task.settings = self._settings()
                if task.begin is not None:
                    task.begin()
                if self.executor is not None:
                    self.executor.start(task)
            except Exception:
                self.running = None  # it never started: the queue must not stay busy
                self._changed()
                raise
        self._changed()

    def _drop(self, task: Task) -> None:
        self.waiting.remove(task)
        task.cancel.set()
        finished = task.handlers.get("finished")
        if finished is not None:
            finished()

    def _changed(self) -> None:
        line = self.status()
        for listener in self._status:
            listener(line)

    # ------------------------------------------------------------------ the model
    def model_for(self, task: Task) -> Model:
        """The model of the task's settings (worker thread): the kept one while its settings
        stay the same, else loaded (the old one let go first: two may not fit in memory)."""
        settings = task.settings or self._settings()
        key = settings.model_key()
        with self._lock:
            if self.model is None or self.model_key != key:
                self.model = self.model_key = None
                self.model, self.model_key = self.load(settings, task.cancel), key
                self._loaded(self.model)
            return self.model

    def loaded(self, settings: WidgetSettings | None = None) -> bool:
        """Whether the model of these settings (the current ones) is loaded: no wait for loading."""
        settings = settings or self._settings()
        return self.model is not None and self.model_key == settings.model_key()

    def replace(self, model: Model) -> None:
        """A changed model for the same settings (Adapt's): the next tasks use it."""
        with self._lock:
            self.model = model
        self._loaded(model)

    def use(self, model: Model | None) -> None:
        """The widget switched between this computer and a server: the next tasks use ``model``
        (a server's), or (``None``) load theirs anew."""
        with self._lock:
            self.model = model
            self.model_key = None if model is None else self._settings().model_key()
        if model is not None:
            self._loaded(model)

    def _loaded(self, model: Model) -> None:
        for listener in self._models:
            listener(model)
