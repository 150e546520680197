"""How a caller follows and stops a long run, the same for the engine, the cluster runner and the widget."""

from __future__ import annotations

import threading
from collections.abc import Callable

from napari_sansa.engine.errors import SansaError

Progress = Callable[[int, int | None], None] | None  # (done, total or None when unknown)
Cancel = Callable[[], bool] | threading.Event | None  # checked between steps
DownloadProgress = (
    Callable[[str, int, int | None], None] | None
)  # (file name, bytes so far, its size or None when unknown), between chunks
OnError = (
    Callable[[int, SansaError], None] | None
)  # (target index, why): that target is skipped, the run goes on
OnTileError = (
    Callable[[int, SansaError], None] | None
)  # (target index, why): a tile left 0, the target goes on


def is_cancelled(cancel: Cancel) -> bool:
    """Whether ``cancel`` (an Event, a callable or None) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
