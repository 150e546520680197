"""The command line: ``napari-sansa segment``, ``download``, ``models`` and the rest; nothing imports it."""

from napari_sansa.cli.main import main

__all__ = ["main"]
