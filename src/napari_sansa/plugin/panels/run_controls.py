"""Run and Cancel, the status line and the progress bar of the widget."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget


class RunControls(QWidget):
    """The buttons that start and stop a run, and what the run is doing."""

    def __init__(self, run: Callable[[], object], cancel: Callable[[], None]) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: run())
        self.cancel_button.clicked.connect(lambda: cancel())
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
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
