"""The model's owner without Qt: one job at a time, what waits and what is refused, Cancel,
and the model loaded once per settings (the widget's tests drive it through the dock)."""

from __future__ import annotations

from dataclasses import replace

from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.core.work_queue import ModelOwner, Task


class Inline:
    """Runs a task's work when the test says so, on the test's thread."""

    def __init__(self) -> None:
        self.owner: ModelOwner | None = None
        self.started: list[str] = []

    def prepare(self, task, get_model) -> None:
        task.worker = get_model

    def start(self, task) -> None:
        self.started.append(task.name)

    def stop(self, task) -> None:
        pass

    def end(self) -> object:
        """The working task does its work and ends."""
        task = self.owner.running
        value = task.work(task.worker, *task.args)
        self.owner.finished(task)
        return value


def _owner(settings: list[WidgetSettings], told: list[str]):
    loads = []

    def load(s, cancel):
        loads.append(s.image_size)
        return object()

    executor = Inline()
    owner = ModelOwner(lambda: settings[0], load, executor, told.append)
    executor.owner = owner
    return owner, executor, loads


def test_one_job_at_a_time_the_rest_wait_in_order_or_are_refused():
    told, lines = [], []
    owner, executor, _ = _owner([WidgetSettings()], told)
    owner.on_status(lines.append)
    adapt = owner.submit(Task("Adapt", lambda get_model: get_model()))
    assert owner.running is adapt and executor.started == ["Adapt"]
    assert owner.submit(Task("Run", lambda get_model: get_model())) is not None
    assert owner.submit(Task("Run", lambda get_model: None)) is None
    assert told == ["Run is already waiting."]
    assert lines[-1] == "Adapt is going; Run waits for it (Cancel drops them)."
    adapted = executor.end()
    assert executor.started == ["Adapt", "Run"]
    assert executor.end() is adapted  # the run got the model Adapt left
    assert not owner.busy and lines[-1] == ""


def test_a_newer_preview_supersedes_the_waiting_one():
    owner, executor, _ = _owner([WidgetSettings()], [])
    finished = []
    owner.submit(Task("Run", lambda get_model: None))
    for n in range(3):
        owner.submit(Task("Live preview", lambda get_model: None, supersede=True,
                          handlers={"finished": lambda n=n: finished.append(n)}))  # fmt: skip
    assert [t.name for t in owner.waiting] == ["Live preview"] and finished == [0, 1]
    executor.end()
    assert executor.started == ["Run", "Live preview"]


def test_cancel_cancels_what_the_status_line_shows():
    owner, executor, _ = _owner([WidgetSettings()], [])
    dropped = []
    adapt = owner.submit(Task("Adapt", lambda get_model: None))
    owner.submit(Task("Run", lambda get_model: None, handlers={"finished": lambda: dropped.append(1)}))
    owner.cancel()
    assert adapt.cancel.is_set() and dropped == [1] and not owner.waiting
    assert owner.status() == "Adapt is going."
    executor.end()
    assert executor.started == ["Adapt"] and not owner.busy


def test_the_model_is_loaded_once_per_settings_and_replaced_only_by_the_owner():
    settings = [WidgetSettings(image_size=256)]
    owner, executor, loads = _owner(settings, [])
    heard = []
    owner.on_model(heard.append)
    for _ in range(2):
        owner.submit(Task("Run", lambda get_model: get_model()))
        first = executor.end()
    settings[0] = replace(settings[0], image_size=512)
    owner.submit(Task("Run", lambda get_model: get_model()))
    second = executor.end()
    assert loads == [256, 512] and second is not first and owner.model is second
    adapted = object()
    owner.replace(adapted)
    assert heard == [first, second, adapted] and owner.loaded()


def test_the_end_of_the_job_in_progress_goes_before_the_jobs_that_wait():
    owner, executor, _ = _owner([WidgetSettings()], [])
    owner.submit(Task("Run", lambda get_model: None))
    owner.submit(Task("Adapt", lambda get_model: None))
    owner.submit(Task("Linking objects", lambda get_model: None, first=True))  # the run's objects
    executor.end()
    executor.end()
    assert executor.started == ["Run", "Linking objects", "Adapt"]
