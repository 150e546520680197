"""The dock on a laptop screen: its height, its sections, tooltips and shortcuts."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLineEdit,
    QListWidget,
    QSlider,
    QSpinBox,
)

from napari_sansa.plugin.shortcuts import SHORTCUTS, action_name
from test_widget import draw_labels_reference

LAPTOP_DOCK = 650  # 768 px of screen less napari's title, menus and status bar


def test_the_dock_fits_a_laptop_screen_with_every_section_open(open_widget):
    viewer, widget = open_widget()
    widget.objects_panel.output.setCurrentText("objects")  # the objects list shows too
    widget.large_panel.expand(True)
    for section in widget.sections.sections.values():
        section.expand()
    assert widget.minimumSizeHint().height() < LAPTOP_DOCK
    dock = widget.parent()  # napari's dock around it
    assert dock.minimumSizeHint().height() < LAPTOP_DOCK
    # in the order of the work: the output is chosen before Run
    assert widget.sections.titles() == [
        "Session",
        "Model",
        "References",
        "Targets and output",
        "Run",
        "Adapt to these images",
        "Review (least confident first)",
        "Annotate next",
        "How good is it?",
        "Export",
    ]
    # and all of it shows without scrolling where the screen is tall enough
    assert widget.sizeHint().height() >= widget.sections.widget().minimumSizeHint().height()


def test_every_control_says_what_it_does(open_widget):
    _, widget = open_widget()
    kinds = (QAbstractButton, QComboBox, QSpinBox, QSlider, QLineEdit, QListWidget)
    controls = [c for kind in kinds for c in widget.findChildren(kind)]
    # spin boxes', combo boxes' and tables' inner parts belong to their box
    silent = [
        c
        for c in controls
        if not c.toolTip()
        and not isinstance(c.parent(), (QComboBox, QSpinBox, QAbstractItemView))
        and c.objectName() != "qt_spinbox_lineedit"
    ]
    assert not silent, [(type(c).__name__, getattr(c, "text", lambda: "")()) for c in silent]


def press(viewer, keys: str) -> None:
    """A key combination pressed on napari's canvas ("Ctrl+Shift+R")."""
    viewer.window._qt_viewer._key_map_handler.press_key(keys.replace("+", "-"))


def test_shortcuts_are_napari_actions_that_run_accept_and_step_through_the_results(open_widget, qtbot):
    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor
    from napari.utils.action_manager import action_manager

    viewer, widget = open_widget()
    listed = {name for group in ShortcutEditor().key_bindings_strs.values() for name in group}
    assert {action_name(short) for short in SHORTCUTS} <= listed  # in Preferences › Shortcuts
    draw_labels_reference(widget)
    press(viewer, SHORTCUTS["run"])
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.sections.section("Review (least confident first)").expanded  # results to review
    press(viewer, SHORTCUTS["next"])
    first = widget.review_panel.selected_key()
    assert first == widget.review_order()[0]
    press(viewer, SHORTCUTS["next"])
    assert widget.review_panel.selected_key() == widget.review_order()[1]
    press(viewer, SHORTCUTS["previous"])
    assert widget.review_panel.selected_key() == first
    # remapped in the preferences, the new keys do it
    name = action_name("accept")
    action_manager.unbind_shortcut(name)
    action_manager.bind_shortcut(name, "Ctrl-Shift-J")
    try:
        press(viewer, SHORTCUTS["accept"])
        assert first not in widget.locked
        press(viewer, "Ctrl+Shift+J")
        assert first in widget.locked
    finally:
        action_manager.unbind_shortcut(name)
        action_manager.bind_shortcut(name, SHORTCUTS["accept"].replace("+", "-"))


def test_a_panel_joins_the_dock_in_one_line(open_widget):
    from qtpy.QtWidgets import QGroupBox, QLabel, QVBoxLayout

    _, widget = open_widget()
    panel = QGroupBox("Check references")
    QVBoxLayout(panel).addWidget(QLabel("IoU per reference"))
    section = widget.sections.add("Check references", panel, before="Export")
    assert widget.sections.titles()[-2:] == ["Check references", "Export"]
    assert panel.title() == "" and section.header.text() == "Check references"  # one title, not two
    section.expand(False)
    assert not panel.isVisibleTo(widget)
