"""The Objects section of the widget: classes only, or every object its own label.

With output "objects", each finished target's classes are split into objects in the run's
worker thread (:meth:`ObjectsPanel.splitter`), and the main thread only writes them into the
image's objects layer (:mod:`.objects_layers`). The list shows objects least confident first;
selecting one moves the viewer to its plane and centres it. After a run through the stack,
the objects are linked through the planes in a worker (:meth:`ObjectsPanel.link`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

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

from napari_sansa.engine.objects import OBJECT_METHODS
from napari_sansa.plugin.background import BackgroundJob
from napari_sansa.plugin.core.linking import link_stacks
from napari_sansa.plugin.core.session import ImageSource, TargetKey
from napari_sansa.plugin.core.work_queue import ModelOwner
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.objects_layers import ObjectLayers, plane_columns

if TYPE_CHECKING:  # napari loads with the widget, not with this module
    from napari.qt.threading import GeneratorWorker


OUTPUTS = ("classes", "objects")
MAX_LISTED = 500  # the least confident objects; a list of all of a stack's would be slow to build
REFRESH_EVERY_S = 1.0


class ObjectsPanel(QWidget):
    """The list of objects to check; ``choice``, placed before Run, holds the output choice and
    the splitting method."""

    def __init__(self, viewer, owner: ModelOwner | None = None) -> None:
        """``owner``: the model's owner, whose queue linking a stack's objects goes through
        (right after the run that made them, before any run that waits)."""
        super().__init__()
        self.viewer = viewer
        self.layers = ObjectLayers(viewer)
        self._names: dict[str, str] = {}
        self._shown = 0.0
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.choice = QWidget()
        row = QHBoxLayout(self.choice)
        row.setContentsMargins(0, 0, 0, 0)
        self.output, self.method = QComboBox(), QComboBox()
        self.output.addItems(OUTPUTS)
        self.output.setToolTip("objects: also give every object its own label, with a table of them")
        self.method.addItems(OBJECT_METHODS)
        self.method.setToolTip(
            "watershed: split touching objects where they narrow; sam: outline each with SAM2 (slower)"
        )
        row.addWidget(QLabel("Output"))
        row.addWidget(self.output)
        row.addWidget(self.method)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.list.setToolTip("Objects, least confident first: select one to go to it")
        self.list.currentItemChanged.connect(lambda item, _: self._show(item))
        box.addWidget(self.list)
        tip = "Leave the objects unlinked: ids per plane"
        self.linking = BackgroundJob("Linking objects", tip, owner, first=True)  # before a next run
        box.addWidget(self.linking)
        self.output.currentTextChanged.connect(self._output_changed)
        self._output_changed(self.output.currentText())

    def _output_changed(self, text: str) -> None:
        self.method.setEnabled(text == "objects")
        self.list.setVisible(text == "objects" or self.list.count() > 0)

    def splitter(self, class_names: dict[int, str] | None = None) -> Callable | None:
        """What the worker does to each prediction: ``None`` for classes only."""
        if self.output.currentText() != "objects":
            return None
        method = self.method.currentText()
        return lambda prediction: prediction.instances(method, class_names=class_names)

    def write(self, source: ImageSource, key: TargetKey, objects, running: bool) -> None:
        """Show a target's objects; the table and the list follow at most once a second while running."""
        self._names[source.image_id] = source.name
        self.layers.write(source, key, objects.labels, objects.table)
        if not running or time.monotonic() - self._shown > REFRESH_EVERY_S:
            self.refresh()

    def link(self, image_ids: Iterable[str]) -> GeneratorWorker | None:
        """Give each object of these stacks one id through the planes, in a worker (after a run
        through the stack); the layers and the list follow on napari's thread. Returns the
        worker (``None``: no stack of objects)."""
        stacks = self.layers.to_link(image_ids)
        if not stacks:
            return None

        def done(found: dict) -> None:
            for image_id, (stack, tables) in found.items():
                self.layers.set_linked(image_id, stack, tables)
            self.linking.status.setText("")
            self.refresh()

        return self.linking.start(link_stacks, stacks, done=done)

    def refresh(self) -> None:
        """Give the layers their tables and list the least confident objects."""
        import pandas as pd

        self._shown = time.monotonic()
        self.layers.sync()
        tables = []
        for image_id, layer in self.layers.live().items():
            table = self.layers.table(image_id)
            if len(table) and "score" in table:
                lead = layer.ndim - 2
                planes = table[plane_columns(lead)].to_numpy().tolist() if lead else [[]] * len(table)
                tables.append(
                    pd.DataFrame(
                        {
                            "image": image_id,
                            "plane": [tuple(int(v) for v in p) for p in planes],
                            "label": table["label"].to_numpy(),
                            "class_id": table["class"].to_numpy(),
                            "score": table["score"].to_numpy(),
                            "row": table["centroid_row"].to_numpy(),
                            "col": table["centroid_col"].to_numpy(),
                        }
                    )
                )
        self.list.blockSignals(True)
        self.list.clear()
        if tables:
            rows = pd.concat(tables, ignore_index=True).sort_values(
                ["score", "image", "label"], kind="stable"
            )
            for entry in rows.head(MAX_LISTED).itertuples(index=False):
                key = TargetKey(entry.image, entry.plane)
                text = f"{entry.score:.2f}  {key.describe(self._names.get(entry.image, '?'))}  #{entry.label}"
                item = QListWidgetItem(f"{text} (class {entry.class_id})")
                item.setData(Qt.UserRole, (key, int(entry.label), float(entry.row), float(entry.col)))
                self.list.addItem(item)
        self.list.blockSignals(False)
        self._output_changed(self.output.currentText())

    def _show(self, item: QListWidgetItem | None) -> None:
        """Select the object's layer, go to its plane and centre the view on it."""
        if item is None:
            return
        key, label, row, col = item.data(Qt.UserRole)
        layer = self.layers.live().get(key.image_id)
        if layer is None:
            return
        L.go_to(self.viewer, layer, key.plane)
        world = layer.data_to_world((*key.plane, row, col))
        self.viewer.camera.center = tuple(float(v) for v in world[-2:])
        layer.selected_label = label
