"""The one exception type for problems a user can fix."""

from __future__ import annotations


class SansaError(Exception):
    """A problem with the user's input, files or settings.

    The message says what was wrong and what to do about it; the widget shows it as a
    notification and the CLI prints it as one line and exits with status 2.
    """


class OutputExists(SansaError):
    """Files a run or an export would write exist already, and replacing them was not asked for.

    Raised by :func:`napari_sansa.files.overwrite.refuse_existing` alone. Its message names the
    files and no front end's options: the command line adds its flags (``--overwrite``,
    ``--resume``), the widget asks "Overwrite?" when it catches this type.
    """

    def __init__(self, message: str, paths: tuple = ()) -> None:
        super().__init__(message)
        self.paths = tuple(paths)


class DownloadCancelled(SansaError):
    """The user stopped a download; nothing of it was kept."""
