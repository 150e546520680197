"""The review section of the widget: results least confident first, to accept or reuse.

It keeps what the user decides about a run's results: each target's confidence score and
the targets that are locked (accepted, painted on or turned into references), which later
runs leave as they are. Selecting a result shows its layer, at its plane, in the viewer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.session import TargetKey
from napari_sansa.plugin.viewer import layers as L

ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY = "Ctrl+Shift+A", "Ctrl+Shift+Down", "Ctrl+Shift+Up"
REFRESH_EVERY_S = 1.0  # during a run: rebuilding the list per image is O(n^2) on stacks


class ReviewPanel(QWidget):
    """The review queue with its Accept and Use as reference buttons."""

    reference_added = Signal()  # a result became a reference: the references changed
    propagate_requested = Signal(object)  # "Propagate from here" on a stack plane (a TargetKey)
    filled = Signal()  # the first results arrived in an empty list
    result_added = Signal(object)  # a target's result is new (a TargetKey): what was measured of it is stale
    refreshed = Signal()  # the list changed: a score, an acceptance, a lock

    def __init__(self, viewer, describe: Callable[[TargetKey], str]) -> None:
        super().__init__()
        self.viewer = viewer
        self._describe = describe
        self.scores: dict[TargetKey, float] = {}
        self.locked: set[TargetKey] = set()
        self.truth_iou: Callable[[TargetKey], float | None] | None = None  # shown beside the score
        self._shown = 0.0
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.queue = QListWidget()
        self.queue.setToolTip(
            "Results, least confident first (score: predicted IoU x mask stability); select one to go "
            f"to it. Next / previous: {NEXT_KEY} / {PREVIOUS_KEY}"
        )
        self.queue.setMaximumHeight(130)  # about eight rows: the buttons below stay in view
        self.queue.setSizeAdjustPolicy(QListWidget.AdjustToContents)  # a short list takes little room
        self.queue.currentItemChanged.connect(lambda item, _: self._show(item))
        box.addWidget(self.queue)
        row = QHBoxLayout()
        accept, as_ref = QPushButton("Accept"), QPushButton("Use as reference")
        self.accept_button = accept
        accept.setToolTip(f"Lock the selected result: later runs leave its labels as they are ({ACCEPT_KEY})")
        as_ref.setToolTip("Copy the selected (corrected) result into a prompt layer: one more reference")
        accept.clicked.connect(lambda: self.accept())
        as_ref.clicked.connect(lambda: self.use_as_reference())
        row.addWidget(accept)
        row.addWidget(as_ref)
        box.addLayout(row)
        self.propagate = QPushButton("Propagate from this plane")
        self.propagate.setToolTip(
            "After correcting a plane of a stack: segment the planes after it again, through the stack, "
            "with the correction in SAM2's memory (locked planes stay as they are)"
        )
        self.propagate.clicked.connect(lambda: self.propagate_requested.emit(self.selected_key()))
        self.propagate.setEnabled(False)  # until a plane of a stack is selected
        box.addWidget(self.propagate)

    def order(self) -> list[TargetKey]:
        """Targets with results, least confident first."""
        return sorted(self.scores, key=lambda k: (self.scores[k], k.image_id, k.plane))

    def add_result(self, key: TargetKey, score: float, running: bool) -> None:
        """Note a target's score; while a run goes on the list is rebuilt at most once a second."""
        self.scores[key] = score
        self.result_added.emit(key)
        if not running or time.monotonic() - self._shown > REFRESH_EVERY_S:
            self.refresh()

    def lock(self, keys: Iterable[TargetKey]) -> None:
        """Lock targets the user painted on: later runs leave their labels as they are."""
        self.locked.update(keys)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the list, keeping the selected target selected."""
        self._shown = time.monotonic()
        selected = self.selected_key()
        empty = self.queue.count() == 0
        self.queue.blockSignals(True)
        self.queue.clear()
        for key in self.order():
            mark = "  ✓ locked" if key in self.locked else ""
            iou = self.truth_iou(key) if self.truth_iou is not None else None
            mark += f"  IoU {iou:.2f}" if iou is not None else ""
            item = QListWidgetItem(f"{self.scores[key]:.2f}  {self._describe(key)}{mark}")
            item.setData(Qt.UserRole, key)
            self.queue.addItem(item)
            if key == selected:
                self.queue.setCurrentItem(item)
        self.queue.blockSignals(False)
        self.refreshed.emit()
        if empty and self.queue.count():
            self.filled.emit()

    def step(self, by: int) -> None:
        """Select the next (``by`` = 1) or previous (-1) result in the list, and go to it."""
        if self.queue.count():
            row = self.queue.currentRow()
            start = -1 if by > 0 else self.queue.count()
            self.queue.setCurrentRow(min(max((row if row >= 0 else start) + by, 0), self.queue.count() - 1))

    def selected_key(self) -> TargetKey | None:
        item = self.queue.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    def _show(self, item: QListWidgetItem | None) -> None:
        """Select the target's result layer and move the viewer to its plane."""
        if item is None:
            return
        key = item.data(Qt.UserRole)
        self.propagate.setEnabled(bool(key.plane))
        layer = L.result_layer(self.viewer, key.image_id)
        if layer is None:
            return
        L.go_to(self.viewer, layer, key.plane)

    def accept(self, key: TargetKey | None = None) -> None:
        """Lock a target's labels (the selected one by default): later runs leave them as they are."""
        key = key or self.selected_key()
        if key is not None:
            self.locked.add(key)
            self.refresh()

    def use_as_reference(self, key: TargetKey | None = None) -> None:
        """Turn a (corrected) result into one more reference for the next run."""
        key = key or self.selected_key()
        image = L.find_image(self.viewer, key.image_id) if key else None
        result = L.result_layer(self.viewer, key.image_id) if key else None
        if image is None or result is None:
            notifications.error("Select a result in the review list first.")
            return
        labels = np.asarray(result.data[key.plane] if key.plane else result.data)
        if not labels.any():
            notifications.error(
                "This result is empty; paint the objects in it before using it as a reference."
            )
            return
        from napari.layers import Labels

        prompt = next(
            (lyr for lyr in L.prompt_layers(self.viewer, key.image_id) if isinstance(lyr, Labels)), None
        )
        if prompt is None:
            prompt = L.add_prompt_layer(self.viewer, image, "labels")
        target = prompt.data[key.plane] if key.plane else prompt.data
        target[...] = (
            labels.astype(prompt.data.dtype) if np.can_cast(labels.dtype, prompt.data.dtype) else labels
        )
        prompt.refresh()
        self.locked.add(key)
        self.scores.pop(key, None)
        self.refresh()
        self.reference_added.emit()
