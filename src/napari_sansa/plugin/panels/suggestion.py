"""*Suggest next*: the button that shows which image to annotate next, and why.

After a run, the unannotated images are ranked by how unsure the model is of them and how
unlike the references they look (:mod:`napari_sansa.plugin.core.suggestion`); the first is
brought to the top of the layer list with its result, selected, at its plane, and chosen as
the image to draw prompts on. Ranking images whose features are not cached (after *Adapt*, or
beyond the memory budget) encodes them in a worker: napari stays responsive, the dock shows
the progress, and the suggestion comes when it is ready.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.background import BackgroundJob
from napari_sansa.plugin.core import suggestion
from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey
from napari_sansa.plugin.core.work_queue import ModelOwner
from napari_sansa.plugin.viewer import layers as L

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


class SuggestionPanel(QWidget):
    """The *Suggest next* button, its one-line reason, and the ranking in progress when it has
    images to encode (in a worker, with progress and Cancel)."""

    def __init__(self, viewer, suggest: Callable[[], object], owner: ModelOwner) -> None:
        """``owner``: the model's owner, whose queue a ranking that encodes images goes through."""
        super().__init__()
        self.viewer = viewer
        self.suggestion: str | None = None  # the last suggestion's name, once it is known
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.button = QPushButton("Suggest next")
        self.button.setToolTip(
            "After a run: show the unannotated image (or plane) whose annotation should help most: "
            "the least confident result, the least like the references"
        )
        self.button.clicked.connect(lambda: suggest())
        layout.addWidget(self.button)
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        layout.addWidget(self.reason)
        self.job = BackgroundJob("Suggest next", "Stop encoding the images; no suggestion is made", owner)
        layout.addWidget(self.job)

    def suggest(
        self,
        model,
        job: Job,
        scores: Mapping[TargetKey, float],
        busy: bool,
        chosen: Callable[[TargetKey], object],
    ) -> TargetKey | GeneratorWorker | None:
        """Rank the job's unannotated results, show the first and say why. Returns at once: the
        first's key when its features are at hand, else the worker that encodes and ranks them
        (then ``chosen(key)``); ``None``: told why not."""
        self.suggestion = None
        if busy:
            notifications.error("A run is going: wait for it to finish, then ask for a suggestion.")
            return None
        if model is None or not scores:
            notifications.error(suggestion.NO_RESULTS)
            return None
        pool = suggestion.candidates(job, scores)
        if not pool or not job.references:
            notifications.error(suggestion.NO_CANDIDATES)
            return None
        if self.job.running():
            return self.job.worker  # its answer will come
        images = [source.image(key.plane) for key, source in pool]
        given = [scores[k] for k, _ in pool]
        try:
            ranked = suggestion.rank_at_once(model, job.references, images, given)
        except SansaError as exc:
            notifications.error(str(exc))
            return None
        if ranked is not None:
            return self._first(pool, ranked)
        done = lambda ranked: chosen(self._first(pool, ranked))  # noqa: E731
        work = (suggestion.ranking, job.references, images, given)
        return self.job.start(*work, done=done, model=True)  # the owner's model, in its turn

    def _first(self, pool: list[tuple[TargetKey, ImageSource]], ranked: list) -> TargetKey:
        """Show the first of the ranking and say why."""
        key, source = pool[ranked[0].index]
        self._show(key)
        self.suggestion = key.describe(source.name)
        self.reason.setText(suggestion.reason(self.suggestion, ranked[0], ranked))
        self.job.status.setText("")
        notifications.info(self.reason.text())
        return key

    def _show(self, key: TargetKey) -> None:
        """The image on top of the layer list (its result above it), selected, at the plane."""
        layers = self.viewer.layers
        image = L.find_image(self.viewer, key.image_id)
        for layer in (image, L.result_layer(self.viewer, key.image_id)):
            if layer is not None:
                layer.visible = True
                layers.move(layers.index(layer), len(layers))
        L.go_to(self.viewer, image, key.plane)
