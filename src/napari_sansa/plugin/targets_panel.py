"""The Targets section of the widget: which images a run segments, and how stacks are run."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
)

from . import layers as L

THROUGH, INDEPENDENT = "through the stack", "independent planes"


class TargetsPanel(QGroupBox):
    """A checkable list of the open images, and the choice for annotated stacks."""

    def __init__(self) -> None:
        super().__init__("Targets")
        box = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        box.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(QLabel("Annotated stacks"))
        self.stack_mode = QComboBox()
        self.stack_mode.addItems([THROUGH, INDEPENDENT])
        self.stack_mode.setToolTip(
            "Through the stack: the annotated planes seed SAM2's memory and masks travel plane by plane "
            "both ways (volumes, time-lapses). Independent planes: each plane on its own, like any image."
        )
        row.addWidget(self.stack_mode)
        box.addLayout(row)

    @property
    def through_stacks(self) -> bool:
        """Whether annotated stacks are segmented through the stack (else plane by plane)."""
        return self.stack_mode.currentText() == THROUGH

    def show_images(self, images: list, annotated: set[str]) -> None:
        """List the image layers (annotated ones marked), keeping the user's unchecked images unchecked."""
        unchecked = {
            self.list.item(i).data(Qt.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() != Qt.Checked
        }
        self.list.clear()
        for layer in images:
            image_id = L.layer_id(layer)
            item = QListWidgetItem(layer.name + ("  (reference)" if image_id in annotated else ""))
            item.setData(Qt.UserRole, image_id)
            item.setCheckState(Qt.Unchecked if image_id in unchecked else Qt.Checked)
            self.list.addItem(item)

    def checked(self) -> set[str]:
        """Ids of the checked images."""
        return {
            self.list.item(i).data(Qt.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.Checked
        }
