"""Run and Cancel, *Live preview*, the threshold, the status lines and the progress bar.

Two status lines: what the model's owner works on and what waits for it (:meth:`RunControls.show_busy`;
Cancel cancels what it shows), and what the run in progress is doing."""

from __future__ import annotations

import math
from collections.abc import Callable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

RUN_KEY = "Ctrl+Shift+R"


def logit(probability: float) -> float:
    """The logit a probability threshold stands for (0.5 -> 0, the model's own threshold)."""
    return math.log(probability / (1.0 - probability))


def probability(threshold: float) -> float:
    """The probability a logit threshold stands for (the inverse of :func:`logit`)."""
    return 1.0 / (1.0 + math.exp(-threshold))


class RunControls(QWidget):
    """The buttons that start and stop a run, the live preview and threshold, and what the run is doing."""

    threshold_changed = Signal(float)  # the threshold, as a logit

    def __init__(self, run: Callable[[], object], cancel: Callable[[], None]) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.run_button.setToolTip(f"Segment every checked target like the references ({RUN_KEY})")
        self.cancel_button.setToolTip(
            "Stop what the line below says is going (a run stops after the image in progress, "
            "keeping finished images) and drop what waits for it"
        )
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: run())
        self.cancel_button.clicked.connect(lambda: cancel())
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.live_preview = QCheckBox("Live preview")
        self.live_preview.setToolTip(
            "While you draw on a reference, segment the image you are looking at (the top visible "
            "target, its current plane) into a [SANSA preview] layer, without Run"
        )
        row.addWidget(self.live_preview)
        row.addWidget(QLabel("Threshold"))
        self.threshold = QSlider(Qt.Horizontal, minimum=5, maximum=95, value=50)
        self.threshold.setToolTip(
            "How sure the model must be that a pixel belongs to a class (0.50: the model's own); "
            "new results are labelled at it; it re-labels the preview and the kept results from their logits "
            "(in the background), without running the model"
        )
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.threshold_value = QLabel("0.50")
        row.addWidget(self.threshold, 1)
        row.addWidget(self.threshold_value)
        layout.addLayout(row)
        self.threshold_note = self._line("What the threshold does not relabel, and why")
        self.busy = self._line("What the SANSA model is working on, and what waits for it")
        self.preview_status = QLabel("")
        self.preview_status.setWordWrap(True)
        self.preview_status.setToolTip("What the live preview last did, and how long it took")
        layout.addWidget(self.preview_status)
        self.preview_status.hide()  # until the preview has something to say
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.progress = QProgressBar()  # in the dock: napari's progress bars process events on each update
        self.progress.setFormat("%v / %m images")
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it moves nothing: no relayout, no canvas resize
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        layout.addWidget(self.progress)

    def _line(self, tooltip: str) -> QLabel:
        """A wrapped line of text in the section, hidden while it has nothing to say."""
        label = QLabel("")
        label.setWordWrap(True)
        label.setToolTip(tooltip)
        label.hide()
        self.layout().addWidget(label)
        return label

    @staticmethod
    def say(label: QLabel, text: str) -> None:
        """Show ``text`` on one of the section's lines (hidden when empty: no blank line in the dock)."""
        label.setText(text)
        label.setVisible(bool(text))

    def show_busy(self, line: str, run_asked: bool) -> None:
        """What the model's owner says it works on (``line``); Run is off while a run is asked
        for, Cancel on while anything works or waits."""
        self.say(self.busy, line)
        self.run_button.setEnabled(not run_asked)
        self.cancel_button.setEnabled(bool(line))

    @property
    def threshold_logit(self) -> float:
        """The chosen threshold as a logit (the model labels a pixel where its logit is above it)."""
        return logit(self.threshold.value() / 100)

    def _threshold_moved(self, value: int) -> None:
        self.threshold_value.setText(f"{value / 100:.2f}")
        self.threshold_changed.emit(self.threshold_logit)

    def set_progress(self, done: int, total: int, unit: str = "images") -> None:
        """Move the bar at the next paint: QProgressBar itself repaints the whole window at once.

        ``unit``: what is counted, images (or tiles, while a large image runs)."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        bar.setFormat(f"%v / %m {unit}")
        bar.setRange(0, total)
        bar.setValue(done)
        bar.setUpdatesEnabled(True)  # schedules an ordinary repaint
