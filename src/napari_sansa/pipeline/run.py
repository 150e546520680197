"""A file run: the plan's targets through a model, each target's files written as it comes.

:class:`FileRun` reads the targets as the model asks for them (a multi-plane microscope file
plane by plane, its labels gathered in a :class:`~napari_sansa.files.microscope.StackLabels`;
a large target lazily, its labels streamed into their store), writes each target's files in
their one order (:func:`~napari_sansa.pipeline.targets.write_target`), its exports, and says
what happened through the engine's callbacks: ``progress(done, total)`` per target, and
``on_error(index, error)`` for a target skipped or left incomplete (``index`` in ``plan.todo``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_sansa.engine.callbacks import Cancel, OnError, Progress
from napari_sansa.engine.errors import SansaError
from napari_sansa.pipeline.plan import RunPlan
from napari_sansa.pipeline.protocol import RunModel, RunPrediction
from napari_sansa.pipeline.targets import write_prediction, write_target

AfterTarget = Callable[[Path, Any, Any], None]
"""``after(target, prediction, objects)``: called once a target segmented whole is written
(objects: the :class:`~napari_sansa.engine.objects.from_prediction.Objects`, or None)."""


@dataclass
class RunReport:
    """What a file run did."""

    written: int = 0  # targets whose files are all written (a microscope file counts once)
    failures: list[str] = field(default_factory=list)  # one line per target skipped or incomplete
    tiles: dict[Path, int] = field(default_factory=dict)  # tiles per target
    exported: list[Path] = field(default_factory=list)  # files for other tools
    large: str = ""  # tiles per image and where large targets' labels went (see LargeTargets.summary)


class FileRun:
    """Run a :class:`RunPlan`'s targets through ``model`` (anything with the :class:`RunModel` calls)."""

    def __init__(
        self,
        model: RunModel,
        references: Sequence,
        plan: RunPlan,
        *,
        progress: Progress = None,
        on_error: OnError = None,
        cancel: Cancel = None,
        after: AfterTarget | None = None,
    ) -> None:
        self.model, self.references, self.plan = model, list(references), plan
        self.progress, self.on_error, self.cancel, self.after = progress, on_error, cancel, after
        self.report = RunReport()
        self.filling: dict[Path, Any] = {}  # multi-plane targets: StackLabels being filled
        self.done = 0
        self.images: Any = None  # the ReadAsNeeded of the run

    def estimate(self) -> Any:
        """The model's estimate for the targets to do (tiles counted, no pixels read)."""
        large = self.plan.large
        return self.model.estimate(self.references, large.estimate_targets(self.plan.todo), **large.tiling())

    # ----------------------------------------------------------------- reading
    def _read(self, path: Path) -> Any:
        from napari_sansa.files.images import Planes, read_image
        from napari_sansa.files.microscope import StackLabels, is_microscope_file, open_planes

        if is_microscope_file(path):  # every plane an image; labels gathered in a stack
            stack = open_planes(path)
            self.filling[path] = StackLabels(stack)
            return Planes((index, stack.plane(index)) for index in stack.indices())
        return self.plan.large.read(path) if path in self.plan.large.lazy else read_image(path)

    def _fail(self, path: Path, message: str, counts: bool = True) -> None:
        self.report.failures.append(message)
        if self.on_error is not None:
            self.on_error(self.plan.todo.index(path), SansaError(message))
        if counts:
            self._step()

    def _step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.plan.todo))

    # ----------------------------------------------------------------- the run
    def run(self) -> RunReport:
        """Segment the targets to do and write their files; the report says what happened."""
        from napari_sansa.files.images import ReadAsNeeded

        plan = self.plan
        self.images = images = ReadAsNeeded(plan.todo, self._read, lambda p, e: self._fail(p, str(e)))

        def skip(index: int, error: SansaError) -> None:  # the target (or a plane of it) is skipped
            path = images.read[index]
            self._fail(path, f"{path.name}: {error}", counts=images.planes[index] is None)

        def tile_unreadable(index: int, error: SansaError) -> None:  # left 0; the target goes on
            path = images.read[index]
            self._fail(path, f"{path.name}: {error}", counts=False)

        options = plan.large.engine_options(images.read)
        if self.progress is not None:
            self.progress(0, len(plan.todo))
        try:
            run = self.model.propagate(
                self.references, images, cancel=self.cancel, on_error=skip, on_tile_error=tile_unreadable,
                **options,
            )  # fmt: skip
            for prediction in run:
                self._target(prediction)
        finally:
            plan.large.abandon()  # outputs still being written (an error stopped the run) are removed
        return self._finish()

    def _target(self, prediction: RunPrediction) -> None:
        path = self.images.read[prediction.index]
        self.report.tiles[path] = prediction.tiles
        plane = self.images.planes[prediction.index]
        if plane is not None:
            self._plane(path, plane, prediction)
        elif self.plan.large.handles(path):
            self._large(path, prediction)
        else:
            files = self.plan.files[path]
            objects = write_prediction(files, prediction, self.plan.instances, replace=self.plan.replace)
            self.plan.exports.add(path, prediction.labels, objects)
            if self.after is not None:
                self.after(path, prediction, objects)
            self._written()

    def _plane(self, path: Path, plane: Any, prediction: RunPrediction) -> None:
        instances = self.plan.instances
        objects = prediction.instances(instances) if instances else None
        if self.filling[path].add(plane, prediction.labels, objects):
            labels, objects = self.filling.pop(path).result()
            write_target(self.plan.files[path], labels, objects, replace=self.plan.replace)
            self.plan.exports.add(path, labels, objects)
            self._written()

    def _large(self, path: Path, prediction: RunPrediction) -> None:
        """Objects from the labels on disk, block by block, then the labels finished (last)."""
        large, files = self.plan.large, self.plan.files[path]
        if self.plan.instances:
            skipped = large.write_objects(files, prediction, self.plan.class_names, self.plan.replace)
            if skipped:
                self._fail(path, skipped, counts=False)
        incomplete = large.finish(path, prediction)
        if incomplete:
            self._fail(path, incomplete, counts=False)
        if path in large.written:  # read back from the store tile by tile
            self.plan.exports.add_file(path, large.written[path])
        self._written(complete=path in large.written)

    def _written(self, complete: bool = True) -> None:
        self.report.written += 1 if complete else 0
        self._step()

    def _finish(self) -> RunReport:
        for path, gathered in self.filling.items():
            missing = gathered.stack.count - len(gathered.filled)
            message = f"{path.name}: {missing} plane(s) could not be segmented; its labels were not written"
            self._fail(path, message, counts=False)
        self.report.exported = self.plan.exports.finish()
        self.report.large = self.plan.large.summary(self.report.tiles)
        return self.report
