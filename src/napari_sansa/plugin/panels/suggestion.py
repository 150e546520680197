"""*Suggest next*: the button that shows which image to annotate next, and why.

After a run, the unannotated images are ranked by how unsure the model is of them and how
unlike the references they look (:mod:`napari_sansa.plugin.core.suggestion`); the first is
brought to the top of the layer list with its result, selected, at its plane, and chosen as
the image to draw prompts on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core import suggestion
from napari_sansa.plugin.core.session import Job, TargetKey
from napari_sansa.plugin.viewer import layers as L


class SuggestionPanel(QWidget):
    """The *Suggest next* button and its one-line reason."""

    def __init__(self, viewer, suggest: Callable[[], object]) -> None:
        super().__init__()
        self.viewer = viewer
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

    def suggest(self, model, job: Job, scores: Mapping[TargetKey, float], busy: bool) -> TargetKey | None:
        """Rank the job's unannotated results, show the first and say why; ``None``: told why not."""
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
        images = [source.image(key.plane) for key, source in pool]
        try:
            rank = getattr(model, "rank_candidates", None)  # a server's model ranks there (no torch here)
            if rank is None:
                from napari_sansa.engine.runs.annotation_ranking import rank_candidates

                rank = lambda *args, **kw: rank_candidates(model, *args, **kw)  # noqa: E731
            ranked = rank(job.references, images, scores=[scores[k] for k, _ in pool])
        except SansaError as exc:
            notifications.error(str(exc))
            return None
        key, source = pool[ranked[0].index]
        self._show(key)
        self.reason.setText(suggestion.reason(key.describe(source.name), ranked[0], ranked))
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
