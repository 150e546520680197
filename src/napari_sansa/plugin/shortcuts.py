"""The dock's keyboard shortcuts, active anywhere in napari's window (canvas, layer list, dock).

They use Ctrl+Shift (Cmd+Shift on macOS) with keys napari leaves free, so that none of
napari's own shortcuts (painting, layer modes, Ctrl+R reset view...) changes meaning.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QWidget

from napari_sansa.plugin.panels.review import ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY, ReviewPanel
from napari_sansa.plugin.panels.run_controls import RUN_KEY

SHORTCUTS = {"run": RUN_KEY, "accept": ACCEPT_KEY, "next": NEXT_KEY, "previous": PREVIOUS_KEY}


def add_shortcuts(widget: QWidget, run: Callable[[], object], review: ReviewPanel) -> dict[str, QShortcut]:
    """Window-wide shortcuts (:data:`SHORTCUTS`): ``run``, and accept, next and previous in ``review``."""
    actions = {
        "run": run,
        "accept": review.accept,
        "next": lambda: review.step(1),
        "previous": lambda: review.step(-1),
    }
    shortcuts = {}
    for name, action in actions.items():
        shortcut = QShortcut(QKeySequence(SHORTCUTS[name]), widget)
        shortcut.setContext(Qt.WindowShortcut)
        shortcut.activated.connect(lambda action=action: action())
        shortcuts[name] = shortcut
    return shortcuts
