"""The "How good is it?" section: Check references, and a ground truth for the review list.

*Check references* predicts each reference that has a mask from the other references, as a
task of the model's owner (it waits for the job in progress) (:func:`~napari_sansa.engine.evaluation.leave_one_out.leave_one_out`), and
lists its IoU per class, lowest first: the reference the others disagree with comes on top.
Selecting a row shows that reference's image. *Ground truth* names true Labels layers (one
chosen layer, or ``<image> truth``/``_labels``/``_mask`` by name); the review list then shows
each result's mean IoU against it beside the model's confidence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.evaluation.leave_one_out import HeldOut, leave_one_out, mask_references
from napari_sansa.files.truth import TRUTH_ENDINGS
from napari_sansa.plugin import notifications
from napari_sansa.plugin.background import BackgroundJob
from napari_sansa.plugin.core.jobs import Started
from napari_sansa.plugin.core.session import TargetKey
from napari_sansa.plugin.core.truth_scores import TruthPair, measure_ious
from napari_sansa.plugin.core.work_queue import ModelOwner, Task
from napari_sansa.plugin.qt_lifetime import is_deleted
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import plane_of, snapshot
from napari_sansa.plugin.viewer.reference_layers import choose

if TYPE_CHECKING:
    from napari_sansa.engine.inputs.prompts import Reference
    from napari_sansa.plugin.panels.review import ReviewPanel

NO_TRUTH = "none"
BY_NAME = "by name (<image> truth)"
NAME_ENDINGS = (" truth", "_truth", " ground truth", *(e for e in TRUTH_ENDINGS if e))
COLUMNS = ("image", "class", "iou")


@dataclass(frozen=True, eq=False)
class CheckInputs:
    """What Check references needs: the references as the next run would take them, and what to
    call each one (and where it is)."""

    references: list[Reference]
    names: list[str]
    keys: list[TargetKey]


def check_references(
    get_model: Callable[[], object], references: Sequence[Reference], cancel: threading.Event
) -> Iterator[object]:
    """The background work: load the model, say how many references will be checked, then
    each one's :class:`HeldOut` as it comes."""
    model = get_model()
    yield Started(len(mask_references(references)))
    yield from leave_one_out(model, references, cancel=cancel)


