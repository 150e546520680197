"""Where a run's results go: each finished target into its plane of the result layer.

On the main thread and short: the result layers were added before the worker started
(:class:`.result_layers.RunLayers`), so a finished target only assigns its plane, shows a new layer
or redraws the plane on screen, and hands its score and objects to the review and objects
panels. Painting on a result locks its targets: later writes leave the user's labels alone.

A result is labelled at the threshold slider's value when it is written (:attr:`ResultWriter.threshold`,
a logit): the worker labels it at the value it reads then, and a target whose labels the slider
has overtaken since is labelled again here from its logits. Results that cannot follow the
slider (tiled, or beyond the kept logits' budget) and objects split at another threshold are
remembered (``fixed``, ``objects_at``) for the dock to say so (:mod:`.relabelling`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from napari_sansa.plugin.core.logits import KeptLogits
from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey
from napari_sansa.plugin.panels.objects import ObjectsPanel
from napari_sansa.plugin.panels.review import ReviewPanel
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.preview_layers import remove_preview
from napari_sansa.plugin.viewer.result_layers import RunLayers, target_sources
from napari_sansa.plugin.viewer.tile_progress import TileProgress


class ResultWriter:
    """Writes one run's finished targets into their result layers; locks what the user paints."""

    def __init__(
        self,
        viewer,
        review: ReviewPanel,
        objects: ObjectsPanel,
        tiles: TileProgress,
        running: Callable[[], bool],
        threshold: float = 0.0,
    ) -> None:
        self.viewer, self.review, self.objects, self.tiles = viewer, review, objects, tiles
        self._running = running
        self.layers: RunLayers | None = None  # the current (or last) run's result layers
        self._sources: dict[TargetKey, object] = {}
        self.logits = KeptLogits()  # of every run's untiled results, for a new threshold
        self.threshold = (
            threshold  # the slider's, as a logit: set on napari's thread, read by the run's worker
        )
        self.fixed: dict[TargetKey, float] = {}  # results that cannot follow the slider -> their logit
        self.objects_at: dict[TargetKey, float] = {}  # results with objects -> the logit they were split at

    def start(self, job: Job, dtype: np.dtype) -> RunLayers:
        """A new run: its result layers, still to be added (see :meth:`.RunLayers.prepare`)."""
        self._sources = dict(job.targets)
        self.layers = RunLayers(
            self.viewer,
            dtype,
            target_sources(job),
            self._watch,
            job.class_names,
            tiled={source.image_id for _, source in job.targets if job.tiled(source.image_id)},
        )
        return self.layers

    def locked_now(self, key: TargetKey) -> bool:
        """Whether the user has locked a target (asked from the worker thread, between tiles)."""
        return key in self.review.locked

    def _watch(self, source: ImageSource, layer) -> None:
        """Lock the targets the user paints on in a new result layer."""
        layer.events.paint.connect(partial(self._on_paint, source.image_id, source.lead))

    def write(self, key: TargetKey, prediction, objects=None, threshold: float | None = None) -> None:
        """Put a finished target's labels in its layer (unless locked or closed) and list it for
        review; ``threshold``: the logit its labels were made at."""
        source = self._sources.get(key)
        if source is None or key in self.review.locked:
            return  # locked while the run was going: the user's labels win
        if L.find_image(self.viewer, key.image_id) is None:
            return  # the image was closed during the run
        remove_preview(self.viewer, key.image_id)  # the result replaces it
        layer = self.layers.get(source, prediction.labels.dtype)  # prepared: only a look-up
        labels = self._labels(key, prediction, threshold)
        if self.layers.streamed.get(key) is not layer.data:  # else written there tile by tile
            layer.data[key.plane if key.plane else ...] = np.asarray(labels)
        self.tiles.tiles_done(key, getattr(prediction, "tiles", 1))
        if self.layers.fill(key.image_id):
            layer.visible = True  # refreshes it
        elif L.shows_plane(self.viewer, layer, key.plane):
            self.tiles.refresh(layer)  # redraws the canvas: only when the plane is on screen
        self.review.add_result(key, prediction.score, running=self._running())
        self.objects_at.pop(key, None)
        if objects is not None:
            self.objects_at[key] = self.threshold if threshold is None else threshold
            self.objects.write(source, key, objects, running=self._running())

    def _labels(self, key: TargetKey, prediction, threshold: float | None):
        """The target's labels at the slider's value now: labelled again from its logits if the
        slider moved since the worker labelled it; kept, or remembered as fixed, otherwise."""
        self.fixed.pop(key, None)
        at = self.threshold if threshold is None else threshold
        if getattr(prediction, "tiles", 1) > 1 or not prediction.logits:
            self.logits.drop(key)
            self.fixed[key] = at
            return prediction.labels  # a tiled target's may be on disk: not read here
        for dropped in self.logits.put(key, prediction.logits):
            self.fixed[dropped] = self.threshold if dropped != key else at
        kept = self.logits.get(key)
        if kept is None or at == self.threshold:
            return prediction.labels
        from napari_sansa.engine.runs.thresholds import labels_from_logits

        return labels_from_logits(kept, self.threshold, prediction.labels.dtype)

    def _on_paint(self, image_id: str, lead: int, event) -> None:
        if self.layers is not None:
            self.layers.kept.add(image_id)  # the user's labels: keep the layer
        self.review.lock(painted_targets(image_id, lead, event))


def painted_targets(image_id: str, lead: int, event) -> set[TargetKey]:
    """The targets (planes) of an image that a paint event of its result layer touched."""
    painted: set[TargetKey] = set()
    for atom in event.value:
        indices = atom[0]
        if lead == 0:
            painted.add(TargetKey(image_id))
        elif len(indices[0]):
            planes = {tuple(int(indices[a][i]) for a in range(lead)) for i in range(len(indices[0]))}
            painted.update(TargetKey(image_id, p) for p in planes)
    return painted
