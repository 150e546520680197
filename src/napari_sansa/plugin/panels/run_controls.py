"""Run and Cancel, *Live preview*, the threshold, the status line and the progress bar."""

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
        self.cancel_button.setToolTip("Stop after the image in progress; finished images are kept")
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
            "re-labels the preview and the results at once, without running the model"
        )
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.threshold_value = QLabel("0.50")
        row.addWidget(self.threshold, 1)
        row.addWidget(self.threshold_value)
        layout.addLayout(row)
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

    @property
    def threshold_logit(self) -> float:
        """The chosen threshold as a logit (the model labels a pixel where its logit is above it)."""
        return logit(self.threshold.value() / 100)

    def _threshold_moved(self, value: int) -> None:
        self.threshold_value.setText(f"{value / 100:.2f}")
        self.threshold_changed.emit(self.threshold_logit)

    def running(self, yes: bool) -> None:
        """Enable Run or Cancel, whichever applies."""
        self.run_button.setEnabled(not yes)
        self.cancel_button.setEnabled(yes)

    def set_progress(self, done: int, total: int, unit: str = "images") -> None:
        """Move the bar at the next paint: QProgressBar itself repaints the whole window at once.

        ``unit``: what is counted, images (or tiles, while a large image runs)."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        bar.setFormat(f"%v / %m {unit}")
        bar.setRange(0, total)
        bar.setValue(done)
        bar.setUpdatesEnabled(True)  # schedules an ordinary repaint
