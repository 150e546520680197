"""The model's download in the dock: a bar with size, speed and time left while a published
model's files arrive (the first use downloads about 1 GB).

The engine reports from the worker thread (:data:`~napari_sansa.engine.callbacks.DownloadProgress`);
the news crosses to the main thread through a queued signal. The text is tqdm's, the same as
the command line's bars.
"""

from __future__ import annotations

import time

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

BAR_UNIT = 2**10  # the bar counts KiB: a QProgressBar holds 32-bit values
EVERY_S = 0.1  # at most ten updates a second: chunks arrive far more often
KNOWN = "{n_fmt}B of {total_fmt}B, {rate_fmt}, {remaining} left"  # tqdm's fields
UNKNOWN = "{n_fmt}B, {rate_fmt}"  # a server that does not say the size


class DownloadBar(QWidget):
    """Shown while a file downloads; hidden otherwise."""

    changed = Signal(str)  # what it shows, for a folded section's title; "" when it ends
    _news = Signal(str, int, object)  # (file name, bytes so far, size or None)
    _ended = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.text = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.text)
        self._file, self._since, self._from = "", 0.0, 0
        self._told = ("", 0.0)  # (file, when): the worker thread's last news
        self._news.connect(self._show)
        self._ended.connect(self._end)
        self.hide()

    def report(self, name: str, done: int, total: int | None) -> None:
        """From the worker thread: how far a file is (a ``DownloadProgress``)."""
        now = time.monotonic()
        if name != self._told[0] or now - self._told[1] >= EVERY_S or done == total:
            self._told = (name, now)
            self._news.emit(name, done, total)

    def end(self) -> None:
        """From the worker thread: the download is over (done, failed or cancelled)."""
        self._ended.emit()

    def _end(self) -> None:
        self._file = ""
        self.hide()
        self.changed.emit("")

    def _show(self, name: str, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if name != self._file:
            self._file, self._since, self._from = name, time.monotonic(), done
        elapsed = time.monotonic() - self._since
        rate = (done - self._from) / elapsed if elapsed > 0 else None
        self.bar.setRange(0, (total or 0) // BAR_UNIT)  # (0, 0): busy, size unknown
        self.bar.setValue(done // BAR_UNIT)
        meter = tqdm.format_meter(
            done, total, elapsed, rate=rate, unit="B", unit_scale=True, unit_divisor=1024,
            bar_format=KNOWN if total else UNKNOWN,
        )  # fmt: skip
        self.text.setText(f"Downloading {name}: {meter}")
        self.show()
        self.changed.emit(self.text.text())
