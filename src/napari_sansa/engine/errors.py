"""The one exception type for problems a user can fix."""

from __future__ import annotations


class SansaError(Exception):
    """A problem with the user's input, files or settings.

    The message says what was wrong and what to do about it; the widget shows it as a
    notification and the CLI prints it as one line and exits with status 2.
    """


class DownloadCancelled(SansaError):
    """The user stopped a download; nothing of it was kept."""
