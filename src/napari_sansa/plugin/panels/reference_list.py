"""The "layer → image" list: which annotation layer is a reference for which image.

One row per Labels, Points or Shapes layer: its name, a choice of the images it fits (or "not
a reference") and, for Labels, how its values are read. Changing a choice records it in the
layer (:func:`.reference_layers.choose`), so it survives renames and later runs.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox, QGridLayout, QLabel, QWidget

from napari_sansa.plugin.viewer.reference_layers import Assignment, choose

NO_REFERENCE = "not a reference"


class ReferenceList(QWidget):
    """Rows of ``layer → [image ▾]  note``; ``changed`` is called after the user picks."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__()
        self._changed = changed
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self.rows: dict[str, QComboBox] = {}  # layer name -> its image choice
        self.notes: dict[str, str] = {}  # layer name -> what the row says beside the choice
        self._empty = QLabel("No Labels, Points or Shapes layer yet.")
        self._grid.addWidget(self._empty, 0, 0, 1, 3)

    def show_assignments(self, assignments: list[Assignment], notes: dict[str, str]) -> None:
        """Rebuild the rows; ``notes`` adds a word per layer name (e.g. how a mask is read)."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None and item.widget() is not self._empty:
                item.widget().deleteLater()
        self.rows, self.notes = {}, {}
        self._empty.setVisible(not assignments)
        if not assignments:
            self._grid.addWidget(self._empty, 0, 0, 1, 3)
        for row, assignment in enumerate(assignments):
            layer = assignment.layer
            name = QLabel(layer.name)
            name.setToolTip(f"{type(layer).__name__} layer")
            combo = QComboBox()
            choices = list(assignment.fitting)
            if assignment.image is not None and assignment.image not in choices:
                choices.insert(0, assignment.image)
            combo.addItems([image.name for image in choices] + [NO_REFERENCE])
            combo.setCurrentText(assignment.image.name if assignment.image is not None else NO_REFERENCE)
            combo.setToolTip(assignment.why)
            combo.currentIndexChanged.connect(
                lambda index, layer=layer, choices=choices: self._pick(layer, choices, index)
            )
            note = notes.get(layer.name, "")
            if assignment.image is None:
                note = assignment.why
            self._grid.addWidget(name, row, 0)
            self._grid.addWidget(QLabel("→"), row, 1)
            self._grid.addWidget(combo, row, 2)
            self._grid.addWidget(QLabel(note), row, 3)
            self.rows[layer.name] = combo
            self.notes[layer.name] = note

    def _pick(self, layer, choices: list, index: int) -> None:
        choose(layer, choices[index] if 0 <= index < len(choices) else None)
        self._changed()

    def choice(self, layer_name: str) -> str:
        """The image a layer's row names (or "not a reference")."""
        return self.rows[layer_name].currentText()

    def set_choice(self, layer_name: str, image_name: str) -> None:
        """Pick an image (or NO_REFERENCE) for a layer, as a user would in its row."""
        self.rows[layer_name].setCurrentText(image_name)
