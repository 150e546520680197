"""The references section of the widget: prompt layers to draw on, and what they hold.

It adds prompt layers tied to the chosen image, sets the class of new prompts (and names
classes) and the sign of new clicks, shows which layer annotates which image (any Labels,
Points or Shapes layer may) and how masks are read, and summarises the prompts per image.
The summary reads every annotation layer, so it is recomputed once after a burst of layer
events (debounced), not per stroke; a lazy mask (dask, zarr: a large one opened from a file)
is only named, never read, since reading it whole would freeze napari: the run reads it.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.session import ImageSource
from napari_sansa.plugin.panels.reference_list import ReferenceList
from napari_sansa.plugin.qt_lifetime import is_deleted
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import is_lazy
from napari_sansa.plugin.viewer.prompt_layers import PlanePrompts, mask_mode
from napari_sansa.plugin.viewer.reference_layers import Assignment, assign, layers_for

DESCRIBE_AFTER_MS = 200  # quiet time after the last layer event before the summary is recomputed
MASK_MODES = {"auto": "auto", "each value a class": "each", "one class (instance mask)": "one"}


LAZY_NOTE = "large mask: read when the run starts"


def _lazy_mask(layer) -> bool:
    """A Labels layer whose data is read on demand (dask, zarr, a pyramid): too large to summarise."""
    return layer.__class__.__name__ == "Labels" and is_lazy(layer.data)


class ReferencesPanel(QWidget):
    """Image and prompt kind, class, Add prompt layer, the sign toggle and the summary."""

    def __init__(self, viewer) -> None:
        super().__init__()
        self.viewer = viewer
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        # a magicgui picker of the viewer's image layers; its value is the layer, so a renamed
        # image stays chosen
        self.image_picker = ComboBox(choices=self._image_choices)
        self.prompt_image = self.image_picker.native
        self.prompt_image.setToolTip("The image a new prompt layer annotates (and ties are broken for)")
        self.prompt_kind = QComboBox()
        self.prompt_kind.addItems(["labels", "points", "shapes"])
        self.prompt_kind.setToolTip(
            "labels: paint masks; points: click objects; shapes: boxes, scribbles, outlines"
        )
        self.class_id = QSpinBox(minimum=1, maximum=65535, value=1)
        self.class_id.setToolTip(
            "The class of new strokes, clicks and shapes (each class is segmented apart)"
        )
        self.class_id.valueChanged.connect(self._class_changed)
        self.class_names: dict[int, str] = {}
        self.class_name = QLineEdit(placeholderText="name (optional), e.g. nucleus")
        self.class_name.setToolTip("The chosen class's name: shown on the results and written with exports")
        self.class_name.textEdited.connect(self._name_edited)
        self.mask_classes = QComboBox()
        self.mask_classes.addItems(list(MASK_MODES))
        self.mask_classes.setToolTip(
            "How Labels layers not made here are read: each value a class, or all objects one class "
            "(instance masks from cellpose, stardist, ...); auto decides from the number of values"
        )
        self.mask_classes.currentTextChanged.connect(self.describe_later)
        add = QPushButton("Add prompt layer")
        add.setToolTip(
            "Draw on it: Labels paint masks; Points click (N toggles negative); Shapes: rectangles = boxes, paths = scribbles, polygons = masks"
        )
        add.clicked.connect(self.add_prompt_layer)
        self.toggle_sign = QPushButton("Positive / negative clicks (N)")
        self.toggle_sign.setToolTip(
            "Next clicks of the selected Points layer: on the object, or not on it (N)"
        )
        self.toggle_sign.clicked.connect(self._toggle_sign)
        form.addRow("Image", self.prompt_image)
        row = QHBoxLayout()
        row.addWidget(self.prompt_kind)
        row.addWidget(QLabel("class"))
        row.addWidget(self.class_id)
        form.addRow("Prompt", row)
        form.addRow("Class name", self.class_name)
        form.addRow(add)
        form.addRow(self.toggle_sign)
        form.addRow("Mask values", self.mask_classes)
        self.layer_list = ReferenceList(self.describe_later)
        form.addRow(QLabel("Layer → image it annotates:"))
        form.addRow(self.layer_list)
        self.summary = QLabel("No references yet.")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("The prompts each image (or plane) holds, by class")
        form.addRow(self.summary)
        self._describe_soon = QTimer(self, singleShot=True, interval=DESCRIBE_AFTER_MS)
        self._describe_soon.timeout.connect(self.describe)

    def _image_choices(self, widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in L.image_layers(self.viewer)]

    def reset_choices(self, event=None) -> None:
        """Offer the open images to annotate, keeping the chosen one if it is still there."""
        self.image_picker.reset_choices()

    @property
    def mask_mode(self) -> str:
        """How Labels layers not made by the widget are read: "auto", "each" or "one"."""
        return MASK_MODES[self.mask_classes.currentText()]

    def assignments(self) -> list[Assignment]:
        """Every annotation layer and the image it annotates, the chosen image breaking ties."""
        return assign(self.viewer, self.prompt_image.currentText() or None)

    def mask_readings(self, assignments: list[Assignment]) -> dict[int, tuple[str, int | None]]:
        """How each Labels layer is read, by ``id``: ``("each" or "one", distinct values)``.

        Layers made with the widget's button hold one class per value (not counted); any
        other mask is read as *Mask values* says, deciding once for all its planes.
        """
        readings: dict[int, tuple[str, int | None]] = {}
        for a in assignments:
            if a.image is None or a.layer.__class__.__name__ != "Labels":
                continue
            own = a.layer.metadata.get(L.PROMPTS_FOR) == L.layer_id(a.image)
            readings[id(a.layer)] = ("each", None) if own else mask_mode(a.layer.data, self.mask_mode)
        return readings

    def prompts(
        self, source: ImageSource, assignments: list[Assignment], readings: dict | None = None
    ) -> PlanePrompts:
        """The prompts the layers annotating ``source`` hold, read as the panel's settings say."""
        annotating = layers_for(assignments, source.image_id)
        if readings is None:
            readings = self.mask_readings([a for a in assignments if a.layer in annotating])
        modes = {key: mode for key, (mode, _) in readings.items()}
        return L.prompts_of(self.viewer, source, annotating, self.class_id.value(), modes)

    def describe(self) -> None:
        """Show the layer list and summarise the prompts per image (prefer describe_later)."""
        assignments = self.assignments()
        unread = [a for a in assignments if a.image is not None and _lazy_mask(a.layer)]
        read = [a for a in assignments if a not in unread]
        readings = self.mask_readings(read)
        notes = {a.layer.name: LAZY_NOTE for a in unread}
        for a in read:
            mode, count = readings.get(id(a.layer), (None, None))
            if count is not None:
                notes[a.layer.name] = (
                    f"{count} object ids: one class" if mode == "one" else f"{count} class(es)"
                )
        self.layer_list.show_assignments(assignments, notes)
        parts = []
        for layer in L.image_layers(self.viewer):
            prompts = self.prompts(L.image_source(layer), read, readings)
            for plane, classes in sorted(prompts.items()):
                where = f"{layer.name}" + (f" plane {','.join(map(str, plane))}" if plane else "")
                named = [self._class_label(c) for c in sorted(classes)]
                parts.append(f"{where}: class {', '.join(named)}")
        parts += [f"{a.image.name}: mask {a.layer.name} ({LAZY_NOTE})" for a in unread]
        self.summary.setText(
            "\n".join(parts) if parts else "No references yet: add a prompt layer and draw, or open a mask."
        )

    def _class_label(self, class_id: int) -> str:
        name = self.class_names.get(class_id)
        return f"{class_id} ({name})" if name else str(class_id)

    def _name_edited(self, text: str) -> None:
        if text.strip():
            self.class_names[self.class_id.value()] = text.strip()
        else:
            self.class_names.pop(self.class_id.value(), None)
        self.describe_later()

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
        self.class_name.setText(self.class_names.get(value, ""))
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
