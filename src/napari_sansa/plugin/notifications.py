"""Messages for the user as napari notifications, in one place so tests can capture them.

napari is imported when a message is shown, not when the plugin is imported.
"""

from __future__ import annotations


def info(message: str) -> None:
    """Show an information notification."""
    from napari.utils.notifications import show_info

    show_info(message)


def error(message: str) -> None:
    """Show an error notification: how the widget reports problems (never a traceback)."""
    from napari.utils.notifications import show_error

    show_error(message)
