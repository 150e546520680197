"""Whether Qt has destroyed a widget: napari may be closed while a run or a timer is pending.

Handlers connected to napari events or to a worker check it before touching their widgets.
"""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QWidget


def is_deleted(widget: QWidget) -> bool:
    """Whether Qt has already destroyed the widget (napari was closed during a run)."""
    try:
        from qtpy import sip

        return sip.isdeleted(widget)
    except ImportError:  # PySide
        import shiboken6

        return not shiboken6.isValid(widget)


class ThreadNews(QObject):
    """A parentless messenger from a worker thread to a widget: ``emit(value)`` from any thread,
    and ``news`` reaches what it is connected to on napari's thread. It outlives the widget, so a
    thread that reports after the dock was closed emits into nothing (Qt dropped the connection)
    instead of through a deleted widget's signal, which would crash napari."""

    news = Signal(object)

    def emit(self, value: object) -> None:
        self.news.emit(value)
