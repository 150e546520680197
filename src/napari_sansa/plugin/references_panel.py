"""The references section of the widget: prompt layers to draw on, and what they hold.

It adds prompt layers tied to the chosen image, sets the class of new prompts and the sign
of new clicks, and summarises the prompts per image. The summary reads every prompt layer,
so it is recomputed once after a burst of layer events (debounced), not per stroke.
"""

from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox

from . import layers as L
from . import notifications
from .qt_lifetime import is_deleted

DESCRIBE_AFTER_MS = 200  # quiet time after the last layer event before the summary is recomputed


class ReferencesPanel(QGroupBox):
    """Image and prompt kind, class, Add prompt layer, the sign toggle and the summary."""

    def __init__(self, viewer) -> None:
        super().__init__("References")
        self.viewer = viewer
        form = QFormLayout(self)
        self.prompt_image = QComboBox()
        self.prompt_kind = QComboBox()
        self.prompt_kind.addItems(["labels", "points", "shapes"])
        self.class_id = QSpinBox(minimum=1, maximum=65535, value=1)
        self.class_id.valueChanged.connect(self._class_changed)
        add = QPushButton("Add prompt layer")
        add.setToolTip(
            "Draw on it: Labels paint masks; Points click (N toggles negative); Shapes: rectangles = boxes, paths = scribbles, polygons = masks"
        )
        add.clicked.connect(self.add_prompt_layer)
        self.toggle_sign = QPushButton("Positive / negative clicks (N)")
        self.toggle_sign.clicked.connect(self._toggle_sign)
        form.addRow("Image", self.prompt_image)
        row = QHBoxLayout()
        row.addWidget(self.prompt_kind)
        row.addWidget(QLabel("class"))
        row.addWidget(self.class_id)
        form.addRow("Prompt", row)
        form.addRow(add)
        form.addRow(self.toggle_sign)
        self.summary = QLabel("No references yet.")
        self.summary.setWordWrap(True)
        form.addRow(self.summary)
        self._describe_soon = QTimer(self, singleShot=True, interval=DESCRIBE_AFTER_MS)
        self._describe_soon.timeout.connect(self.describe)

    def set_images(self, names: list[str]) -> None:
        """Offer these images to annotate, keeping the chosen one if it is still there."""
        current = self.prompt_image.currentText()
        self.prompt_image.clear()
        self.prompt_image.addItems(names)
        if current:
            self.prompt_image.setCurrentText(current)

    def describe(self) -> None:
        """Summarise the prompts per image (it reads every prompt layer: prefer describe_later)."""
        parts = []
        for layer in L.image_layers(self.viewer):
            prompts = L.prompts_of(self.viewer, L.image_source(layer), self.class_id.value())
            for plane, classes in sorted(prompts.items()):
                where = f"{layer.name}" + (f" plane {','.join(map(str, plane))}" if plane else "")
                parts.append(f"{where}: class {', '.join(map(str, sorted(classes)))}")
        self.summary.setText("\n".join(parts) if parts else "No references yet: add a prompt layer and draw.")

    def describe_later(self, event=None) -> None:
        """Summarise once the layer events stop for a moment."""
        if not is_deleted(self):
            self._describe_soon.start()

    def add_prompt_layer(self, kind: str | None = None, image_name: str | None = None):
        """Create a prompt layer tied to the chosen image, ready to draw on."""
        name = image_name or self.prompt_image.currentText()
        image = next((layer for layer in L.image_layers(self.viewer) if layer.name == name), None)
        if image is None:
            notifications.error("Open an image first, then add a prompt layer for it.")
            return None
        layer = L.add_prompt_layer(
            self.viewer, image, kind or self.prompt_kind.currentText(), self.class_id.value()
        )
        if layer.__class__.__name__ == "Points":
            layer.bind_key(
                "n",
                lambda lyr: notifications.info(f"Next clicks: {L.toggle_point_sign(lyr)}"),
                overwrite=True,
            )
        layer.events.data.connect(self.describe_later)
        if hasattr(layer.events, "paint"):  # Labels: strokes change no `data` event
            layer.events.paint.connect(self.describe_later)
        return layer

    def _class_changed(self, value: int) -> None:
        """New strokes and clicks in the selected prompt layer get the chosen class."""
        layer = self.viewer.layers.selection.active
        if layer is None or L.PROMPTS_FOR not in layer.metadata:
            return
        if hasattr(layer, "selected_label"):
            layer.selected_label = value
        elif hasattr(layer, "feature_defaults"):
            defaults = {k: layer.feature_defaults[k].iloc[0] for k in layer.feature_defaults}
            layer.feature_defaults = {**defaults, "class": value}

    def _toggle_sign(self) -> None:
        layer = self.viewer.layers.selection.active
        if layer is None or layer.__class__.__name__ != "Points" or L.PROMPTS_FOR not in layer.metadata:
            notifications.error("Select a Points prompt layer first.")
            return
        notifications.info(f"Next clicks: {L.toggle_point_sign(layer)}")
