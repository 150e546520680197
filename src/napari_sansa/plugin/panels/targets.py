"""The Targets section of the widget: which images a run segments, and how stacks are run."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_sansa.plugin.viewer import layers as L

THROUGH, INDEPENDENT = "through the stack", "independent planes"
ANNOTATED = Qt.UserRole + 1  # item data: whether the image carries prompts


class TargetsPanel(QWidget):
    """A checkable list of the open images, and the choice for annotated stacks."""

    def __init__(self) -> None:
        super().__init__()
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.list.setSizeAdjustPolicy(QListWidget.AdjustToContents)  # a short list takes little room
        self.list.setToolTip("The images a run segments: checked ones (annotated images start unchecked)")
        box.addWidget(self.list)
        self.stack_row = QWidget()  # shown only while a stack is open
        row = QHBoxLayout(self.stack_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Annotated stacks"))
        self.stack_mode = QComboBox()
        self.stack_mode.addItems([THROUGH, INDEPENDENT])
        self.stack_mode.setToolTip(
            "Through the stack: the annotated planes seed SAM2's memory and masks travel plane by plane "
            "both ways (volumes, time-lapses). Independent planes: each plane on its own, like any image."
        )
        row.addWidget(self.stack_mode)
        box.addWidget(self.stack_row)
        self.stack_row.setVisible(False)

    @property
    def through_stacks(self) -> bool:
        """Whether annotated stacks are segmented through the stack (else plane by plane)."""
        return self.stack_mode.currentText() == THROUGH

    def show_images(self, images: list, annotated: set[str]) -> None:
        """List the image layers, keeping each image's check state while it stays (un)annotated.

        An image first listed, or one whose annotation just began or ended, starts checked when
        it is not annotated (a target) and unchecked when it is (a reference only; checking it
        segments the annotated image as well).
        """
        kept = {}
        for i in range(self.list.count()):
            item = self.list.item(i)
            kept[(item.data(Qt.UserRole), item.data(ANNOTATED))] = item.checkState()
        self.list.clear()
        self.stack_row.setVisible(any(layer.ndim > 2 for layer in images))
        for layer in images:
            image_id = L.layer_id(layer)
            is_annotated = image_id in annotated
            item = QListWidgetItem(layer.name + ("  (reference)" if is_annotated else ""))
            item.setData(Qt.UserRole, image_id)
            item.setData(ANNOTATED, is_annotated)
            default = Qt.Unchecked if is_annotated else Qt.Checked
            item.setCheckState(kept.get((image_id, is_annotated), default))
            if is_annotated:
                item.setToolTip(
                    "Annotated: its prompts are references. Check it to segment this image too "
                    "(the rest of a mosaic annotated in one place, the objects you did not mark)."
                )
            self.list.addItem(item)

    def checked(self) -> set[str]:
        """Ids of the checked images."""
        return {
            self.list.item(i).data(Qt.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.Checked
        }
