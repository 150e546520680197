"""Whether Qt has destroyed a widget: napari may be closed while a run or a timer is pending.

Handlers connected to napari events or to a worker check it before touching their widgets.
"""

from __future__ import annotations

from qtpy.QtWidgets import QWidget


def is_deleted(widget: QWidget) -> bool:
    """Whether Qt has already destroyed the widget (napari was closed during a run)."""
    try:
        from qtpy import sip

        return sip.isdeleted(widget)
    except ImportError:  # PySide
        import shiboken6

        return not shiboken6.isValid(widget)
