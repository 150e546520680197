"""The dock's keyboard shortcuts, as napari actions: listed (and remappable) in napari's
*Preferences › Shortcuts* with the viewer's keybindings.

They use Ctrl+Shift (Cmd+Shift on macOS) with keys napari leaves free, so that none of
napari's own shortcuts (painting, layer modes, Ctrl+R reset view...) changes meaning. Each
works on the SANSA dock of the viewer it is pressed in, through the same door as its button:
Run obeys the model owner's busy rule (queued or refused, the status line says which). A
shortcut the user remapped in the preferences keeps their keys.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.components.viewer_model import ViewerModel
from napari.utils.action_manager import action_manager

from napari_sansa.plugin.panels.review import ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY
from napari_sansa.plugin.panels.run_controls import RUN_KEY

SHORTCUTS = {"run": RUN_KEY, "accept": ACCEPT_KEY, "next": NEXT_KEY, "previous": PREVIOUS_KEY}
DESCRIPTIONS = {
    "run": "SANSA: segment every checked target like the references",
    "accept": "SANSA: accept the selected result (later runs leave it)",
    "next": "SANSA: the next result to review",
    "previous": "SANSA: the previous result to review",
}
_docks: dict[int, dict[str, Callable[[], object]]] = {}  # id(viewer) -> its dock's actions
_registered: set[str] = set()


def action_name(short: str) -> str:
    """napari's name for one of :data:`SHORTCUTS` (``package:name``)."""
    return f"napari-sansa:{short}"


def add_shortcuts(viewer, actions: dict[str, Callable[[], object]]) -> Callable[[], None]:
    """Make ``actions`` (one per :data:`SHORTCUTS` name) the shortcuts of this viewer's dock;
    returns what forgets them (when the dock closes)."""
    for short in SHORTCUTS.keys() - _registered:
        _register(short)
        _registered.add(short)
    key = _viewer_id(viewer)
    _docks[key] = dict(actions)
    return lambda: _docks.pop(key, None)


def _viewer_id(viewer) -> int:
    """The viewer's identity, through the proxy napari hands plugins (``__wrapped__``)."""
    return id(getattr(viewer, "__wrapped__", viewer))


def _register(short: str) -> None:
    """One napari action on the viewer's keymap, with its default keys unless the user chose others."""
    from napari.settings import get_settings

    name = action_name(short)

    def command(viewer: ViewerModel) -> None:
        action = _docks.get(_viewer_id(viewer), {}).get(short)
        if action is not None:
            action()

    action_manager.register_action(name, command, DESCRIPTIONS[short], ViewerModel)
    if name not in get_settings().shortcuts.shortcuts:
        action_manager.bind_shortcut(name, SHORTCUTS[short].replace("+", "-"))
