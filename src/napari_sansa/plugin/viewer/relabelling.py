"""The threshold slider's effect on the results: every kept result labelled again, in a worker.

A move of the slider sets the threshold new results are labelled at at once
(:attr:`.result_writer.ResultWriter.threshold`); once the slider rests for
:data:`DEBOUNCE_MS`, one worker labels every kept result again from its logits
(:func:`.core.logits.relabelled`: up to a GiB of them), the planes on screen first, and napari's
thread only assigns each plane. A newer value stops the sweep in progress and starts another.
A plane the sweep labelled at an old value, or from logits a run has replaced since, is never
written. What cannot follow the slider (results segmented in tiles or beyond the logits'
budget, objects split at another threshold) is said next to the slider (``note``).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, QTimer

from napari_sansa.plugin.core.logits import relabelled
from napari_sansa.plugin.panels.run_controls import probability
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.result_writer import ResultWriter

DEBOUNCE_MS = 150  # the slider at rest this long: relabel


class Relabelling(QObject):
    """Follows the slider: relabels the kept results (debounced, in a worker), says what cannot follow."""

    def __init__(
        self, viewer, writer: ResultWriter, note: Callable[[str], None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.viewer, self.writer, self._note = viewer, writer, note
        self.worker = None
        self.sweeps = 0  # sweeps finished
        self._swept_at: float | None = None  # the threshold of the last sweep started
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._sweep)

    def moved(self, threshold: float) -> None:
        """The slider moved to ``threshold`` (a logit): new results follow at once, kept ones soon."""
        self.writer.threshold = threshold
        self._timer.start()
        self.say()

    @property
    def pending(self) -> bool:
        """Whether a sweep is due or going."""
        return self._timer.isActive() or self.worker is not None

    def _sweep(self) -> None:
        from napari.qt.threading import create_worker

        if self.worker is not None:  # stop it; its end starts the newest
            self.worker.quit()
            return
        kept = self._kept()
        if not kept:
            self.say()
            return
        self._swept_at = self.writer.threshold
        self.worker = create_worker(
            relabelled,
            kept,
            self._swept_at,
            _connect={"yielded": self._put, "finished": self._finished},
        )

    def _kept(self) -> list:
        """The kept results to relabel, with their layers' dtype, the planes on screen first."""
        writer, items = self.writer, []
        for key, logits in writer.logits.items():
            layer = L.result_layer(self.viewer, key.image_id)
            if layer is not None and key not in writer.review.locked:
                shown = L.shows_plane(self.viewer, layer, key.plane) and layer.visible
                items.append((not shown, key, logits, layer.data.dtype))
        items.sort(key=lambda item: item[0])  # stable: the rest in the order they were kept
        return [item[1:] for item in items]

    def _put(self, item) -> None:
        """Assign one relabelled plane, unless it is out of date or locked since."""
        key, logits, labels, threshold = item
        writer = self.writer
        if (
            threshold != writer.threshold
            or writer.logits.get(key) is not logits
            or key in writer.review.locked
        ):
            return
        layer = L.result_layer(self.viewer, key.image_id)
        plane = key.plane if key.plane else ...
        if layer is None or tuple(layer.data[plane].shape) != labels.shape:
            writer.logits.drop(key)  # the layer was replaced since
            return
        layer.data[plane] = labels
        if layer.visible and L.shows_plane(self.viewer, layer, key.plane):
            layer.refresh()

    def _finished(self) -> None:
        self.worker = None
        self.sweeps += 1
        if self._swept_at != self.writer.threshold and not self._timer.isActive():
            self._sweep()  # the slider moved on while it worked
        self.say()

    def say(self) -> None:
        """Say next to the slider what does not follow it (nothing when everything does)."""
        self._note(threshold_note(self.writer))


def threshold_note(writer: ResultWriter) -> str:
    """One line: the results and objects the slider's value does not reach, and what to do."""
    locked = writer.review.locked
    fixed = {at for key, at in writer.fixed.items() if at != writer.threshold and key not in locked}
    split = {at for key, at in writer.objects_at.items() if at != writer.threshold and key not in locked}
    parts = []
    if fixed:
        parts.append("results segmented in tiles (or beyond the kept logits) keep their threshold")
    if split:
        parts.append("objects keep the threshold they were split at")
    if not parts:
        return ""
    at = ", ".join(f"{probability(t):.2f}" for t in sorted(fixed | split))
    return f"At {at}: {' and '.join(parts)}; Run again to label them at this one."