class EvaluationPanel(QGroupBox):
    """Check references (progress, Cancel, the IoU table) and the ground-truth choice."""

    references_changed = Signal()  # a truth layer was taken out of the references

    def __init__(
        self,
        viewer,
        owner: ModelOwner,
        inputs: Callable[[], CheckInputs | None],
        review: ReviewPanel,
        mask_mode: Callable[[], str],
    ) -> None:
        super().__init__("How good is it?")
        self.viewer, self.owner, self._inputs = viewer, owner, inputs
        self._review, self._mask_mode = review, mask_mode
        self.worker = None
        self.task: Task | None = None
        self.results = pd.DataFrame(columns=list(COLUMNS))  # lowest IoU first
        self._names: list[str] = []  # per reference of the check: what the table calls it
        self._ref_keys: list[TargetKey] = []  # per reference of the check: its image and plane
        self._ious: dict[TargetKey, float | None] = {}
        self._pending: dict[TargetKey, TruthPair] = {}  # asked for, to measure in a worker
        self._generation = 0  # a new truth or result makes IoUs measured before it stale
        box = QVBoxLayout(self)
        row = QHBoxLayout()
        self.check_button, self.cancel_button = QPushButton("Check references"), QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the check after the reference in progress")
        self.check_button.setToolTip(
            "Predict each reference that has a mask from the other references and score it against "
            "its mask (leave-one-out): a low IoU is a reference the others disagree with"
        )
        self.cancel_button.setEnabled(False)
        self.check_button.clicked.connect(lambda: self.check())
        self.cancel_button.clicked.connect(lambda: self.cancel())
        row.addWidget(self.check_button)
        row.addWidget(self.cancel_button)
        box.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m references")
        self.progress.hide()
        box.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        box.addWidget(self.status)
        self.table = self._results_table()
        box.addWidget(self.table)
        box.addLayout(self._truth_form())
        self.truth_job = BackgroundJob("Scoring against the truth", "Leave the IoUs out of the review list")
        self.truth_job.idle.connect(self._measure)  # IoUs asked for meanwhile
        box.addWidget(self.truth_job)
        review.result_added.connect(self._forget)
        review.truth_iou = self.iou
        self.reset_choices()

    def _results_table(self) -> QTableWidget:
        """The check's table (lowest IoU first); a row shows its reference; hidden until filled."""
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(["Image", "Class", "IoU"])
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.setMaximumHeight(130)
        table.currentCellChanged.connect(lambda r, *_: self._show(r))
        table.hide()
        return table

    def _truth_form(self) -> QFormLayout:
        """The *Ground truth* choice, whose IoUs the review list shows."""
        form = QFormLayout()
        self.truth = QComboBox()
        self.truth.setToolTip(
            "True labels of the targets: one Labels layer, or by name (a Labels layer '<image> truth', "
            "'<image>_labels' or '<image>_mask' per image); the review list then shows each result's IoU"
        )
        self.truth.currentTextChanged.connect(self._truth_changed)
        form.addRow("Ground truth", self.truth)
        return form

    # ------------------------------------------------------------------ check references
    def running(self) -> bool:
        return self.worker is not None

    def check(self):
        """Run leave-one-out over the references in the background, now or after the job in
        progress; returns the worker (``None``: refused, told why)."""
        inputs = self._inputs()
        if inputs is None:
            return None
        if len(inputs.references) < 2 or not mask_references(inputs.references):
            notifications.error(
                "Check references needs a reference with a mask and at least one other reference: "
                "each mask reference is predicted from the others."
            )
            return None
        task = Task("Check references", check_references)
        task.args = (inputs.references, task.cancel)
        task.begin = partial(self._begin, inputs)
        task.handlers = {"yielded": self._on_event, "errored": self._on_error, "finished": self._on_finished}
        if self.owner.submit(task) is None:
            return None
        self.task, self.worker = task, task.worker
        self.check_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.owner.running is not task:
            self.status.setText(f"Waits for {self.owner.running.name} to finish…")
        return self.worker

    def _begin(self, inputs: CheckInputs) -> None:
        """Its turn has come (main thread): an empty table, a busy bar."""
        self._names, self._ref_keys = inputs.names, inputs.keys
        self.results = pd.DataFrame(columns=list(COLUMNS))
        self._show_table()
        self.status.setText("Loading the model…" if not self.owner.loaded() else "Starting…")
        self.progress.setRange(0, 0)
        self.progress.show()

    def cancel(self) -> None:
        """Stop after the reference in progress (the rows so far stay), or drop it if it waits."""
        if self.task is not None and self.task is self.owner.running:
            self.status.setText("Cancelling after the current reference…")
        self.owner.cancel("Check references")

    def _on_event(self, event) -> None:
        if is_deleted(self):
            return
        if isinstance(event, Started):
            self.progress.setRange(0, event.total)
            self.progress.setValue(0)
            self.status.setText(f"Predicting each of {event.total} mask reference(s) from the others…")
        elif isinstance(event, HeldOut):
            rows = event.classes.assign(
                image=self._names[event.index], key=[self._ref_keys[event.index]] * len(event.classes)
            )
            frames = [frame for frame in (self.results, rows[[*COLUMNS, "key"]]) if len(frame)]
            table = pd.concat(frames, ignore_index=True)
            self.results = table.sort_values("iou", kind="stable", na_position="last").reset_index(drop=True)
            self.progress.setValue(self.progress.value() + 1)
            self._show_table()

    def _on_error(self, exc: Exception) -> None:
        if is_deleted(self):
            return
        if isinstance(exc, SansaError):
            notifications.error(str(exc))
        else:
            notifications.error(f"Check references failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        if is_deleted(self):
            return
        self.worker = None
        self.progress.hide()
        self.check_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        checked = self.results["image"].nunique()
        text = f"{checked} reference(s) checked"
        if len(self.results) and not np.isnan(self.results["iou"].iloc[0]):
            worst = self.results.iloc[0]
            text += f"; lowest IoU {worst['iou']:.2f}: {worst['image']}, class {worst['class']}"
        self.status.setText(text + (" (cancelled)." if self.task.cancel.is_set() else "."))

    def _show_table(self) -> None:
        self.table.setRowCount(len(self.results))
        for r, entry in enumerate(self.results.itertuples(index=False)):
            iou = "–" if np.isnan(entry.iou) else f"{entry.iou:.2f}"
            for c, text in enumerate((entry.image, str(entry[1]), iou)):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                self.table.setItem(r, c, item)
        self.table.setVisible(len(self.results) > 0)

    def _show(self, row: int) -> None:
        """Show the reference's image (at its plane) for a table row."""
        if not 0 <= row < len(self.results):
            return
        key = self.results["key"].iloc[row]
        layer = L.find_image(self.viewer, key.image_id)
        if layer is not None:
            L.go_to(self.viewer, layer, key.plane)

    # ------------------------------------------------------------------ ground truth
    def reset_choices(self) -> None:
        """Offer the Labels layers that are neither results nor made by the widget for prompts."""
        current = self.truth.currentText() or NO_TRUTH
        names = [NO_TRUTH, BY_NAME, *(layer.name for layer in self._truth_layers())]
        self.truth.blockSignals(True)
        self.truth.clear()
        self.truth.addItems(names)
        self.truth.setCurrentText(current if current in names else NO_TRUTH)
        self.truth.blockSignals(False)
        if self.truth.currentText() != current:
            self._truth_changed(self.truth.currentText())

    def _truth_layers(self) -> list:
        from napari.layers import Labels

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and not L.is_result(layer) and L.PROMPTS_FOR not in layer.metadata
        ]

    def _truth_changed(self, _text: str = "") -> None:
        """A truth is no reference: its layers leave the references; the IoUs are measured anew."""
        self._forget()
        truths = [self._truth_for(image) for image in L.image_layers(self.viewer)]
        for layer in {id(t): t for t in truths if t is not None}.values():
            choose(layer, None)
        if any(truths):
            self.references_changed.emit()
        self._review.refresh()

    def _truth_for(self, image) -> object | None:
        choice = self.truth.currentText()
        if choice in ("", NO_TRUTH):
            return None
        layers = self._truth_layers()
        if choice == BY_NAME:
            wanted = {image.name + ending for ending in NAME_ENDINGS}
            return next((layer for layer in layers if layer.name in wanted), None)
        layer = next((layer for layer in layers if layer.name == choice), None)
        return (
            layer if layer is not None and layer.data.shape == tuple(image.data.shape[: layer.ndim]) else None
        )

    def iou(self, key: TargetKey) -> float | None:
        """A result's mean IoU over the classes in it or in its truth; ``None``: no truth for it,
        or not measured yet (a worker measures it; the review list shows it when it is done)."""
        if key not in self._ious and key not in self._pending:
            pair = self._pair(key)
            if pair is None:
                self._ious[key] = None
            else:
                self._pending[key] = pair
                QTimer.singleShot(0, self._measure)  # once for all the keys the list asks for
        return self._ious.get(key)

    def _pair(self, key: TargetKey) -> TruthPair | None:
        """The result's labels and its truth's, taken now (copies), if it has a truth."""
        image, result = L.find_image(self.viewer, key.image_id), L.result_layer(self.viewer, key.image_id)
        truth = self._truth_for(image) if image is not None else None
        if truth is None or result is None:
            return None
        true = plane_of(truth.data, key.plane) if key.plane else truth.data
        predicted = plane_of(result.data, key.plane) if key.plane else result.data
        return TruthPair(snapshot(true), snapshot(predicted), self._mask_mode(), truth.name)

    def _measure(self) -> None:
        """Measure the pending IoUs in a worker; the review list is refreshed with them."""
        if not self._pending or self.truth_job.running() or is_deleted(self):
            return
        pairs, self._pending = self._pending, {}
        generation = self._generation

        def done(found: dict) -> None:
            if generation == self._generation:  # neither the truth nor a result changed meanwhile
                self._ious.update(found)
            self.truth_job.status.setText("")
            self._review.refresh()

        self.truth_job.start(measure_ious, pairs, done=done)

    def _forget(self, key: TargetKey | None = None) -> None:
        """A new result, or a new truth (``None``): its IoUs are measured anew."""
        self._generation += 1
        if key is None:
            self._ious.clear()
            self._pending.clear()
        else:
            self._ious.pop(key, None)
            self._pending.pop(key, None)
